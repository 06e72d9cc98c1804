"""Image files decoded in TensorFlow, by ``keras_ae.runtime.images``' recipe: the
TensorFlow half of it (serving's half is Pillow's, in ``keras_ae.runtime.images``).

- ``scan``: every file checked once before training: the pixel limit from
  each file's header (nothing over it is decoded), then one parallel pass
  that decodes the rest for their sizes and colour, and finds the ones that
  do not decode;
- ``loader``: what ``tf.data`` maps over file names to make a model's
  images (colour, size, rounding), the ``pad`` resize without the padded
  image (``keras_ae.runtime.images.padded_steps``).

File names go to TensorFlow as bytes (``as_bytes``), so that names that are
not UTF-8 are read as they are.
"""

import os

import numpy as np
import tensorflow as tf

from keras_ae.runtime import images as recipe

__all__ = ["Progress", "as_bytes", "error_reason", "loader", "reason", "scan"]


def _decode(contents):
    """uint8 ``(h, w, c)`` as stored (c 1 to 4), first frame of a GIF."""
    # decode_image would take JPEG's fast IDCT, which differs from Pillow's
    # (and serving's; docs/benchmarks.md, "JPEG decoding"); the accurate one
    # matches.
    return tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, expand_animations=False))


def _probe(index, path):
    """``(index, height, width, grey)`` of one file; an error if unreadable."""
    image = _decode(tf.io.read_file(path))
    shape = tf.shape(image)
    grey = tf.cond(shape[2] < 3, lambda: tf.constant(True), lambda: tf.reduce_all(
        tf.logical_and(image[..., 0] == image[..., 1],
                       image[..., 1] == image[..., 2])))
    return index, shape[0], shape[1], grey


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


def _over_limit(paths, max_pixels):
    """``{index: reason}`` of the files whose header gives more than
    ``max_pixels`` pixels: they are never decoded. (A file Pillow cannot
    identify is left to TensorFlow's decoder, which says why.)"""
    over = {}
    if max_pixels is None:
        return over
    for index, path in enumerate(paths):
        size = recipe.header_size(path)
        if size is not None and size[0] * size[1] > max_pixels:
            over[index] = (f"{recipe.describe_size(*size)}, {size[0] * size[1]:,} "
                           f"pixels, over the limit of {max_pixels:,}; see "
                           f"--max-image-pixels")
    return over


def scan(paths, verbose, max_pixels):
    """Reads every file once: ``{index: (height, width, grey)}`` and
    ``{index: reason}`` of those that are not read (``None``: TensorFlow's
    decoder failed, ``error_reason`` says why)."""
    over = _over_limit(paths, max_pixels)
    kept = [i for i in range(len(paths)) if i not in over]
    indices = tf.data.Dataset.from_tensor_slices(
        (np.asarray(kept, np.int64), as_bytes([paths[i] for i in kept])))
    probes = (indices.map(_probe, num_parallel_calls=tf.data.AUTOTUNE)
              .ignore_errors().batch(512).prefetch(2))
    found = {}
    progress = Progress(len(paths), verbose, "checking")
    for index, height, width, grey in probes.as_numpy_iterator():
        found.update(zip(index.tolist(), zip(height.tolist(), width.tolist(),
                                             grey.tolist())))
        progress.advance(len(index))
    progress.advance(len(paths))  # every file was tried, unreadable ones too
    bad = {i: over.get(i) for i in range(len(paths)) if i not in found}
    return found, bad


def reason(paths, bad, index):
    """Why ``paths[index]`` is not read: the pixel limit's words, or the
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
    """path -> uint8 ``shape`` image, by ``keras_ae.runtime.images``' recipe."""
    import keras

    height, width, channels = shape

    def load(path):
        image = _decode(tf.io.read_file(path))
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
