"""Which files are read as images, checked before any pixel is: one gate for
the training route (TensorFlow) and the serving route (Pillow).

A user's folder may hold anything: a FIFO or a link to ``/dev/zero`` named
``x.png``, a 4 KB PNG with a 6 GB sparse tail, a TIFF named ``.jpg``, an
animated WebP that TensorFlow's decoder corrupts memory on. Every image
file goes through ``opened`` (or ``inspect``) first, which

1. reads **regular files only** (a FIFO, device, socket or folder is refused
   without being read; the file is opened non-blocking and checked again on
   its descriptor, so a swap after the check cannot block);
2. decides the **format from the content**, never the name: one of
   ``FORMATS`` (PNG, JPEG, BMP, GIF, WebP), on both routes alike;
3. reads the header only, and refuses an image of more than ``max_pixels``
   pixels, or a file larger than any image of its size can be
   (``max_file_bytes``), before anything is decoded;
4. reads the **EXIF orientation** (JPEG, PNG, WebP): both routes turn the
   image upright as a camera meant it (``ImageFile.transpose``).

Which decoder reads a checked file (``ImageFile.decoder``): TensorFlow's
PNG and JPEG decoders on the training route, for upright images; Pillow for
everything else (BMP, GIF, WebP and rotated photos), on both routes, since
TensorFlow reads palette BMPs as their indices, a GIF's first frame without
its canvas, and crashes the process on animated WebP.

No TensorFlow here.

Example:

>>> import tempfile
>>> from PIL import Image
>>> path = tempfile.mkdtemp() + "/photo.jpg"
>>> Image.new("RGB", (64, 48)).save(path, format="PNG")  # a PNG named .jpg
>>> facts = inspect(path)
>>> facts.format, facts.height, facts.width, facts.decoder
('PNG', 48, 64, 'tensorflow')
"""

import contextlib
import dataclasses
import numbers
import os
import threading
import warnings

from keras_ae import files
from keras_ae.errors import InputError

__all__ = ["FORMATS", "ImageFile", "MAX_IMAGE_PIXELS", "check_max_pixels",
           "check_pixels", "describe_size", "inspect", "max_file_bytes", "opened"]

# What both routes read, as Pillow names the formats; decided by content.
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
_SHOWN_NAMES = "PNG, JPEG, BMP, GIF or WebP"
# TensorFlow decodes these on the training route (fast, in tf.data's
# threads); Pillow the rest, and rotated photos.
TENSORFLOW_FORMATS = ("PNG", "JPEG")

# The most pixels one image may have before it is decoded, checked from the
# file's header on both routes: Pillow's own MAX_IMAGE_PIXELS (1 GiB / 4 / 3,
# the size above which Pillow warns of a decompression bomb). Memory per
# pixel decoded: docs/benchmarks.md. ``None`` lifts the limit.
MAX_IMAGE_PIXELS = 89_478_485

# Bytes a file may hold beyond its pixels at 8 bytes each (16-bit RGBA
# uncompressed): headers, colour profiles, EXIF, thumbnails.
FILE_BYTES_BESIDE_PIXELS = 16 * 2 ** 20

# Pillow's Image.transpose methods for EXIF orientations 2 to 8 (what
# PIL.ImageOps.exif_transpose does); 5 to 8 swap height and width.
_ORIENTATION_TRANSPOSES = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM",
                           5: "TRANSPOSE", 6: "ROTATE_270", 7: "TRANSVERSE",
                           8: "ROTATE_90"}
_EXIF_ORIENTATION = 0x0112

_PILLOW_LIMIT = threading.Lock()


def describe_size(height, width):
    """``"427x640"``: how sizes are shown, height first as in ``image_size``."""
    return f"{height}x{width}"


def check_max_pixels(max_pixels):
    """``max_pixels`` if it is a positive int or ``None``; else ValueError."""
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(
            max_pixels, numbers.Integral) or max_pixels < 1):
        raise InputError(f"max_image_pixels must be a positive integer or None, "
                         f"got {max_pixels!r}.")
    return max_pixels


def check_pixels(height, width, max_pixels, what):
    """Refuses an image of more than ``max_pixels`` pixels, naming it."""
    if max_pixels is not None and height * width > max_pixels:
        raise InputError(
            f"{what} is {describe_size(height, width)} ({height * width:,} "
            f"pixels), over the limit of {max_pixels:,} pixels an image may "
            f"have before it is decoded; raise it with max_image_pixels=... "
            f"(--max-image-pixels N) for an image you trust.")


def max_file_bytes(height, width):
    """The largest file an image of ``height`` x ``width`` may be: its pixels
    at 8 bytes (16-bit RGBA, uncompressed, a filter byte per row) and
    ``FILE_BYTES_BESIDE_PIXELS`` more. Larger files are refused unread.

    >>> max_file_bytes(28, 28) // 2 ** 20
    16
    """
    return FILE_BYTES_BESIDE_PIXELS + height * (8 * width + 1)


class RefusedImage(InputError):
    """An image file refused before decoding; ``reason`` says why without
    the file's name (for lists of files)."""

    def __init__(self, path, reason, sentence=None):
        super().__init__(f"{path} {sentence or reason}")
        self.path, self.reason = path, reason


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """What ``inspect`` found in a file, nothing decoded.

    Attributes:
        path: the file, as given.
        format: one of ``FORMATS``, from the content.
        height, width: the image's size upright (after its EXIF orientation).
        orientation: the EXIF orientation, 1 (upright) to 8.
    """

    path: str
    format: str
    height: int
    width: int
    orientation: int = 1

    @property
    def decoder(self):
        """``"tensorflow"`` or ``"pillow"``: who decodes it on the training
        route (serving always uses Pillow)."""
        return ("tensorflow" if self.format in TENSORFLOW_FORMATS
                and self.orientation == 1 else "pillow")

    def transpose(self, image):
        """A Pillow image of this file turned upright."""
        method = _ORIENTATION_TRANSPOSES.get(self.orientation)
        if method is None:
            return image
        from PIL import Image

        return image.transpose(getattr(Image.Transpose, method))


def _sniffed(head):
    """The format of a file that starts with ``head``, or ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM"):
        return "BMP"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _open_regular(path):
    """``path`` opened by ``files.open_regular``, its refusals said as an
    image's. Raises FileNotFoundError or ``RefusedImage``."""
    try:
        return files.open_regular(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no image file at {path}") from None
    except files.NotRegularFile as refused:
        raise RefusedImage(path, f"is {refused.kind}, not a regular file; only "
                                 f"regular files are read as images") from None


def _orientation(image):
    """The EXIF orientation in the file's header (1 where none), read
    without decoding: Pillow's ``getexif`` would decode a whole PNG."""
    exif = image.info.get("exif")
    if not exif:
        return 1
    from PIL import Image

    try:
        parsed = Image.Exif()
        parsed.load(exif)
        value = parsed.get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - damaged EXIF: Pillow raises many kinds
        return 1
    return value if value in _ORIENTATION_TRANSPOSES else 1


@contextlib.contextmanager
def opened(path, max_pixels=MAX_IMAGE_PIXELS):
    """A checked image file, opened by Pillow (header read, nothing decoded).

    Args:
        path: the file.
        max_pixels: the most pixels its image may have; ``None``: no limit.

    Yields:
        ``(ImageFile, PIL.Image.Image)``; the file is closed on leaving.

    Raises:
        FileNotFoundError: for a path with no file.
        RefusedImage: (a ValueError) naming the file and why: not a regular
            file, not one of ``FORMATS``, a header Pillow cannot read, more
            than ``max_pixels`` pixels, more bytes than ``max_file_bytes``.
    """
    path = os.fspath(path)
    check_max_pixels(max_pixels)
    with _open_regular(path) as stream:
        head = stream.read(16)
        kind = _sniffed(head)
        if kind is None:
            raise RefusedImage(path, f"is not a {_SHOWN_NAMES} file (it starts "
                                     f"with {head[:8]!r}); convert it to one of those")
        stream.seek(0)
        try:
            image = _open_without_pillow_limit(stream, kind)
        except (OSError, SyntaxError, ValueError) as error:
            raise RefusedImage(path, f"is not an image Pillow can read: "
                                     f"{error}") from None
        with image:
            orientation = _orientation(image)
            height, width = image.height, image.width
            if orientation >= 5:
                height, width = width, height
            if max_pixels is not None and height * width > max_pixels:
                raise RefusedImage(
                    path, f"{describe_size(height, width)}, {height * width:,} "
                          f"pixels, over the limit of {max_pixels:,}; see "
                          f"--max-image-pixels",
                    f"is {describe_size(height, width)} ({height * width:,} "
                    f"pixels), over the limit of {max_pixels:,} pixels an "
                    f"image may have before it is decoded; raise it with "
                    f"max_image_pixels=... (--max-image-pixels N) for an "
                    f"image you trust.")
            size = os.fstat(stream.fileno()).st_size
            if size > max_file_bytes(height, width):
                raise RefusedImage(path, (
                    f"is {size:,} bytes, more than a {describe_size(height, width)} "
                    f"image can take ({max_file_bytes(height, width):,}): data "
                    f"beyond the image; save the image again to drop it"))
            yield ImageFile(path, kind, height, width, orientation), image


def inspect(path, max_pixels=MAX_IMAGE_PIXELS):
    """``opened``'s ``ImageFile`` alone: the checks, nothing decoded."""
    with opened(path, max_pixels) as (facts, _):
        return facts


def _open_without_pillow_limit(stream, kind):
    """``Image.open`` of one format, with Pillow's decompression-bomb limit
    lifted for the call (keras_ae checks its own, ``max_pixels``)."""
    from PIL import Image

    with _PILLOW_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(stream, formats=[kind])
        finally:
            Image.MAX_IMAGE_PIXELS = previous
