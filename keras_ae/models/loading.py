"""Loading a trained autoencoder: a ``.keras`` file, or an exported ``.onnx``
one on onnxruntime, and making a mixed-precision model compute in float32.

Every command and library function that opens a user's model comes here,
so a file that does not load is named in one line the same way everywhere.
"""

import os

import keras

from keras_ae.errors import InputError
from keras_ae.models import facts


def rebuilt(model, replace):
    """A copy of ``model`` with the same weights, rebuilt from its serialized
    form after ``replace``: called on every dict in it, it returns a
    replacement, or ``None`` to keep the dict (and look inside it)."""
    def walk(config):
        if isinstance(config, list):
            return [walk(item) for item in config]
        if not isinstance(config, dict):
            return config
        replaced = replace(config)
        if replaced is not None:
            return replaced
        return {key: walk(value) for key, value in config.items()}

    clone = keras.saving.deserialize_keras_object(
        walk(keras.saving.serialize_keras_object(model)))
    clone.set_weights(model.get_weights())
    return clone


def as_float32(model):
    """The same model computing in float32 (a copy if it used mixed precision).

    Serving runtimes want one float32 graph; a model trained under
    ``mixed_float16`` or ``mixed_bfloat16`` is rebuilt with float32 layers and
    the same weights (its variables are float32 already).

    Args:
        model: a ``keras.Model``.

    Returns:
        ``model`` itself when every layer computes in float32, else a copy.

    Example:

    >>> import keras_ae
    >>> as_float32(keras_ae.build_dense_autoencoder()).compute_dtype
    'float32'
    """
    if all(layer.compute_dtype == "float32" for layer in facts.all_layers(model)):
        return model
    return rebuilt(model, _float32_policy)


def _float32_policy(config):
    """A mixed-precision policy's serialized form, made float32."""
    if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and str(
            config.get("config", {}).get("name", "")).startswith("mixed_"):
        return {**config, "config": {**config["config"], "name": "float32"}}
    return None


def load_keras_model(path):
    """A ``.keras`` file loaded uncompiled, computing in float32.

    A model trained in mixed precision is used as its export would be.
    ``import keras_ae`` registered the custom layers, so files saved by any
    version of keras_ae load (the layers' registered names never change).

    Args:
        path: the ``.keras`` file.

    Returns:
        The ``keras.Model``.

    Raises:
        FileNotFoundError: no file at ``path``.
        InputError: the file is not a Keras model that loads.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds here
        raise InputError(f"{path} is not a Keras model file that loads: {error}") from None
    return as_float32(model)


def load_model(path):
    """A ``.keras`` model, or an exported ``.onnx`` one on onnxruntime
    (``keras_ae.runtime.OnnxAutoencoder``): the two kinds every use of the
    codes takes.

    Raises:
        FileNotFoundError: no file at ``path``.
        InputError: neither a ``.keras`` nor an ``.onnx`` file, or one that
            does not load.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no model file at {path}")
    if path.endswith(".onnx"):
        from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder
        return OnnxAutoencoder(path)
    if not path.endswith(".keras"):
        raise InputError(f"{path} is neither a .keras model nor an exported .onnx one.")
    return load_keras_model(path)
