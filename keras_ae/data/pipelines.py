"""What every data route shares: the ``ImageData`` bundle and its pipelines.

``keras_ae.data.sources`` (arrays, IDX files, tensorflow-datasets) and
``keras_ae.data.folders`` (folders of image files) each turn their source into
one ``Split`` per split (unbatched images, optional labels, a count) and
hand them to ``assemble``, which batches, shuffles, scales and adds noise the
same way for all of them. Users meet this module only through
``ImageData``, which ``keras_ae.data.sources`` re-exports.
"""

import dataclasses
import math
import numbers
from typing import Callable

import numpy as np
import tensorflow as tf

from keras_ae.errors import InputError
from keras_ae.runtime.pixels import add_noise, to_unit_float

__all__ = ["ImageData", "Split", "array_split", "assemble", "check_batch_size",
           "check_options", "is_int", "is_real", "keep_classes",
           "validation_size"]

SPLITS = ("train", "validation", "test")
SHUFFLE_BUFFER = 100_000  # the whole split for MNIST-sized data
# Seeds of validation and test noise start far apart, so that the two splits
# do not share noise patterns batch for batch.
_TEST_NOISE_OFFSET = 2 ** 32


# --- the dataset bundle ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Split:
    """One split of a dataset, before batching.

    Attributes:
        images: unbatched ``(H, W, C)`` images, uint8 or float32 in [0, 1].
        labeled: unbatched ``(image, int64 label)`` pairs, or ``None``.
        count: number of images.
        in_memory: all images as one tensor, when they are in memory
            (batches are then gathered from it by shuffled indices).
        shuffled: for training, a function of the seed returning ``images``
            in a new seeded order each epoch, where the source can shuffle
            something cheaper than decoded images (file names); ``None`` to
            shuffle ``images`` in a buffer.
        shuffle_buffer: images that buffer holds; ``None`` for the whole
            split up to ``SHUFFLE_BUFFER``.
    """

    images: tf.data.Dataset
    labeled: tf.data.Dataset | None
    count: int
    in_memory: tf.Tensor | None = None
    shuffled: Callable[[int], tf.data.Dataset] | None = None
    shuffle_buffer: int | None = None


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Batched train, validation and test pipelines of one image dataset.

    ``train``, ``validation`` and ``test`` yield ``(input, target)`` batches
    of float32 images in [0, 1] shaped ``(batch, H, W, C)``, ready for
    ``model.fit(data.train, validation_data=data.validation)``. The input is
    the target, or a noisy copy of it when ``noise_factor > 0``. Only
    ``train`` is shuffled, with the seed, in a new order each epoch; its
    noise is new each epoch too, while validation and test noise stays the
    same so that their losses compare across epochs.

    Attributes:
        train: the training pipeline.
        validation: the validation pipeline, or ``None`` when
            ``validation_split`` was 0.
        test: the test pipeline.
        image_shape: ``(H, W, C)`` of one image.
        source: where the images came from, e.g. ``"tfds:mnist"``,
            ``"idx:/usr/share/datasets/fashion-mnist"``,
            ``"images:/home/me/photos"`` or ``"arrays"``.
        num_train, num_validation, num_test: images in each split.
        batch_size: images per batch (the last batch may be smaller).
        noise_factor: standard deviation of the Gaussian noise on inputs.
        class_names: the name of each label, label 0 first, where the
            source names its classes (class folders); else ``None``.
        preprocessing: how image files were made into the model's images
            (``{"image_size": [H, W] or None, "resize": ..., "color_mode":
            ...}``, see ``keras_ae.runtime.images``); ``None`` for sources of
            fixed-size images.
        skipped: ``(path, reason)`` of each unreadable file left out
            (``skip_bad_images=True``).
        origin: a ``keras_ae.data.DataSource``: how to read these images
            again, as plain fields (what a run records).
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset
    image_shape: tuple
    source: str
    num_train: int
    num_validation: int
    num_test: int
    batch_size: int
    noise_factor: float
    class_names: tuple | None = None
    preprocessing: dict | None = None
    skipped: tuple = ()
    origin: object = None
    _splits: dict = dataclasses.field(default_factory=dict, repr=False,
                                      compare=False)
    _options: dict = dataclasses.field(default_factory=dict, repr=False,
                                       compare=False)

    def summary(self):
        """One line for people: where from, how many images per split, shape."""
        return (f"data: {self.source}, {self.num_train} train / {self.num_validation} "
                f"validation / {self.num_test} test images of shape {self.image_shape}"
                + (f"; skipped {len(self.skipped)} unreadable files" if self.skipped
                   else ""))

    def labeled(self, split, batch_size=None):
        """Batched ``(images, labels)`` of one split, in a fixed order.

        For looking at codes by class, e.g. plotting the encoder's output.
        Images are clean float32 in [0, 1]; labels are int64.

        Args:
            split: ``"train"``, ``"validation"`` or ``"test"``.
            batch_size: images per batch; defaults to ``self.batch_size``.

        Returns:
            A ``tf.data.Dataset`` of ``(images, labels)`` batches, not
            shuffled.

        Raises:
            ValueError: for an unknown split, a validation split that was
                not made (``validation_split=0``), a source without labels
                for that split, or a batch size below 1.

        Example:

        >>> from keras_ae.data.sources import from_arrays
        >>> images = np.zeros((10, 4, 4), dtype=np.uint8)
        >>> data = from_arrays(images, images[:4], test_labels=[0, 1, 2, 3],
        ...                    validation_split=0)
        >>> [labels.numpy().tolist() for _, labels in data.labeled("test", 3)]
        [[0, 1, 2], [3]]
        """
        batch_size = check_batch_size(
            self.batch_size if batch_size is None else batch_size)
        if split not in SPLITS:
            raise InputError(f"split must be one of {SPLITS}, got {split!r}.")
        if split not in self._splits:
            raise InputError(
                f"{self.source} has no {split!r} split: it was made with "
                f"validation_split=0; expected one of {tuple(self._splits)}.")
        labeled = self._splits[split].labeled
        if labeled is None:
            hint = (" Labels come from class folders: DIR/<class>/image.png."
                    if self.source.startswith("images:") else "")
            raise InputError(
                f"{self.source} has no labels for the {split!r} split.{hint}")
        return (labeled.batch(batch_size)
                .map(lambda x, y: (to_unit_float(x), y),
                     num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))


# --- option checks ---------------------------------------------------------

def is_int(value):
    """An integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value):
    """A real number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_batch_size(batch_size):
    """``batch_size`` as an int if it is a positive integer; else ValueError."""
    if not is_int(batch_size) or batch_size < 1:
        raise InputError(
            f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


def check_options(batch_size, validation_split, noise_factor, seed, cache):
    """The options every route shares, as plain Python numbers."""
    batch_size = check_batch_size(batch_size)
    if not is_real(validation_split) or not 0 <= validation_split < 1:
        raise InputError(
            f"validation_split must be a number in [0, 1), got "
            f"{validation_split!r}.")
    if not is_real(noise_factor) or not 0 <= noise_factor < math.inf:
        raise InputError(
            f"noise_factor must be a finite number >= 0, got {noise_factor!r}.")
    if not is_int(seed) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}.")
    if not isinstance(cache, bool):
        raise InputError(f"cache must be True or False, got {cache!r}.")
    return dict(batch_size=batch_size, validation_split=float(validation_split),
                noise_factor=float(noise_factor), seed=int(seed), cache=cache)


def validation_size(num, validation_split, what):
    """Images to hold out; rounds to the closest count, as tfds slicing does."""
    count = round(num * validation_split)
    if validation_split and not 0 < count < num:
        raise InputError(
            f"validation_split={validation_split} of {num} {what} leaves "
            f"{count} validation and {num - count} training images; expected "
            f"at least one of each (or validation_split=0).")
    return count


# --- pipelines -------------------------------------------------------------

def array_split(images, labels):
    """A ``Split`` of images (and optional labels) held in memory."""
    # One tensor shared by both datasets, not two copies of the images.
    images_t = tf.convert_to_tensor(images)
    labeled = (None if labels is None
               else tf.data.Dataset.from_tensor_slices((images_t, labels)))
    return Split(tf.data.Dataset.from_tensor_slices(images_t), labeled,
                 len(images), in_memory=images_t)


def _pipeline(split, *, train, noise_offset, batch_size, noise_factor, seed,
              cache):
    """A ``Split`` -> batched, prefetched ``(input, target)`` pairs."""
    batches = _batches(split, train=train, batch_size=batch_size, seed=seed,
                       cache=cache)
    parallel = tf.data.AUTOTUNE
    if not noise_factor:
        pairs = batches.map(lambda x: (to_unit_float(x),) * 2,
                            num_parallel_calls=parallel)
    elif train:
        # A seeded stream that differs each epoch: fresh noise per epoch,
        # the same sequence of epochs in every run with this seed.
        seeds = tf.data.Dataset.random(seed=seed,
                                       rerandomize_each_iteration=True)
        pairs = tf.data.Dataset.zip(batches, seeds).map(
            lambda x, r: _noisy_pair(x, noise_factor, [r, seed]),
            num_parallel_calls=parallel)
    else:
        # Noise seeded by batch number: the same in every epoch.
        pairs = batches.enumerate(start=noise_offset).map(
            lambda i, x: _noisy_pair(x, noise_factor, [seed, i]),
            num_parallel_calls=parallel)
    return pairs.prefetch(tf.data.AUTOTUNE)


def _batches(split, *, train, batch_size, seed, cache):
    """Batches of a split's images, shuffled for training."""
    if split.in_memory is not None:
        # Shuffle indices and gather whole batches: far less per-step work
        # than shuffling and batching tens of thousands of single images.
        indices = tf.data.Dataset.range(split.count)
        if train:
            indices = indices.shuffle(split.count, seed=seed,
                                      reshuffle_each_iteration=True)
        return indices.batch(batch_size).map(
            lambda i: tf.gather(split.in_memory, i),
            num_parallel_calls=tf.data.AUTOTUNE)
    if train and split.shuffled is not None:
        return split.shuffled(seed).batch(batch_size)
    images = split.images
    if cache:
        images = images.cache()  # before shuffling: each epoch reshuffles it
    if train:
        buffer = split.shuffle_buffer or min(split.count, SHUFFLE_BUFFER)
        images = images.shuffle(buffer, seed=seed,
                                reshuffle_each_iteration=True)
    return images.batch(batch_size)


def _noisy_pair(images, noise_factor, seed):
    clean = to_unit_float(images)
    seed = tf.stack([tf.cast(s, tf.int64) for s in seed])
    return add_noise(clean, noise_factor, seed), clean


def assemble(splits, image_shape, source, options, **details):
    """``ImageData`` from ``{"train": Split, "validation": ..., "test": ...}``.

    Args:
        splits: the splits; ``"validation"`` may be absent.
        image_shape: ``(H, W, C)`` of one image.
        source: ``ImageData.source``.
        options: ``check_options``' dict.
        **details: more ``ImageData`` fields (``class_names``,
            ``preprocessing``, ``skipped``, ``origin``).

    Returns:
        An ``ImageData``.
    """
    settings = {key: options[key]
                for key in ("batch_size", "noise_factor", "seed", "cache")}
    train, validation, test = (splits.get(name) for name in SPLITS)
    return ImageData(
        train=_pipeline(train, train=True, noise_offset=0, **settings),
        validation=None if validation is None else _pipeline(
            validation, train=False, noise_offset=0, **settings),
        test=_pipeline(test, train=False, noise_offset=_TEST_NOISE_OFFSET,
                       **settings),
        image_shape=tuple(int(d) for d in image_shape),
        source=source,
        num_train=train.count,
        num_validation=0 if validation is None else validation.count,
        num_test=test.count,
        batch_size=options["batch_size"],
        noise_factor=options["noise_factor"],
        _splits=splits,
        _options=dict(options),
        **details,
    )


def keep_classes(data, labels, splits=("train", "validation")):
    """``data`` with only the images of some classes in some splits.

    For one-class training: the model learns normal from the classes kept,
    and the test split, left whole, holds the others as anomalies.

    Args:
        data: an ``ImageData`` with labels (class folders, IDX files,
            tensorflow-datasets, labeled arrays).
        labels: the class numbers to keep.
        splits: the splits to filter; the others are kept whole.

    Returns:
        A new ``ImageData``, batched, shuffled and noised as ``data`` was.

    Raises:
        ValueError: for data without labels, or a split left with no image.

    Example:

    >>> from keras_ae.data.sources import from_arrays
    >>> images = np.zeros((10, 4, 4), np.uint8)
    >>> data = from_arrays(images, images, train_labels=[0, 1] * 5,
    ...                    test_labels=[0, 1] * 5, validation_split=0.5)
    >>> kept = keep_classes(data, [1])
    >>> kept.num_train + kept.num_validation, kept.num_test
    (5, 10)
    """
    wanted = sorted({int(label) for label in labels})
    kept = {}
    for name, split in data._splits.items():
        if name not in splits:
            kept[name] = split
            continue
        if split.labeled is None:
            raise InputError(f"{data.source} has no labels for the {name!r} split; "
                             f"keeping classes {wanted} needs them.")
        kept[name] = _split_of_classes(split, wanted)
        if not kept[name].count:
            raise InputError(f"the {name} split of {data.source} holds no image of "
                             f"classes {wanted}.")
    details = {field: getattr(data, field)
               for field in ("class_names", "preprocessing", "skipped")}
    if data.origin is not None:
        details["origin"] = dataclasses.replace(data.origin, classes=tuple(wanted))
    return assemble(kept, data.image_shape, data.source, data._options, **details)


def _split_of_classes(split, wanted):
    label_tensor = tf.constant(wanted, tf.int64)
    if split.in_memory is not None:  # gather the chosen images, no pass over them
        labels = next(iter(split.labeled.map(lambda x, y: y).batch(split.count)))
        chosen = tf.where(tf.reduce_any(
            tf.equal(tf.cast(labels, tf.int64)[:, None], label_tensor), 1))[:, 0]
        return array_split(tf.gather(split.in_memory, chosen),
                           tf.gather(labels, chosen))
    filtered = split.labeled.filter(lambda x, y: tf.reduce_any(
        tf.equal(tf.cast(y, tf.int64), label_tensor)))
    count = int(filtered.map(lambda x, y: y).reduce(
        tf.constant(0, tf.int64), lambda total, _: total + 1))
    return Split(filtered.map(lambda x, y: x), filtered, count)


def class_labels(tokens, data, known, what):
    """Class tokens of a flag (label numbers, or class folder names) as
    sorted labels; a one-line error naming the classes there are.

    Args:
        tokens: the flag's values, e.g. ``("0", "coat")``.
        data: the ``ImageData`` (its ``class_names`` and ``source``).
        known: the labels the data holds.
        what: the argument's name, for the message (``"--normal-classes"``).
    """
    names = list(data.class_names or ())
    labels = []
    for token in tokens:
        if token in names:
            labels.append(names.index(token))
        elif token.isdigit() and int(token) in known:
            labels.append(int(token))
        else:
            named = f"; class names: {', '.join(names)}" if names else ""
            raise InputError(
                f"{what} {token!r} is not a class of {data.source}: "
                f"labels are {sorted(known)}{named}.")
    return sorted(set(labels))


def labels_of(data, split="test"):
    """The labels a split of ``data`` holds, a sorted list."""
    return sorted(set(np.concatenate(
        [labels for _, labels in data.labeled(split).as_numpy_iterator()]).tolist()))
