"""tf.data pipelines of images for training autoencoders.

Every route ends in an ``ImageData``: batched ``(input, target)`` pairs of
float32 images in [0, 1], shaped ``(batch, H, W, C)`` with a channel axis
even for grey images, split into ``train`` (shuffled with the seed, afresh
each epoch), ``validation`` and ``test``. With ``noise_factor > 0`` the input
is a noisy copy of the clean target (a denoising autoencoder).

Where the images come from:

- ``from_arrays``: NumPy arrays already in memory;
- ``from_idx``: a folder of IDX files, the format of MNIST and Fashion-MNIST
  (Debian's ``dataset-fashion-mnist`` installs Fashion-MNIST in
  ``FASHION_MNIST_DIR``);
- ``from_tfds``: a tensorflow-datasets image dataset such as ``"mnist"``,
  which needs the internet unless it is already prepared;
- ``from_directory``: a folder of image files (PNG, JPEG, BMP, GIF, WebP)
  of any size and colour, with class subfolders for labels and ``train/``
  and ``test/`` subfolders where the split is given (``keras_ae.data.folders``);
- ``load``: picks one of the first three, preferring files on disk.

``read_idx`` and ``write_idx`` read and write single IDX files.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> data = from_arrays(rng.integers(0, 256, (100, 8, 8), dtype=np.uint8),
...                    rng.integers(0, 256, (20, 8, 8), dtype=np.uint8),
...                    batch_size=32)
>>> (data.num_train, data.num_validation, data.num_test, data.image_shape)
(90, 10, 20, (8, 8, 1))
>>> inputs, targets = next(iter(data.train))
>>> inputs.shape, inputs.dtype.name
(TensorShape([32, 8, 8, 1]), 'float32')
"""

import dataclasses
import gzip
import math
import os
import zlib

import numpy as np

from keras_ae import files
from keras_ae.errors import DatasetUnavailableError, InputError
from keras_ae.data.folders import from_directory
from keras_ae.data.source import DataSource
from keras_ae.runtime.pixels import checked_values
from keras_ae.data.tfds import from_tfds
from keras_ae.data.pipelines import (ImageData, array_split, assemble,
                                check_options, keep_classes, validation_size)

__all__ = [
    "FASHION_MNIST_DIR",
    "DatasetUnavailableError",
    "ImageData",
    "MissingDataError",
    "from_arrays",
    "from_directory",
    "keep_classes",
    "from_idx",
    "from_tfds",
    "load",
    "load_idx_folder",
    "read_idx",
    "write_idx",
]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # dataset-fashion-mnist

# IDX type byte -> element type (big-endian, as the format stores them).
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {(d.kind, d.itemsize): code for code, d in _IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
# The most data one IDX file may hold (EMNIST's largest is 0.6 GiB): a header
# claiming more is refused before anything is allocated or decompressed.
MAX_IDX_BYTES = 2 * 2 ** 30

# Standard MNIST file names: split -> (images file, labels file).
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_APT_HINT = (f"for Fashion-MNIST, `apt-get install dataset-fashion-mnist` puts "
             f"these files in {FASHION_MNIST_DIR}")


class MissingDataError(FileNotFoundError, InputError):
    """A folder lacks an IDX file that it should hold.

    Both a ``FileNotFoundError`` and a ``ValueError`` (``InputError``), so
    either ``except`` catches it.
    """


# --- IDX files -------------------------------------------------------------

def read_idx(path):
    """Reads one IDX file (the format of MNIST), gzip-compressed or not.

    Compression is detected from the gzip magic bytes, not from the name.

    Args:
        path: the file.

    Returns:
        A NumPy array of the stored shape, in native byte order: ``uint8``
        for the usual unsigned-byte files; ``int8``, ``int16``, ``int32``,
        ``float32`` or ``float64`` for the other IDX types.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: naming the file, for a bad gzip stream, a bad magic
            number, an unknown type byte, or a payload whose size does not
            match the header's dimensions (expected vs. got bytes).

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> write_idx(path, np.array([7, 2, 1], dtype=np.uint8))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    path = os.fspath(path)
    try:
        file = files.open_regular(path)
    except files.NotRegularFile as refused:
        raise InputError(f"{path} is {refused.kind}, not a regular file; expected an "
                         f"IDX file.") from None
    try:
        # Streamed, header first: a gzip bomb is never decompressed whole,
        # only as far as the array its header describes (and a step more).
        with file:
            compressed = file.read(2) == _GZIP_MAGIC
            file.seek(0)
            stream = gzip.GzipFile(fileobj=file) if compressed else file
            head = stream.read(4)
            head += stream.read(4 * head[3]) if len(head) == 4 else b""
            dtype, shape, _ = _idx_header(head, path)
            expected = math.prod(shape) * dtype.itemsize
            if expected > MAX_IDX_BYTES:
                raise InputError(
                    f"{path} claims shape {shape} of {dtype.name}, "
                    f"{expected / 2 ** 30:.1f} GiB of data; at most "
                    f"{MAX_IDX_BYTES / 2 ** 30:.0f} GiB is read from one IDX "
                    f"file (split it, or pass arrays to from_arrays).")
            raw = bytearray(expected)
            got = _read_into(stream, memoryview(raw))
            if got == expected:
                got += len(stream.read(2 ** 20))
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise InputError(f"{path} is not a valid gzip file: {err}.") from err
    if got != expected:
        problem = "truncated" if got < expected else "too long"
        more = " or more" if got == expected + 2 ** 20 else ""
        raise InputError(
            f"{path} is {problem}: its header says shape {shape} of "
            f"{dtype.name}, which is {expected} bytes of data, got {got}{more} bytes.")
    array = np.frombuffer(raw, dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=dtype.byteorder not in "=|")


def _read_into(stream, buffer):
    """Fills ``buffer`` from ``stream`` as far as it goes; the bytes read."""
    filled = 0
    while filled < len(buffer):
        count = stream.readinto(buffer[filled:])
        if not count:
            break
        filled += count
    return filled


def _idx_header(raw, path):
    """``(dtype, shape, data offset)`` from the start of an IDX file."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise InputError(
            f"{path} is not an IDX file: expected a magic number 00 00 TT NN "
            f"with type TT in {sorted(hex(t) for t in _IDX_DTYPES)}, got "
            f"{raw[:4].hex(' ') or 'an empty file'}.")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise InputError(
            f"{path} is truncated: its header needs {offset} bytes for "
            f"{ndim} dimensions, got {len(raw)} bytes.")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    return _IDX_DTYPES[raw[2]], shape, offset


def write_idx(path, array):
    """Writes an array as an IDX file, atomically; gzip if ``path`` ends in .gz.

    The data go to a temporary file in the same folder, which then replaces
    ``path``, so readers never see a half-written file.

    Args:
        path: the file to write.
        array: array-like of ``uint8``, ``int8``, ``int16``, ``int32``,
            ``float32`` or ``float64``, with 1 to 255 dimensions.

    Returns:
        None.

    Raises:
        ValueError: for another dtype, no dimensions or more than 255.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "images-idx3-ubyte")
    >>> write_idx(path, np.zeros((2, 3, 3), dtype=np.uint8))
    >>> os.path.getsize(path)  # 4-byte magic, 3 4-byte sizes, 18 pixels
    34
    """
    path = os.fspath(path)
    array = np.asarray(array)
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise InputError(
            f"write_idx stores uint8, int8, int16, int32, float32 or float64 "
            f"arrays, got dtype {array.dtype}.")
    if not 1 <= array.ndim <= 255:
        raise InputError(
            f"write_idx needs an array with 1 to 255 dimensions, got shape "
            f"{array.shape}.")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(
        array.shape, ">u4").tobytes()
    payload = header + array.astype(_IDX_DTYPES[code], copy=False).tobytes()
    if path.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)  # same array, same bytes
    files.write_bytes(path, payload)


def _find_idx_files(directory):
    """``({standard name: path}, [names missing])``; ``.gz`` or plain."""
    found, missing = {}, []
    for name in (n for pair in IDX_FILES.values() for n in pair):
        for candidate in (name, name + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                found[name] = path
                break
        else:
            missing.append(name)
    return found, missing


def load_idx_folder(directory):
    """Reads the four standard MNIST-style IDX files of a folder.

    The files are ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each plain or
    with ``.gz``.

    Args:
        directory: the folder, e.g. ``FASHION_MNIST_DIR``.

    Returns:
        ``{"train": (images, labels), "test": (images, labels)}`` with
        ``uint8`` images of shape ``(N, H, W, 1)`` and labels of shape
        ``(N,)`` as stored (``uint8`` for MNIST).

    Raises:
        MissingDataError: naming the missing files, the names looked for and
            the folder.
        ValueError: naming the file, for a malformed file (see
            ``read_idx``), images that are not ``uint8`` of shape
            ``(N, H, W)``, labels that are not 1-D integers, or a number of
            labels that differs from the number of images.

    Example::

        splits = load_idx_folder(FASHION_MNIST_DIR)
        splits["train"][0].shape  # (60000, 28, 28, 1)
    """
    directory = os.fspath(directory)
    found, missing = _find_idx_files(directory)
    if missing:
        looked_for = ", ".join(f"{n}[.gz]" for n in missing)
        where = ("" if os.path.isdir(directory)
                 else " (the folder does not exist)")
        raise MissingDataError(
            f"{directory}{where} lacks {len(missing)} IDX file(s): looked for "
            f"{looked_for}; {_APT_HINT}.")
    return {split: _read_split(found[images], found[labels])
            for split, (images, labels) in IDX_FILES.items()}


def _read_split(images_path, labels_path):
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise InputError(
            f"{images_path} should hold uint8 images of shape (N, H, W), got "
            f"{images.dtype} of shape {images.shape}.")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise InputError(
            f"{labels_path} should hold integer labels of shape (N,), got "
            f"{labels.dtype} of shape {labels.shape}.")
    if len(labels) != len(images):
        raise InputError(
            f"{labels_path} holds {len(labels)} labels but {images_path} "
            f"holds {len(images)} images; expected one label per image.")
    return images[..., np.newaxis], labels


# --- arrays and IDX folders ------------------------------------------------

def _check_images(name, images):
    """uint8 or float32 images with a channel axis, floats in [0, 1]."""
    images = np.asarray(images)
    if images.ndim not in (3, 4) or not images.shape[0]:
        raise InputError(
            f"{name} must be a non-empty array of shape (N, H, W) or "
            f"(N, H, W, C), got shape {images.shape}.")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return checked_values(images, name)


def _check_labels(name, labels, num_images):
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != num_images:
        raise InputError(
            f"{name} must hold one label per image, shape ({num_images},), "
            f"got shape {labels.shape}.")
    if len(labels) and labels.dtype.kind not in "iu":
        raise InputError(f"{name} must be integers, got dtype {labels.dtype}.")
    return labels.astype(np.int64)



def from_arrays(train_images, test_images, *, train_labels=None,
                test_labels=None, batch_size=256, validation_split=0.1,
                noise_factor=0.0, seed=0, cache=True):
    """Pipelines over images already in memory.

    A seeded random ``validation_split`` of the training images becomes the
    validation split (kept in their original order, as is the rest).

    Args:
        train_images: ``(N, H, W)`` or ``(N, H, W, C)`` array, ``uint8``
            (divided by 255) or float already in [0, 1].
        test_images: the same, with the same ``H, W, C``.
        train_labels, test_labels: optional integer labels, one per image,
            for ``ImageData.labeled``.
        batch_size: images per batch.
        validation_split: fraction of the training images held out for
            validation, in [0, 1); 0 makes no validation split.
        noise_factor: standard deviation of the Gaussian noise added to the
            inputs (then clipped to [0, 1]); 0 for a plain autoencoder.
        seed: seeds the validation split, the shuffling and the noise. Runs
            with the same seed (and the same global TensorFlow seed, if one
            is set, as ``tf.data`` mixes it into shuffling) see the same
            batches.
        cache: cache decoded images in memory (``from_tfds``); arrays are
            in memory already, so here it is only checked.

    Returns:
        An ``ImageData`` with ``source="arrays"``.

    Raises:
        ValueError: saying what was given and what was expected, for images
            of the wrong rank, empty, of another dtype, float outside [0, 1]
            or NaN, train and test shapes that differ, labels whose length
            differs from the images', a ``batch_size`` below 1, a
            ``validation_split`` outside [0, 1) or one that leaves a split
            empty, a negative ``noise_factor`` or ``seed``.

    Example:

    >>> train = np.full((10, 4, 4), 255, dtype=np.uint8)
    >>> data = from_arrays(train, train[:2], validation_split=0.2,
    ...                    noise_factor=0.1)
    >>> (data.num_train, data.num_validation, data.num_test)
    (8, 2, 2)
    >>> noisy, clean = next(iter(data.test))
    >>> float(clean.numpy().min()), bool((noisy.numpy() < 1).any())
    (1.0, True)
    """
    options = check_options(batch_size, validation_split, noise_factor, seed,
                             cache)
    train_images = _check_images("train_images", train_images)
    test_images = _check_images("test_images", test_images)
    if train_images.shape[1:] != test_images.shape[1:]:
        raise InputError(
            f"train_images and test_images must have the same (H, W, C), got "
            f"{train_images.shape[1:]} and {test_images.shape[1:]}.")
    train_labels = _check_labels("train_labels", train_labels,
                                 len(train_images))
    test_labels = _check_labels("test_labels", test_labels, len(test_images))

    num = len(train_images)
    held_out = validation_size(num, options["validation_split"],
                                "training images")
    order = np.random.default_rng(options["seed"]).permutation(num)
    chosen = {"train": np.sort(order[held_out:]),
              "validation": np.sort(order[:held_out])}
    splits = {}
    for split, index in chosen.items():
        if len(index):
            labels = None if train_labels is None else train_labels[index]
            splits[split] = array_split(train_images[index], labels)
    splits["test"] = array_split(test_images, test_labels)
    # cache() would only copy what memory holds already.
    return assemble(splits, train_images.shape[1:], "arrays",
                    {**options, "cache": False},
                    origin=DataSource(in_memory=True,
                                      validation_split=options["validation_split"],
                                      seed=options["seed"]))


def from_idx(directory, *, batch_size=256, validation_split=0.1,
             noise_factor=0.0, seed=0, cache=True):
    """Pipelines over a folder of MNIST-style IDX files.

    Args:
        directory: folder with the four standard files (see
            ``load_idx_folder``), e.g. ``FASHION_MNIST_DIR``.
        batch_size, validation_split, noise_factor, seed, cache: as for
            ``from_arrays``.

    Returns:
        An ``ImageData`` with ``source="idx:<absolute folder>"`` and labels.

    Raises:
        MissingDataError: for a missing file (see ``load_idx_folder``).
        ValueError: for a malformed file or a bad option.

    Example::

        data = from_idx("/usr/share/datasets/fashion-mnist", batch_size=128)
        data.num_train, data.num_validation, data.num_test
        # (54000, 6000, 10000)
    """
    options = check_options(batch_size, validation_split, noise_factor, seed,
                             cache)
    splits = load_idx_folder(directory)
    (train_images, train_labels), (test_images, test_labels) = (
        splits["train"], splits["test"])
    data = from_arrays(train_images, test_images, train_labels=train_labels,
                       test_labels=test_labels, **options)
    directory = os.path.abspath(os.fspath(directory))
    return dataclasses.replace(data, source=f"idx:{directory}", origin=DataSource(
        data_dir=directory, validation_split=options["validation_split"], seed=options["seed"]))


# --- choosing a route ------------------------------------------------------

def load(dataset=None, *, data_dir=None, tfds_data_dir=None, batch_size=256,
         validation_split=0.1, noise_factor=0.0, seed=0, cache=True):
    """Pipelines from the best available source, files on disk first.

    1. ``data_dir`` given: the IDX files in it (``dataset`` then only labels
       the source).
    2. ``dataset`` is ``None`` or ``"fashion_mnist"`` and
       ``FASHION_MNIST_DIR`` holds the IDX files: those.
    3. Otherwise tensorflow-datasets' ``dataset`` (default
       ``"fashion_mnist"``), from ``tfds_data_dir``.

    Args:
        dataset: a tensorflow-datasets name, or ``None`` for Fashion-MNIST.
        data_dir: a folder of MNIST-style IDX files.
        tfds_data_dir: tensorflow-datasets' data folder for route 3.
        batch_size, validation_split, noise_factor, seed, cache: as for
            ``from_arrays``.

    Returns:
        An ``ImageData``.

    Raises:
        MissingDataError, ValueError, DatasetUnavailableError: as raised by
            ``from_idx`` and ``from_tfds``.

    Example::

        data = load()  # Fashion-MNIST from FASHION_MNIST_DIR when installed
        data.source    # 'idx:/usr/share/datasets/fashion-mnist'
    """
    options = check_options(batch_size, validation_split, noise_factor, seed,
                             cache)
    if data_dir is not None:
        data = from_idx(data_dir, **options)
        if dataset is None:
            return data
        return dataclasses.replace(data, source=f"{data.source} ({dataset})",
                                   origin=dataclasses.replace(data.origin, dataset=dataset))
    if dataset in (None, "fashion_mnist") and not _find_idx_files(
            FASHION_MNIST_DIR)[1]:
        return from_idx(FASHION_MNIST_DIR, **options)
    return from_tfds(dataset or "fashion_mnist", data_dir=tfds_data_dir,
                     **options)
