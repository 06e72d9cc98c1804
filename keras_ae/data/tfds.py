"""Pipelines over tensorflow-datasets image datasets (``from_tfds``).

A dataset is usable when it has ``train`` and ``test`` splits and an
``image`` feature of fixed-size uint8 images; others are refused with a
message saying which of these they lack. A dataset not yet prepared is
downloaded, which needs the internet; offline, the error lists the routes
that work without it. ``keras_ae.data.sources`` re-exports ``from_tfds``.
"""

import difflib
import os

import tensorflow as tf

from keras_ae import compat
from keras_ae.errors import DatasetUnavailableError, InputError
from keras_ae.data.source import DataSource
from keras_ae.data.pipelines import Split, assemble, check_options, validation_size

# tensorflow-datasets retries a failed download 10 times with exponential
# backoff, about 3.5 minutes offline; two retries cover a blip.
DOWNLOAD_RETRIES = 2


def from_tfds(name, *, data_dir=None, batch_size=256, validation_split=0.1,
              noise_factor=0.0, seed=0, cache=True):
    """Pipelines over a tensorflow-datasets image dataset.

    The dataset's ``"image"`` feature is used (and ``"label"``, when it has
    one, for ``ImageData.labeled``); its ``train`` split is sliced into
    training and validation (``train[:-10%]``, ``train[-10%:]``), its
    ``test`` split is the test set. A dataset that is not prepared yet is
    downloaded, which needs the internet.

    Args:
        name: a tensorflow-datasets name, e.g. ``"mnist"``,
            ``"fashion_mnist"``, ``"cifar10"``.
        data_dir: tensorflow-datasets' data folder; ``None`` for its default
            (``~/tensorflow_datasets``).
        batch_size, validation_split, noise_factor, seed, cache: as for
            ``from_arrays``; ``cache`` keeps the decoded images in memory
            after the first epoch.

    Returns:
        An ``ImageData`` with ``source="tfds:<name>"``.

    Raises:
        ValueError: for an unknown name (with close matches), a dataset
            without fixed-size uint8 ``"image"`` features or without
            ``train`` and ``test`` splits, or a bad option.
        DatasetUnavailableError: when the dataset is not prepared and cannot
            be downloaded (no internet?); its message lists the offline
            routes.

    Example::

        data = from_tfds("mnist", batch_size=128, noise_factor=0.3)
        model.fit(data.train, validation_data=data.validation, epochs=10)
    """
    options = check_options(batch_size, validation_split, noise_factor, seed,
                             cache)
    import tensorflow_datasets as tfds  # slow to import: only this route needs it

    builder = _tfds_builder(tfds, name, data_dir)
    if not builder.is_prepared():
        _download_and_prepare(tfds, builder, name)
    specs = _tfds_split_specs(builder, name, options["validation_split"])
    splits = {split: _tfds_split(builder, name, spec)
              for split, spec in specs.items()}
    if any(not split.count for split in splits.values()):
        counts = {key: split.count for key, split in splits.items()}
        raise InputError(
            f"tensorflow-datasets {name!r} with validation_split="
            f"{validation_split} gives split sizes {counts}; expected at "
            f"least one image in each.")
    image_shape = splits["train"].images.element_spec.shape
    origin = DataSource(dataset=name, tfds_data_dir=None if data_dir is None else
                        os.path.abspath(os.fspath(data_dir)),
                        validation_split=options["validation_split"], seed=options["seed"])
    return assemble(splits, image_shape, f"tfds:{name}", options, origin=origin)


def _tfds_builder(tfds, name, data_dir):
    if not isinstance(name, str) or not name:
        raise InputError(
            f"name must be a tensorflow-datasets name such as 'mnist', got "
            f"{name!r}.")
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as err:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name.split(":")[0].split("/")[0],
                                          known, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "."
        raise InputError(
            f"tensorflow-datasets has no dataset named {name!r}{hint}") from err


def _download_and_prepare(tfds, builder, name):
    from keras_ae.data.sources import FASHION_MNIST_DIR  # data imports this module

    try:
        with compat.few_tfds_download_retries(DOWNLOAD_RETRIES):
            builder.download_and_prepare()
    except (OSError, tfds.download.DownloadError) as err:
        raise DatasetUnavailableError(
            f"tensorflow-datasets could not download {name!r} (no internet?): "
            f"{type(err).__name__}. It is not prepared in {builder.data_dir}. "
            f"Offline routes: data_dir= (--data-dir) pointing at a folder of "
            f"IDX files (`apt-get install dataset-fashion-mnist` puts "
            f"Fashion-MNIST in {FASHION_MNIST_DIR}); a tensorflow-datasets "
            f"data_dir that already holds the prepared dataset "
            f"(from_tfds(data_dir=...), load(tfds_data_dir=...)); or "
            f"keras_ae.data.sources.from_arrays with images already in memory."
        ) from err


def _tfds_split_specs(builder, name, validation_split):
    """Our split -> tensorflow-datasets split spec."""
    known = builder.info.splits  # empty when unknown (e.g. under mock_data)
    for split in ("train", "test"):
        if known and split not in known:
            raise InputError(
                f"tensorflow-datasets {name!r} has no {split!r} split; it has "
                f"{sorted(known)}, expected 'train' and 'test'.")
    if not validation_split:
        return {"train": "train", "test": "test"}
    if known:  # else from_tfds checks the counts it gets
        validation_size(known["train"].num_examples, validation_split,
                         f"images in the train split of {name!r}")
    percent = format(validation_split * 100, ".10g")
    return {"train": f"train[:-{percent}%]",
            "validation": f"train[-{percent}%:]",
            "test": "test"}


def _tfds_split(builder, name, spec):
    examples = builder.as_dataset(split=spec, as_supervised=False)
    features = examples.element_spec
    image = features.get("image") if isinstance(features, dict) else None
    if (image is None or image.dtype != tf.uint8 or image.shape.rank != 3
            or not image.shape.is_fully_defined()):
        raise InputError(
            f"tensorflow-datasets {name!r} must have an 'image' feature of "
            f"fixed-size uint8 (H, W, C) images, got features {features}.")
    count = int(examples.cardinality())
    if count < 0:  # unknown: ask the split metadata instead
        count = builder.info.splits[spec].num_examples
    labeled = None
    if "label" in features:
        labeled = examples.map(
            lambda ex: (ex["image"], tf.cast(ex["label"], tf.int64)))
    return Split(examples.map(lambda ex: ex["image"]), labeled, count)
