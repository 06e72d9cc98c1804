"""Small jobs on pixel values, each done in one place: scaling to [0, 1],
Gaussian noise, each image's reconstruction error, and refusing a model's
outputs that are not finite.

Each function takes numpy arrays and, where it says so, TensorFlow tensors
too (inside ``tf.data`` pipelines). No TensorFlow is imported here: a
tensor means TensorFlow is loaded already, and serving code uses this module.
"""

import sys

import numpy as np

from keras_ae.errors import InputError


def _is_tensor(values):
    """A TensorFlow tensor (eager or traced); anything else is an array."""
    tf = sys.modules.get("tensorflow")  # a tensor implies TensorFlow is loaded
    return tf is not None and tf.is_tensor(values)


def to_unit_float(images):
    """Images as float32 in [0, 1]: uint8 divided by 255, floats as they are.

    Args:
        images: a numpy array or a TensorFlow tensor.

    Returns:
        The same kind, float32.

    Example:

    >>> to_unit_float(np.array([0, 51, 255], np.uint8)).tolist()
    [0.0, 0.20000000298023224, 1.0]
    """
    if _is_tensor(images):
        tf = sys.modules["tensorflow"]

        if images.dtype == tf.uint8:
            return tf.cast(images, tf.float32) / 255.0
        return tf.cast(images, tf.float32)
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    return images.astype(np.float32, copy=False)


def add_noise(clean, noise_factor, seed):
    """Gaussian noise of standard deviation ``noise_factor``, clipped to [0, 1]:
    a denoising autoencoder's input.

    Args:
        clean: float images in [0, 1], a numpy array or a TensorFlow tensor.
        noise_factor: the noise's standard deviation.
        seed: for arrays, an int or a ``numpy.random.Generator``; for
            tensors, a shape ``[2]`` integer tensor (``tf.random``'s stateless
            seed, so a pipeline draws the same noise for the same seed), or
            ``None`` for fresh noise at every call.

    Returns:
        The noisy images, float32, of the same kind.

    Example:

    >>> noisy = add_noise(np.full((2, 2), 0.5, np.float32), 0.1, seed=0)
    >>> noisy.dtype, bool(((noisy >= 0) & (noisy <= 1)).all())
    (dtype('float32'), True)
    """
    if _is_tensor(clean):
        tf = sys.modules["tensorflow"]

        noise = (tf.random.normal(tf.shape(clean)) if seed is None else
                 tf.random.stateless_normal(tf.shape(clean), seed=seed))
        return tf.clip_by_value(clean + noise_factor * noise, 0.0, 1.0)
    clean = np.asarray(clean, np.float32)
    noise = np.random.default_rng(seed).normal(0.0, 1.0, clean.shape)
    return np.clip(clean + noise_factor * noise, 0.0, 1.0).astype(np.float32)


def per_image_mse(reconstructions, targets):
    """Mean squared error of each image, over all its pixels and channels.

    Args:
        reconstructions, targets: numpy arrays ``(N, ...)`` of one shape.

    Returns:
        float64 ``(N,)``, computed in float64.

    Example:

    >>> per_image_mse(np.zeros((2, 2, 2)), np.array([[[0, 0], [0, 0]], [[1, 1], [0, 0]]]))
    array([0. , 0.5])
    """
    difference = (np.asarray(reconstructions, np.float64)
                  - np.asarray(targets, np.float64))
    return np.mean(difference.reshape(len(difference), -1) ** 2, axis=1)


def checked_values(images, what):
    """``images`` as they may be given: uint8 returned as they are, floats
    as float32 once every value is finite and in [0, 1].

    Args:
        images: a numpy array of any shape.
        what: what they are, for the message (``"train_images"``).

    Raises:
        InputError: naming ``what`` and what was found: another dtype, NaN,
            or values outside [0, 1].

    Example:

    >>> checked_values(np.array([0.0, 1.0]), "x").dtype
    dtype('float32')
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind != "f":
        raise InputError(f"{what} must be uint8 (0 to 255) or float in [0, 1], got dtype "
                         f"{images.dtype}.")
    if not np.isfinite(images).all():
        raise InputError(f"{what} must be float in [0, 1], got NaN or infinite values.")
    low, high = images.min(), images.max()
    if low < 0 or high > 1:
        raise InputError(f"{what} must be float in [0, 1], got values from {low} to {high}; "
                         f"scale them first (uint8 images are divided by 255 for you).")
    return images.astype(np.float32, copy=False)


def check_finite_outputs(values, what):
    """Refuses a model's outputs that hold NaN or infinities: a model that
    diverged in training (or was damaged) is never exported, served or
    measured as if it were fine.

    Args:
        values: a model's outputs (a numpy array).
        what: the model, for the message (``"runs/a/model.keras"``).

    Returns:
        ``values``.

    Raises:
        InputError: one line naming the model and how many values are bad.

    Example:

    >>> check_finite_outputs(np.array([0.5, np.nan]), "m.onnx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_ae.errors.InputError: m.onnx gives NaN or infinite outputs (1 of 2 values): ...
    """
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise InputError(
            f"{what} gives NaN or infinite outputs ({bad:,} of {finite.size:,} "
            f"values): its training diverged or the file is damaged; nothing "
            f"is written. Train it again (a smaller --learning-rate).")
    return values
