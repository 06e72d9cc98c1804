"""Models of both kinds, used alike: a Keras autoencoder or an exported one
on onnxruntime (``keras_ae.runtime.OnnxAutoencoder``).

``encode``, ``reconstruct`` and ``decode`` take either kind; the rest of
``keras_ae.codes`` and ``keras_ae.anomaly`` are written against them, so
every use of the codes runs on an exported model without TensorFlow (except
to read ``tf.data`` datasets). ``labeled_arrays`` turns labeled data,
``(images, labels)`` arrays or a ``tf.data`` dataset of such batches (as
``keras_ae.data.load().labeled("test")`` gives), into arrays.
"""

import numpy as np

from keras_ae.runtime import pixels
from keras_ae.errors import InputError

DEFAULT_BATCH = 256


# --- data ---------------------------------------------------------------------

def labeled_arrays(data, name="data"):
    """``(images, labels)`` as numpy arrays from arrays or a labeled dataset.

    Args:
        data: a tuple ``(images, labels)`` of arrays, or a ``tf.data.Dataset``
            of ``(images, labels)`` batches (``ImageData.labeled(split)``).
        name: how to call the data in error messages.

    Returns:
        ``(images, labels)``: images as given (uint8 or float in [0, 1]),
        ``(N, H, W, C)``; labels as int64 ``(N,)``.

    Raises:
        ValueError: for data without labels, or labels whose count differs
            from the images'.

    Example:

    >>> images, labels = labeled_arrays((np.zeros((3, 4, 4)), [0, 1, 1]))
    >>> images.shape, labels.tolist()
    ((3, 4, 4, 1), [0, 1, 1])
    """
    if isinstance(data, tuple) and len(data) == 2:
        images, labels = (np.asarray(part) for part in data)
    elif _is_dataset(data):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise InputError(
                f"{name} must yield (images, labels) batches, got elements "
                f"{spec}: the labels are missing. Use ImageData.labeled(split).")
        parts = list(data.as_numpy_iterator())
        if not parts:
            raise InputError(f"{name} holds no images.")
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
    else:
        raise InputError(
            f"{name} must be (images, labels) arrays or a tf.data.Dataset of "
            f"(images, labels) batches, got {type(data).__name__}: the labels "
            f"are needed.")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if labels.ndim != 1 or len(labels) != len(images) or not len(images):
        raise InputError(
            f"{name} must hold one label per image: {len(images)} images of "
            f"shape {images.shape[1:]}, labels of shape {labels.shape}.")
    if labels.dtype.kind not in "iu":
        raise InputError(f"{name}'s labels must be integers, got {labels.dtype}.")
    return images, labels.astype(np.int64)


def _is_dataset(value):
    import sys
    tf = sys.modules.get("tensorflow")  # a dataset implies TensorFlow is loaded
    return tf is not None and isinstance(value, tf.data.Dataset)


# --- codes --------------------------------------------------------------------

def encode(model, images, batch_size=DEFAULT_BATCH):
    """The codes of ``images``, one flat row per image.

    Args:
        model: a Keras autoencoder from ``keras_ae``'s builders (its nested
            ``encoder`` runs; an unpool encoder's argmax indices are not part
            of the code), or a ``keras_ae.runtime.onnx_autoencoder.OnnxAutoencoder``.
        images: ``(N, H, W, C)`` (or ``(N, H, W)``) uint8 or float in [0, 1].
        batch_size: images per call.

    Returns:
        float32 array ``(N, code_floats)``.

    Raises:
        ValueError: for a model without an encoder.

    Example:

    >>> model = keras_ae.build_dense_autoencoder((4, 4, 1), code_size=3)
    >>> encode(model, np.zeros((5, 4, 4), "float32")).shape
    (5, 3)
    """
    images = as_images(images)
    if not hasattr(model, "can_encode") and not hasattr(model, "get_layer"):
        raise InputError(
            f"model {model!r} is not an autoencoder; expected one from "
            "keras_ae's builders or an OnnxAutoencoder.")
    check_image_shape(model, images)
    if _is_onnx(model):
        if not model.can_encode:
            raise InputError(f"{model!r} was exported without encoder.onnx; "
                             "export the model again to get its codes.")
        codes = model.encode(images, batch_size=batch_size)
    else:
        try:
            encoder = model.get_layer("encoder")
        except ValueError:
            raise InputError(
                f"model {getattr(model, 'name', model)!r} has no nested 'encoder' "
                "model; expected an autoencoder from keras_ae's builders or an "
                "OnnxAutoencoder.") from None
        outputs = encoder.predict(images, batch_size=batch_size, verbose=0)
        codes = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    codes = np.asarray(codes, np.float32)
    return codes.reshape(len(codes), -1)


# --- models of both kinds: Keras and onnxruntime --------------------------------

def _is_onnx(model):
    return hasattr(model, "can_encode") and hasattr(model, "reconstruct")


def as_images(images):
    """``images`` as float32 ``(N, H, W, C)`` in [0, 1] (a channel axis
    added to grey ``(N, H, W)``)."""
    images = pixels.to_unit_float(np.asarray(images))
    return images[..., np.newaxis] if images.ndim == 3 else images


def check_image_shape(model, images):
    """A one-line ValueError unless ``images`` have the shape ``model`` takes."""
    try:
        expected = tuple(model.input_shape if _is_onnx(model) else model.input_shape[1:])
    except (AttributeError, ValueError):  # a subclassed model: no fixed shape
        return
    if tuple(images.shape[1:]) != expected:
        raise InputError(
            f"{getattr(model, 'name', model)!r} takes images of shape {expected}, "
            f"got images of shape {tuple(images.shape[1:])}.")


def reconstruct(model, images, batch_size=DEFAULT_BATCH):
    """The model's reconstructions of ``images``, float32 ``(N, H, W, C)``."""
    images = as_images(images)
    check_image_shape(model, images)
    if _is_onnx(model):
        return np.asarray(model.reconstruct(images, batch_size=batch_size), np.float32)
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0),
                      np.float32)


def check_decoder_runs_alone(model):
    """Raises a ValueError unless ``model``'s decoder can decode codes alone
    (an unpool decoder needs the encoder's pooling positions)."""
    if _is_onnx(model):
        alone, why = model.can_decode, "it was exported without decoder.onnx"
    else:
        inputs = len(model.get_layer("decoder").inputs)
        alone, why = inputs == 1, f"its decoder takes {inputs} inputs"
    if not alone:
        raise InputError(
            f"{getattr(model, 'name', model)!r} has no decoder that runs alone "
            f"({why}): an unpool decoder after max pooling needs the "
            "encoder's pooling positions, which only an image gives. Generate "
            "with a transpose, upsample, average-pooling or dense model.")


def decode(model, codes, batch_size=DEFAULT_BATCH):
    """Images decoded from flat codes ``(N, code_size)``, float32
    ``(N, H, W, C)``; for decoders that run alone."""
    check_decoder_runs_alone(model)
    if _is_onnx(model):
        codes = codes.reshape(len(codes), *model.code_shape)
        return np.asarray(model.decode(codes, batch_size=batch_size), np.float32)
    decoder = model.get_layer("decoder")
    codes = codes.reshape(len(codes), *decoder.inputs[0].shape[1:])
    return np.asarray(decoder.predict(codes, batch_size=batch_size, verbose=0),
                      np.float32)
