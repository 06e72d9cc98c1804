"""How image files become a model's images: one recipe, two implementations.

Training reads folders with TensorFlow (``keras_ae.data.folders``); serving must
prepare a photo exactly as training did, with NumPy and Pillow only
(``keras_ae.runtime.onnx_autoencoder``). This module holds the recipe's settings and its
Pillow implementation, ``read_image``; it imports no TensorFlow.

The recipe, in order:

0. **Check** the file before reading it (``keras_ae.runtime.image_files``):
   a regular file, PNG, JPEG, BMP, GIF or WebP by its content, within the
   pixel limit and the bytes an image of its size can take.
1. **Decode**, 8 bits per channel, turned upright by the file's EXIF
   orientation: the first frame of a GIF (on its canvas) or WebP; JPEG with the
   accurate integer IDCT (Pillow's and libjpeg's default; TensorFlow's own
   default, the fast IDCT, differs from it: docs/benchmarks.md, "JPEG
   decoding", measured by hand);
   16-bit PNG by its high byte.
2. **Colour**: alpha is dropped; grey becomes RGB by copying it into the
   three channels, RGB becomes grey with the ITU-R 601 weights of
   ``tf.image.rgb_to_grayscale`` (``GRAY_WEIGHTS``).
3. **Size**, only when it differs from the target: bilinear with
   antialiasing (a triangle filter as wide as the scale, so shrinking a
   photo averages its pixels instead of skipping them), after
   ``RESIZE_MODES``:

   - ``"stretch"`` (the default): the whole image to the target size,
     aspect ratio not kept. Nothing is cut off (a defect at the edge stays
     in) and no border is added for the model to learn; training and serving
     distort alike, and the reconstruction target is the same resized
     image. It is also ``keras.utils.image_dataset_from_directory``'s
     default.
   - ``"crop"``: the largest centred window of the target's aspect ratio,
     then resized: keeps shapes, loses the edges.
   - ``"pad"``: black borders to the target's aspect ratio, then resized:
     keeps shapes and every pixel, spends code on the borders.

   Crop and pad windows follow ``keras.ops.image.resize``'s
   ``crop_to_aspect_ratio`` and ``pad_to_aspect_ratio`` to the pixel.
4. **Round** to uint8, as training caches and feeds them.

Example:

>>> from PIL import Image
>>> photo = Image.new("RGB", (64, 48), (255, 0, 0))  # 48 high, 64 wide, red
>>> image = read_image(photo, (32, 32, 1))
>>> image.shape, image.dtype.name, int(image[0, 0, 0])
((32, 32, 1), 'uint8', 76)
"""

import numbers
import os

import numpy as np

from keras_ae.errors import InputError
from keras_ae.runtime import image_files
from keras_ae.runtime.pixels import checked_values

__all__ = ["COLOR_MODES", "DEFAULT_RESIZE", "GRAY_WEIGHTS", "IMAGE_EXTENSIONS",
           "MAX_IMAGE_PIXELS", "RESIZE_MODES", "check_image_size",
           "check_max_pixels", "check_pixels", "check_preprocessing",
           "check_resize", "describe_size",
           "padded_steps",
           "parse_image_size", "read_image", "resize_window"]

# What TensorFlow's decode_image and Pillow both read.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
RESIZE_MODES = ("stretch", "crop", "pad")
DEFAULT_RESIZE = "stretch"
COLOR_MODES = ("grayscale", "rgb")
CHANNELS = {"grayscale": 1, "rgb": 3}
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale's

# Pillow modes whose pixels are grey levels (with or without alpha).
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


# --- settings ---------------------------------------------------------------

def parse_image_size(text):
    """``"32x48"`` -> ``(32, 48)`` (height x width); ``"32"`` -> ``(32, 32)``.

    Args:
        text: ``"HxW"`` or one number for a square.

    Returns:
        ``(height, width)`` as ints.

    Raises:
        ValueError: for anything else, saying what is expected.

    Example:

    >>> parse_image_size("32x48"), parse_image_size("64")
    ((32, 48), (64, 64))
    """
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        size = tuple(int(part) for part in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise InputError(
            f"expected an image size HxW (height x width) such as 32x32, or "
            f"one number for a square; got {text!r}")
    return size


def check_image_size(image_size):
    """``image_size`` as ``(height, width)`` ints, or ``None``; else ValueError."""
    if image_size is None:
        return None
    if isinstance(image_size, str):
        return parse_image_size(image_size)
    try:
        size = tuple(image_size)
    except TypeError:
        size = ()
    if len(size) != 2 or any(not isinstance(d, numbers.Integral)
                             or isinstance(d, bool) or d < 1 for d in size):
        raise InputError(
            f"image_size must be (height, width), two positive integers, or "
            f"None to keep the images' own size; got {image_size!r}.")
    return tuple(int(d) for d in size)


def check_resize(resize):
    """``resize`` if it is one of ``RESIZE_MODES``; else ValueError."""
    if resize not in RESIZE_MODES:
        raise InputError(
            f"resize must be one of {', '.join(map(repr, RESIZE_MODES))}, got "
            f"{resize!r}.")
    return resize


def check_preprocessing(preprocessing):
    """A recorded recipe (``ImageData.preprocessing``) checked, or ``None``.

    Args:
        preprocessing: ``None``, or a dict with ``"resize"`` (one of
            ``RESIZE_MODES``) and optionally ``"image_size"`` (``[H, W]`` or
            ``None``) and ``"color_mode"`` (one of ``COLOR_MODES``).

    Returns:
        ``{"image_size": [H, W] or None, "resize": ..., "color_mode": ...}``
        (a missing colour mode is ``None``), or ``None``.

    Raises:
        ValueError: for anything else, naming the wrong entry.

    Example:

    >>> check_preprocessing({"resize": "crop"})
    {'image_size': None, 'resize': 'crop', 'color_mode': None}
    """
    if preprocessing is None:
        return None
    if not isinstance(preprocessing, dict):
        raise InputError(
            f"preprocessing must be a dict such as {{'resize': 'stretch'}}, got "
            f"{preprocessing!r}.")
    size = check_image_size(preprocessing.get("image_size"))
    color_mode = preprocessing.get("color_mode")
    if color_mode is not None and color_mode not in COLOR_MODES:
        raise InputError(
            f"preprocessing color_mode must be one of {COLOR_MODES}, got "
            f"{color_mode!r}.")
    return {"image_size": None if size is None else list(size),
            "resize": check_resize(preprocessing.get("resize", DEFAULT_RESIZE)),
            "color_mode": color_mode}


describe_size = image_files.describe_size


def resize_window(height, width, target, resize):
    """Where the crop or pad of ``resize`` puts an image, before resizing.

    The arithmetic is ``keras.ops.image.resize``'s (float32 products,
    truncated), so that both implementations pick the same pixels.

    Args:
        height, width: the image's size.
        target: ``(height, width)`` to reach.
        resize: one of ``RESIZE_MODES``.

    Returns:
        ``(top, left, rows, columns)``: for ``"crop"`` the window kept; for
        ``"pad"`` the black border added above and left (the same again
        below and right) and the image's own size; for ``"stretch"``
        ``(0, 0, height, width)``.

    Example:

    >>> resize_window(427, 640, (32, 32), "crop")  # a centred square
    (0, 106, 427, 427)
    >>> resize_window(427, 640, (32, 32), "pad")
    (106, 0, 427, 640)
    """
    if resize == "stretch":
        return 0, 0, height, width
    f32 = np.float32
    target_height, target_width = target
    window_height = int(f32(width * target_height) / f32(target_width))
    window_width = int(f32(height * target_width) / f32(target_height))
    if resize == "crop":
        rows = max(min(height, window_height), 1)
        columns = max(min(width, window_width), 1)
        return (int(f32(height - rows) / f32(2)), int(f32(width - columns) / f32(2)),
                rows, columns)
    check_resize(resize)
    rows, columns = max(height, window_height), max(width, window_width)
    return (int(f32(rows - height) / f32(2)), int(f32(columns - width) / f32(2)),
            height, width)


# --- the pixel limit and the files read ---------------------------------------

# The checks before anything is decoded live in keras_ae.runtime.image_files,
# for both routes.
MAX_IMAGE_PIXELS = image_files.MAX_IMAGE_PIXELS
check_max_pixels = image_files.check_max_pixels
check_pixels = image_files.check_pixels


def stored_pixels(path):
    """A checked file's pixels decoded by Pillow, upright, as TensorFlow's
    decoders would give them: uint8 ``(h, w, c)``, c 1 (grey), 3 or 4.
    What the training route reads where ``ImageFile.decoder`` is Pillow's
    (the pixel limit was checked by the scan before)."""
    pixels = _source_array(path, None)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return np.ascontiguousarray(pixels.astype(np.uint8, copy=False))


# --- the Pillow implementation ----------------------------------------------

def _image_array(image):
    """A Pillow image's first frame as an array to make planes of: grey
    levels ``(h, w)`` (uint8, or float32 for 16-bit and float images), or
    colour ``(h, w, 3 or 4)`` uint8."""
    if image.tell() != 0:
        image.seek(0)  # a GIF's or WebP's first frame, as a file's is read
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        # TensorFlow keeps a 16-bit PNG's high byte; Pillow's own
        # conversion to "L" would clip instead.
        values = np.asarray(image)
        _check_range(values, 0, 65535, "a 16-bit image")
        return (values.astype(np.int32) >> 8).astype(np.float32)
    if mode == "F":  # float grey levels: Pillow's "L" would turn NaN into 0
        values = np.asarray(image, np.float32)
        _check_range(values, 0, 255, 'a float ("F") image')
        return values
    if mode in _GREY_MODES:  # convert copies, even an "L" image to "L"
        return np.asarray(image if mode == "L" else image.convert("L"))
    if mode not in ("RGB", "RGBA", "RGBX", "RGBa"):
        image = image.convert("RGB")  # palette, CMYK, YCbCr, ...
    return np.asarray(image)


def _check_range(values, low, high, what):
    """Refuses NaN, infinities and values outside [low, high]."""
    if not values.size:
        return
    smallest, largest = values.min(), values.max()
    if not (np.isfinite(smallest) and np.isfinite(largest)):
        raise InputError(f"{what} must hold finite values; this one holds NaN "
                         f"or infinite values.")
    if smallest < low or largest > high:
        raise InputError(f"{what} must hold values from {low} to {high}; this "
                         f"one holds {smallest:g} to {largest:g}.")


def _planes(pixels, channels):
    """float32 ``(h, w)`` planes in [0, 255] of an ``_image_array`` (or a
    checked array) for ``channels``, made one at a time (a generator), so
    that memory holds the array and one plane, never a float copy of every
    channel; the grey of colour is made a block of rows at a time."""
    if pixels.ndim == 2 or pixels.shape[-1] < 3:
        plane = (pixels if pixels.ndim == 2 else pixels[..., 0]).astype(
            np.float32, copy=False)
        yield from [plane] * channels  # grey to RGB copies it into each channel
        return
    if channels == 3:
        for c in range(3):
            yield pixels[..., c].astype(np.float32)
        return
    weights = np.asarray(GRAY_WEIGHTS, np.float32)
    grey = np.empty(pixels.shape[:2], np.float32)
    rows = max(1, 2 ** 20 // max(1, pixels.shape[1]))
    for top in range(0, len(grey), rows):
        grey[top:top + rows] = pixels[top:top + rows, :, :3].astype(np.float32) @ weights
    yield grey


def _source_array(source, max_pixels):
    """The array ``_planes`` makes planes of, from a path, a Pillow image or
    an array (uint8 in [0, 255], float in [0, 1])."""
    from PIL import Image

    if isinstance(source, (str, os.PathLike)):
        with image_files.opened(source, max_pixels) as (facts, image):
            try:
                image.load()
                # the file's image is closed on return
                return _image_array(facts.transpose(image))
            except InputError as error:
                raise InputError(f"{os.fspath(source)}: {error}") from None
            except (OSError, SyntaxError, ValueError) as error:
                # Pillow says "image file is truncated" and the like.
                raise InputError(f"{os.fspath(source)} is not an image Pillow "
                                 f"can read: {error}") from None
    if isinstance(source, Image.Image):
        check_pixels(source.height, source.width, max_pixels, "the image")
        return _image_array(source)
    return _array_pixels(source)


def _array_pixels(array):
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4) or not array.size:
        raise InputError(
            f"an image array must be (H, W) or (H, W, C) with C 1 to 4, got "
            f"shape {array.shape}.")
    array = checked_values(array, "an image array")
    return array if array.dtype == np.uint8 else array * np.float32(255)


def _resize_plane(plane, size):
    """Bilinear with antialiasing in Pillow's float mode (which matches
    ``tf.image.resize(..., antialias=True)`` to about 1e-6); an axis whose
    size does not change is left as it is."""
    from PIL import Image

    if plane.shape == tuple(size):
        return plane
    picture = Image.fromarray(np.ascontiguousarray(plane))
    return np.asarray(picture.resize(size[::-1], Image.Resampling.BILINEAR))


def padded_steps(height, width, target):
    """How ``"pad"`` reaches ``target`` without the padded image: the
    unpadded axis is resized first, then the border added, then the other
    axis resized. (Resizing is separable, and a border row stays zero,
    so this is the padded image's resize; a 1x100000 strip never becomes
    100000x100000.)

    Returns:
        ``(first, padding, second)``: the size after the first resize,
        ``((top, bottom), (left, right))`` for the border, and ``target``.

    Example:

    >>> padded_steps(1, 100000, (28, 28))
    ((1, 28), ((49999, 49999), (0, 0)), (28, 28))
    """
    top, left, _, _ = resize_window(height, width, target, "pad")
    if top:  # border above and below: widths first
        return (height, target[1]), ((top, top), (0, 0)), tuple(target)
    return (target[0], width), ((0, 0), (left, left)), tuple(target)


def _resized(plane, target, resize):
    """One plane at ``target`` by the recipe's ``resize``."""
    height, width = plane.shape
    if resize == "pad" and any(resize_window(height, width, target, "pad")[:2]):
        first, padding, second = padded_steps(height, width, target)
        return _resize_plane(np.pad(_resize_plane(plane, first), padding), second)
    top, left, rows, columns = resize_window(height, width, target, resize)
    return _resize_plane(plane[top:top + rows, left:left + columns], target)


def read_image(source, shape, resize=DEFAULT_RESIZE, *,
               max_pixels=MAX_IMAGE_PIXELS):
    """One image prepared as training prepared the model's images.

    Args:
        source: a file path (PNG, JPEG, BMP, GIF, WebP), a Pillow image, or
            an array ``(H, W)`` / ``(H, W, C)``, uint8 in [0, 255] or float
            in [0, 1], of any size and 1 to 4 channels.
        shape: ``(height, width, channels)`` to reach; channels 1 (grey) or
            3 (RGB).
        resize: how to reach a different size, one of ``RESIZE_MODES``, or
            ``None`` to refuse images of another size.
        max_pixels: the most pixels a file or Pillow image may have, checked
            before it is decoded (``MAX_IMAGE_PIXELS``); ``None`` for no limit.

    Returns:
        A uint8 array of ``shape``.

    Raises:
        FileNotFoundError: for a path with no file.
        ValueError: naming the file, for one Pillow cannot read or one over
            ``max_pixels``; for an image of another size with
            ``resize=None``; for NaN or out-of-range values; for a bad
            array, shape or mode.

    Example:

    >>> read_image(np.zeros((10, 20), np.uint8), (10, 20, 3)).shape
    (10, 20, 3)
    """
    height, width, channels = shape
    if channels not in (1, 3):
        raise InputError(
            f"images are read as grey (1 channel) or RGB (3 channels); the "
            f"model takes {channels}.")
    if resize is not None:
        check_resize(resize)
    check_max_pixels(max_pixels)
    pixels = _source_array(source, max_pixels)
    if pixels.shape[:2] != (height, width) and resize is None:
        what = source if isinstance(source, (str, os.PathLike)) else "the image"
        raise InputError(
            f"{what} is {describe_size(*pixels.shape[:2])} (height x "
            f"width); the model takes {describe_size(height, width)}. "
            f"Resize it (resize=..., --resize).")
    planes, previous = [], None
    for plane in _planes(pixels, channels):
        if plane is not previous:  # a grey plane copied to RGB is resized once
            previous, result = plane, (
                plane if plane.shape == (height, width)
                else _resized(plane, (height, width), resize))
        planes.append(result)
    del pixels, plane, previous
    out = np.stack(planes, axis=-1)
    return np.round(np.clip(out, 0, 255)).astype(np.uint8)
