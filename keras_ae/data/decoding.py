"""Image files decoded in TensorFlow, by ``keras_ae.runtime.images``' recipe: the
TensorFlow half of it (serving's half is Pillow's, in ``keras_ae.runtime.images``).

- ``scan``: every file checked once before training: through
  ``keras_ae.runtime.image_files``' gate (regular files, the format from the
  content, the pixel limit and the file's size from its header: nothing
  refused is decoded), then one parallel pass that decodes the rest for
  their sizes and colour, and finds the ones that do not decode. PNG and
  JPEG are decoded by TensorFlow; BMP, GIF, WebP and rotated photos by
  Pillow (``keras_ae.runtime.images.stored_pixels``) inside ``tf.data``, as
  serving reads them;
- ``loader``: what ``tf.data`` maps over file names to make a model's
  images (colour, size, rounding), the ``pad`` resize without the padded
  image (``keras_ae.runtime.images.padded_steps``).

File names go to TensorFlow as bytes (``as_bytes``), so that names that are
not UTF-8 are read as they are.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from keras_ae.errors import InputError
from keras_ae.runtime import image_files
from keras_ae.runtime import images as recipe

__all__ = ["Progress", "Scanned", "as_bytes", "error_reason", "loader", "reason",
           "scan"]


def _decode(contents):
    """uint8 ``(h, w, c)`` as stored (c 1 to 4) of a checked PNG or JPEG."""
    # decode_image would take JPEG's fast IDCT, which differs from Pillow's
    # (and serving's; docs/benchmarks.md, "JPEG decoding"); the accurate one
    # matches.
    return tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_png(contents))


def _pillow_pixels(path):
    """uint8 ``(h, w, c)`` of a checked file Pillow decodes (BMP, GIF, WebP,
    rotated photos: ``ImageFile.decoder``), from inside ``tf.data``."""
    pixels = tf.numpy_function(lambda name: recipe.stored_pixels(os.fsdecode(name)),
                               [path], tf.uint8, stateful=False)
    pixels.set_shape([None, None, None])
    return pixels


def _read(path, pillow):
    """A checked file's stored pixels, by the decoder the scan chose."""
    return tf.cond(pillow, lambda: _pillow_pixels(path),
                   lambda: _decode(tf.io.read_file(path)))


def _probe(index, path):
    """``(index, height, width, grey)`` of one file TensorFlow decodes; an
    error if it does not decode."""
    return (index, *_facts(_decode(tf.io.read_file(path))))


def _facts(image):
    shape = tf.shape(image)
    grey = tf.cond(shape[2] < 3, lambda: tf.constant(True), lambda: tf.reduce_all(
        tf.logical_and(image[..., 0] == image[..., 1],
                       image[..., 1] == image[..., 2])))
    return shape[0], shape[1], grey


def as_bytes(paths):
    """File names as TensorFlow takes them: bytes, so that names that are
    not UTF-8 (Python's surrogate escapes) reach the file system as they are."""
    return np.asarray([os.fsencode(path) for path in paths], dtype=object)


def error_reason(path):
    """TensorFlow's own words for why ``path`` does not decode, shortened."""
    try:
        _probe(0, os.fsencode(path))
    except tf.errors.OpError as error:
        text = error.message.split("}} ")[-1].split(" [Op:")[0]
        return text.splitlines()[0].strip().rstrip(".")
    raise RuntimeError(  # not the file's fault: keep the traceback
        f"{path} failed in keras_ae's parallel scan but reads alone; "
        f"please report this with the file.")


@dataclasses.dataclass(frozen=True)
class Scanned:
    """One readable file, as the scan found it."""

    height: int
    width: int
    grey: bool
    pillow: bool  # decoded by Pillow on the training route too


def _checked(paths, max_pixels):
    """``({index: ImageFile}, {index: reason})``: every file through
    ``keras_ae.runtime.image_files``' gate, nothing decoded."""
    facts, refused = {}, {}
    for index, path in enumerate(paths):
        try:
            facts[index] = image_files.inspect(path, max_pixels)
        except image_files.RefusedImage as error:
            refused[index] = error.reason
        except FileNotFoundError:
            refused[index] = "is gone (removed while the folder was read)"
    return facts, refused


def _pillow_scanned(path):
    """``Scanned`` of a file Pillow decodes, or the reason it does not."""
    try:
        pixels = recipe.stored_pixels(path)
    except InputError as error:
        return str(error).removeprefix(os.fspath(path)).strip(" :")
    grey = pixels.shape[2] < 3 or bool(
        (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())
    return Scanned(pixels.shape[0], pixels.shape[1], grey, True)


def scan(paths, verbose, max_pixels):
    """Reads every file once: ``{index: Scanned}`` and ``{index: reason}``
    of those that are not read (``None``: TensorFlow's decoder failed,
    ``error_reason`` says why). Each file passes
    ``keras_ae.runtime.image_files``' checks first; those TensorFlow
    decodes are then decoded in parallel, the others by Pillow."""
    facts, bad = _checked(paths, max_pixels)
    progress = Progress(len(paths), verbose, "checking")
    found = {}
    for index, fact in facts.items():
        if fact.decoder == "pillow":
            result = _pillow_scanned(paths[index])
            if isinstance(result, Scanned):
                found[index] = result
            else:
                bad[index] = result
            progress.advance(1)
    kept = [i for i, fact in facts.items() if fact.decoder == "tensorflow"]
    indices = tf.data.Dataset.from_tensor_slices(
        (np.asarray(kept, np.int64), as_bytes([paths[i] for i in kept])))
    probes = (indices.map(_probe, num_parallel_calls=tf.data.AUTOTUNE)
              .ignore_errors().batch(512).prefetch(2))
    for index, height, width, grey in probes.as_numpy_iterator():
        found.update((i, Scanned(h, w, g, False)) for i, h, w, g in zip(
            index.tolist(), height.tolist(), width.tolist(), grey.tolist()))
        progress.advance(len(index))
    progress.advance(len(paths))  # every file was tried, unreadable ones too
    bad.update({i: None for i in kept if i not in found})
    return found, bad


def reason(paths, bad, index):
    """Why ``paths[index]`` is not read: the checks' words, or the
    decoder's (``bad`` is ``scan``'s)."""
    return bad[index] or error_reason(paths[index])


class Progress:
    """One Keras progress bar for one pass over the files."""

    def __init__(self, total, verbose, what):
        self.total, self.done, self.bar = total, 0, None
        if verbose and total:
            import keras

            print(f"{what} {total:,} images")
            self.bar = keras.utils.Progbar(total, unit_name="image")

    def advance(self, count):
        if self.bar is None or self.done == self.total:
            return  # closed: a second final line would repeat the first
        self.done = min(self.done + count, self.total)
        self.bar.update(self.done, finalize=self.done == self.total)


def loader(shape, resize):
    """``(path, pillow)`` -> uint8 ``shape`` image, by
    ``keras_ae.runtime.images``' recipe; ``pillow`` is ``Scanned.pillow``."""
    import keras

    height, width, channels = shape

    def load(path, pillow):
        image = _read(path, pillow)
        stored = tf.shape(image)[2]
        x = tf.cast(image, tf.float32)
        if channels == 1:
            x = tf.cond(stored >= 3, lambda: tf.image.rgb_to_grayscale(x[..., :3]),
                        lambda: x[..., :1])
        else:
            x = tf.cond(stored >= 3, lambda: x[..., :3],
                        lambda: tf.image.grayscale_to_rgb(x[..., :1]))
        same = tf.reduce_all(tf.shape(x)[:2] == (height, width))
        if resize == "pad":
            resized = lambda: _padded(x, (height, width))  # noqa: E731
        else:
            resized = lambda: keras.ops.image.resize(  # noqa: E731
                x, (height, width), interpolation="bilinear", antialias=True,
                crop_to_aspect_ratio=resize == "crop")
        x = tf.cond(same, lambda: x, resized)
        x = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)
        return tf.ensure_shape(x, shape)
    return load


def _padded(x, size):
    """``keras.ops.image.resize(..., pad_to_aspect_ratio=True)`` without
    the padded image (``keras_ae.runtime.images.padded_steps``): the unpadded axis
    first, then the border, then the other axis. A 1x100000 strip never
    becomes 100000x100000."""
    height, width = tf.shape(x)[0], tf.shape(x)[1]
    target_height, target_width = size
    f32 = tf.float32
    # keras' own arithmetic (keras_ae.runtime.images.resize_window)
    rows = tf.maximum(height, tf.cast(tf.cast(width * target_height, f32)
                                      / target_width, tf.int32))
    columns = tf.maximum(width, tf.cast(tf.cast(height * target_width, f32)
                                        / target_height, tf.int32))
    top = tf.cast(tf.cast(rows - height, f32) / 2, tf.int32)
    left = tf.cast(tf.cast(columns - width, f32) / 2, tf.int32)

    def resize(image, to):
        return tf.image.resize(image, to, method="bilinear", antialias=True)

    def rows_padded():
        border = tf.pad(resize(x, (height, target_width)), [[top, top], [0, 0], [0, 0]])
        return resize(border, size)

    def columns_padded():
        border = tf.pad(resize(x, (target_height, width)), [[0, 0], [left, left], [0, 0]])
        return resize(border, size)
    return tf.cond(top > 0, rows_padded, lambda: tf.cond(
        left > 0, columns_padded, lambda: resize(x, size)))
