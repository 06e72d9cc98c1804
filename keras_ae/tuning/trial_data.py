"""A trial's data: the datasets a search is given, checked, rebatched to the
trial's batch size, scaled to [0, 1] and, for a denoising trial, noised."""

import math

import tensorflow as tf

from keras_ae.errors import InputError
from keras_ae.runtime.pixels import add_noise, to_unit_float


def _dataset_from_spec(spec, name):
    """``(input spec, target spec or None)`` of a dataset's elements."""
    if isinstance(spec, tf.TensorSpec):
        return spec, None
    if (isinstance(spec, tuple) and len(spec) == 2
            and all(isinstance(s, tf.TensorSpec) for s in spec)):
        return spec
    raise InputError(
        f"{name} must yield images or (input, target) pairs of images, got "
        f"elements {spec}.")


def dataset_image_shape(dataset, name="dataset"):
    """The ``(H, W, C)`` of the images a ``tf.data.Dataset`` yields.

    Args:
        dataset: a ``tf.data.Dataset`` of images or ``(input, target)``
            pairs, batched or not, e.g. ``keras_ae.data.sources.load().train``.
        name: how to call the dataset in error messages.

    Returns:
        The shape of one image as a tuple of ints.

    Raises:
        ValueError: for something other than a dataset of fixed-size images.

    Example:

    >>> import numpy as np
    >>> images = np.zeros((8, 16, 16, 1), "float32")
    >>> dataset_image_shape(tf.data.Dataset.from_tensor_slices(images).batch(4))
    (16, 16, 1)
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise InputError(
            f"{name} must be a tf.data.Dataset of images or (input, target) "
            f"pairs, got {type(dataset).__name__}.")
    inputs, targets = _dataset_from_spec(dataset.element_spec, name)
    shape = inputs.shape
    if targets is not None and targets.shape.as_list() != shape.as_list():
        raise InputError(
            f"{name} yields inputs of shape {shape} but targets of shape "
            f"{targets.shape}; an autoencoder's target is an image like its input.")
    image = shape[1:] if shape.rank == 4 else shape
    if image.rank != 3 or not image.is_fully_defined():
        raise InputError(
            f"{name} must yield (H, W, C) images or (batch, H, W, C) batches of "
            f"a fixed size, got elements of shape {shape}.")
    return tuple(int(d) for d in image)


def trial_dataset(dataset, name, input_shape, settings, counts, noisy):
    """``dataset`` rebatched to ``settings["batch_size"]``, as float
    ``(input, target)`` pairs, noised by ``settings["noise_factor"]`` if
    ``noisy``. ``counts`` remembers each dataset's image count (one pass)."""
    shape = dataset_image_shape(dataset, name)
    if shape != input_shape:
        raise InputError(
            f"{name} holds images of shape {shape}, but the search space "
            f"was made for {input_shape}; build the "
            f"AutoencoderHyperModel with input_shape={shape}.")
    batched = _dataset_from_spec(dataset.element_spec, name)[0].shape.rank == 4
    size = settings["batch_size"]
    batches = math.ceil(_image_count(dataset, counts) / size)
    dataset = dataset.rebatch(size) if batched else dataset.batch(size)
    # rebatch loses the length; Keras needs it for progress and warns without it
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    dataset = dataset.map(_as_float_pair, num_parallel_calls=tf.data.AUTOTUNE)
    if noisy and settings["noise_factor"]:
        factor = settings["noise_factor"]
        # New noise every epoch; a search is not bit-reproducible anyway.
        dataset = dataset.map(
            lambda _, clean: (add_noise(clean, factor, seed=None), clean),
            num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _image_count(dataset, counts):
    """Images in ``dataset``: counted once (a pass over it), then remembered."""
    if id(dataset) not in counts:
        sizes = dataset.map(lambda *element: tf.shape(element[0])[0]
                            if element[0].shape.rank == 4 else tf.constant(1))
        # the dataset is kept too, so that its id is not reused
        counts[id(dataset)] = (dataset, int(sizes.reduce(0, lambda a, b: a + b)))
    return counts[id(dataset)][1]


def _as_float_pair(*element):
    images = [to_unit_float(e) for e in element]
    return (images[0], images[0]) if len(images) == 1 else tuple(images)
