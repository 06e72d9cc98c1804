"""Loading a trained autoencoder: a ``.keras`` file, or an exported ``.onnx``
one on onnxruntime, and making a mixed-precision model compute in float32.

Every command and library function that opens a user's model comes here,
so a file that does not load is named in one line the same way everywhere.
"""

import json
import os
import struct
import zipfile
import zlib

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
    _check_archive(path)
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds here
        # Keras' first line says what failed; the rest dumps the config.
        first = str(error).strip().split("\n")[0][:300]
        raise InputError(f"{path} is not a Keras model file that loads: {first}") from None
    return as_float32(model)


# A model's config.json is a few KB (a deep one under 1 MB): one larger is
# refused before it is read, so that it cannot flood memory when parsed.
MAX_CONFIG_BYTES = 16 * 2 ** 20
# Keras' module that can switch its own safety off, and its saving internals.
_UNSAFE_KERAS_MODULES = ("config", "saving")


def _check_archive(path):
    """Refuses, in one line, a ``.keras`` archive whose ``config.json`` or
    ``metadata.json`` inflates to more than ``MAX_CONFIG_BYTES`` or to
    another size than its zip directory says, or whose config names a
    module that is neither Keras' nor a registered layer's (``os``,
    ``subprocess``, ``keras.config``). Anything else Keras checks."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return  # Keras says what it is not, in its own first line
    with archive:
        for name in ("config.json", "metadata.json"):
            try:
                info = archive.getinfo(name)
            except KeyError:
                continue
            size = _inflated_size(path, info)
            if size is None or size > MAX_CONFIG_BYTES or size != info.file_size:
                shown = ("an unreadable" if size is None else
                         f"a {size / 2 ** 20:.1f} MiB" if size <= MAX_CONFIG_BYTES
                         else f"a {MAX_CONFIG_BYTES // 2 ** 20} MiB or larger")
                raise InputError(
                    f"{path} holds {shown} {name} (its zip directory says "
                    f"{info.file_size} bytes); a model's is at most "
                    f"{MAX_CONFIG_BYTES // 2 ** 20} MiB: not loaded.")
        try:
            config = json.loads(archive.read("config.json"))
        except (KeyError, ValueError, zipfile.BadZipFile, OSError):
            return  # Keras names it
    for module, class_name in _modules(config):
        parts = module.split(".")
        known = parts[0] in ("keras", "keras_ae") and not any(
            part in _UNSAFE_KERAS_MODULES for part in parts[1:])
        if not known and keras.saving.get_registered_object(class_name) is None:
            raise InputError(
                f"{path} names module {module!r} (class {class_name!r}) in its "
                f"config: neither a Keras layer nor a registered one, so the "
                f"model is not loaded.")


def _inflated_size(path, info):
    """How many bytes a zip member inflates to, counted in bounded steps up
    to ``MAX_CONFIG_BYTES + 1``; ``None`` for a member that cannot be read.

    Counted from its raw stream, not taken from the zip directory: Python's
    ``zipfile`` trusts the directory's size and may inflate the whole stream
    in one call, so a lying directory would flood memory on Keras' read."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)  # the local file header (the zip format's 4.3.7)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            return None
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + 30 + name_length + extra_length)
        if info.compress_type == zipfile.ZIP_STORED:
            return info.compress_size
        if info.compress_type != zipfile.ZIP_DEFLATED:
            return None  # Keras writes stored or deflated members only
        inflater, inflated, left = zlib.decompressobj(-zlib.MAX_WBITS), 0, info.compress_size
        pending = b""
        while inflated <= MAX_CONFIG_BYTES and not inflater.eof:
            if not pending:
                pending = f.read(min(left, 2 ** 16))
                left -= len(pending)
                if not pending:
                    break
            try:
                inflated += len(inflater.decompress(pending, 2 ** 20))
            except zlib.error:
                return None
            pending = inflater.unconsumed_tail
        return inflated


def _modules(config):
    """Every ``(module, class_name)`` a serialized Keras config names."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("module"), str):
                yield item["module"], str(item.get("registered_name")
                                          or item.get("class_name"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


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
