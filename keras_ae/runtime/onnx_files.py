"""keras_ae's ONNX files: their contract, and opening them with onnxruntime.

``keras_ae.export.exporter`` writes a folder holding ``model.onnx`` (image to
reconstruction), ``encoder.onnx`` (image to code) and, where the decoder can
run alone, ``decoder.onnx`` (code to image). ``model.onnx`` has one float32
input ``image`` of shape ``(batch, H, W, C)`` and one output
``reconstruction`` of the same shape, values in [0, 1]; ``encoder.onnx``
maps ``image`` to ``code`` ``(batch, *code_shape)``; ``decoder.onnx`` maps
``code`` to ``reconstruction``. Every file carries ``keras_ae.*`` metadata
properties whose values are JSON text (``keras_ae.input_shape``,
``keras_ae.code_shape``, ``keras_ae.decoder``, ...); ``model.onnx`` names the
other two files in ``keras_ae.encoder_file`` and ``keras_ae.decoder_file``,
absent or null when that part was not exported (the ``unpool`` decoder after
max pooling needs the encoder's argmax indices, so it is never exported
alone).

This module opens sessions and reads and checks what a file declares;
``keras_ae.runtime.onnx_autoencoder.OnnxAutoencoder`` runs them. NumPy-free, TensorFlow-free.
"""

import json
import math
import os
from pathlib import Path

import onnxruntime as ort

from keras_ae import compat
from keras_ae.errors import positive_int
from keras_ae.errors import InputError
from keras_ae.runtime.image_files import MAX_IMAGE_PIXELS

MODEL_FILE = "model.onnx"
METADATA_PREFIX = "keras_ae."
IMAGE = "image"
CODE = "code"
RECONSTRUCTION = "reconstruction"
# The most values one image, or its code, may have by a model's metadata:
# checked before anything is allocated for it.
MAX_VALUES_PER_IMAGE = 4 * MAX_IMAGE_PIXELS
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


GRAPH_OPTIMIZATIONS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(intra_op_threads=None, graph_optimization="all",
                    allow_spinning=True):
    """The ``onnxruntime.SessionOptions`` every ``OnnxAutoencoder`` session uses.

    All session settings live here, so that a benchmark can tune them in
    one place. The defaults are the settings that measured best for
    keras_ae's default model at batch 256 and at batch 1, float32 and int8
    (docs/benchmarks.md, "Serving", from ``tools/benchmark_inference.py
    --int8``).

    Args:
        intra_op_threads: threads one operator may use; ``None`` keeps
            onnxruntime's default (one per physical core).
        graph_optimization: ``"all"`` (onnxruntime's layout-changing
            optimizations too), ``"extended"``, ``"basic"`` or ``"disable"``.
        allow_spinning: whether idle threads spin waiting for work (lower
            latency; ``False`` frees the cores between calls, kinder to a
            machine that serves other things).

    Returns:
        An ``onnxruntime.SessionOptions``.

    Example:

    >>> session_options(intra_op_threads=2).intra_op_num_threads
    2
    """
    if graph_optimization not in GRAPH_OPTIMIZATIONS:
        raise InputError(f"graph_optimization must be one of "
                         f"{list(GRAPH_OPTIMIZATIONS)}, got {graph_optimization!r}.")
    options = ort.SessionOptions()
    options.graph_optimization_level = GRAPH_OPTIMIZATIONS[graph_optimization]
    if intra_op_threads is not None:
        options.intra_op_num_threads = positive_int("intra_op_threads",
                                                    intra_op_threads)
    options.add_session_config_entry("session.intra_op.allow_spinning",
                                     "1" if allow_spinning else "0")
    return options


def default_providers():
    """CUDA (then CPU) where this onnxruntime has CUDA, else CPU alone.

    Returns:
        A list of execution provider names, best first.

    Example:

    >>> default_providers()[-1]
    'CPUExecutionProvider'
    """
    if CUDA in ort.get_available_providers():
        return [CUDA, CPU]
    return [CPU]


def parsed(text):
    """A metadata value: JSON text, or the raw text where it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def static_dims(shape):
    """A graph shape without its batch dim, as ints, or None if any is symbolic."""
    dims = tuple(shape[1:])
    if all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        return dims
    return None


def shape_from_metadata(metadata, key):
    value = metadata.get(METADATA_PREFIX + key)
    if value is None:
        return None
    try:
        dims = tuple(value)
    except TypeError:
        dims = ()
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                       for d in dims):
        raise InputError(
            f"metadata {METADATA_PREFIX}{key} must be a list of positive "
            f"integers, got {value!r}.")
    values = math.prod(dims)
    if values > MAX_VALUES_PER_IMAGE:
        raise InputError(
            f"metadata {METADATA_PREFIX}{key} {list(dims)} claims {values:,} values "
            f"per image, over the {MAX_VALUES_PER_IMAGE:,} keras_ae serves (an image "
            f"of {MAX_IMAGE_PIXELS:,} pixels, 4 channels); not a model to serve.")
    return dims


def part_file(folder, name, key, path):
    """The file a model's metadata ``key`` names (its encoder, say), which
    must be a plain name in the model's own ``folder``: metadata never
    points outside it (an absolute path, ``../``)."""
    name = str(name)
    if name in ("", ".", "..") or os.path.basename(name) != name or "/" in name:
        raise InputError(
            f"{path}: metadata {METADATA_PREFIX}{key} {name!r} is not a file name "
            f"in the model's folder; a keras_ae model names its parts beside it.")
    return Path(folder) / name


def describe_io(session):
    inputs = ", ".join(f"{i.name!r} {i.shape}" for i in session.get_inputs())
    outputs = ", ".join(f"{o.name!r} {o.shape}" for o in session.get_outputs())
    return f"inputs [{inputs}] and outputs [{outputs}]"


def check_io(session, path, role, input_name, output_name):
    """ValueError unless ``session`` maps one float ``input_name`` to ``output_name``."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    found_input = len(inputs) == 1 and inputs[0].name == input_name
    found_output = any(o.name == output_name for o in outputs)
    if not (found_input and found_output):
        found_role = parsed(session.get_modelmeta().custom_metadata_map.get(
            METADATA_PREFIX + "role", "null"))
        hint = (f" Its metadata says it is the {found_role}; pass the folder or "
                f"its {MODEL_FILE}." if role == "autoencoder" and found_role
                not in (None, "autoencoder") else "")
        raise InputError(
            f"{path} is not a keras_ae {role}: expected one input "
            f"{input_name!r} and an output {output_name!r}, found "
            f"{describe_io(session)}.{hint}")
    if inputs[0].type != "tensor(float)" or len(inputs[0].shape) < 2:
        raise InputError(
            f"{path}: input {input_name!r} must be a float32 batch, found "
            f"{inputs[0].type} of shape {inputs[0].shape}.")


def open_session(path, providers, intra_op_threads=None, **settings):
    """An ``onnxruntime.InferenceSession`` of ``path`` with
    ``session_options(intra_op_threads, **settings)``; a one-line
    ``InputError`` for a file onnxruntime cannot load as a model."""
    options = session_options(intra_op_threads, **settings)
    try:
        return ort.InferenceSession(str(path), sess_options=options,
                                    providers=providers)
    except compat.onnxruntime_load_errors() as error:
        raise InputError(
            f"{path} is not an ONNX model that onnxruntime "
            f"{ort.__version__} can load: {error}") from error


def set_metadata(proto, key, value):
    """Sets metadata property ``key`` of an ONNX ``ModelProto`` to ``value``
    as JSON text."""
    for entry in proto.metadata_props:
        if entry.key == key:
            entry.value = json.dumps(value)
            return
    proto.metadata_props.add(key=key, value=json.dumps(value))


def metadata_of(session):
    """The ``keras_ae.*`` metadata of a session's model, values parsed."""
    return {key: parsed(value)
            for key, value in session.get_modelmeta().custom_metadata_map.items()
            if key.startswith(METADATA_PREFIX)}
