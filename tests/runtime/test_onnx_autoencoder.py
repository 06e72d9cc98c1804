"""keras_ae.runtime.onnx_autoencoder runs exported autoencoders with onnxruntime alone.

The ONNX files here are built by hand with ``onnx.helper`` to the export
contract, from operators whose results NumPy reproduces:

- ``model.onnx``: ``reconstruction = 0.5 * image + 0.25``;
- ``encoder.onnx``: 4x4 average pooling of a 28x28x1 image, times
  ``[1, 1/2, 1/4, 1/8]`` along a new channel axis: a ``(7, 7, 4)`` code;
- ``decoder.onnx``: channel 0 of the code, upsampled 4x (nearest), clipped
  to [0, 1].
"""

import doctest
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from keras_ae.runtime import onnx_files
from keras_ae.runtime import onnx_autoencoder as serving
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

REPO = Path(__file__).resolve().parents[2]
SHAPE = (28, 28, 1)
CODE_SHAPE = (7, 7, 4)
CODE_SCALES = np.array([1, 0.5, 0.25, 0.125], dtype=np.float32)
DENSE_SHAPE = (8, 8, 1)  # the dense model of `bare_folder`: a (32,) code
CPU = "CPUExecutionProvider"


# --- building ONNX files ---------------------------------------------------

def _value(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *dims])


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _save(path, nodes, inputs, outputs, initializers=(), metadata=None):
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # opset 17's; onnxruntime 1.31 reads IR 13 at most
    if metadata:
        helper.set_model_props(model, {k: json.dumps(v) for k, v in metadata.items()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _save_autoencoder(path, shape, metadata):
    """reconstruction = 0.5 * image + 0.25."""
    return _save(
        path,
        [helper.make_node("Mul", ["image", "half"], ["scaled"]),
         helper.make_node("Add", ["scaled", "quarter"], ["reconstruction"])],
        [_value("image", shape)], [_value("reconstruction", shape)],
        [_const("half", np.float32(0.5)), _const("quarter", np.float32(0.25))],
        metadata)


def _save_conv_encoder(path, metadata):
    """(28, 28, 1) image -> 4x4 average pool -> times CODE_SCALES -> (7, 7, 4)."""
    return _save(
        path,
        [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
         helper.make_node("AveragePool", ["nchw"], ["pooled"],
                          kernel_shape=[4, 4], strides=[4, 4]),
         helper.make_node("Transpose", ["pooled"], ["nhwc"], perm=[0, 2, 3, 1]),
         helper.make_node("Mul", ["nhwc", "scales"], ["code"])],
        [_value("image", SHAPE)], [_value("code", CODE_SHAPE)],
        [_const("scales", CODE_SCALES.reshape(1, 1, 1, 4))], metadata)


def _save_conv_decoder(path, metadata):
    """(7, 7, 4) code -> channel 0 -> 4x nearest upsampling -> clip to [0, 1]."""
    return _save(
        path,
        [helper.make_node("Slice", ["code", "starts", "ends", "axes"], ["first"]),
         helper.make_node("Resize", ["first", "", "scales"], ["upsampled"],
                          mode="nearest", nearest_mode="floor",
                          coordinate_transformation_mode="asymmetric"),
         helper.make_node("Clip", ["upsampled", "zero", "one"], ["reconstruction"])],
        [_value("code", CODE_SHAPE)], [_value("reconstruction", SHAPE)],
        [_const("starts", np.array([0], np.int64)), _const("ends", np.array([1], np.int64)),
         _const("axes", np.array([3], np.int64)),
         _const("scales", np.array([1, 4, 4, 1], np.float32)),
         _const("zero", np.float32(0)), _const("one", np.float32(1))],
        metadata)


def _contract_metadata(role, decoder="transpose"):
    return {"keras_ae.version": "0.1.0", "keras_ae.role": role,
            "keras_ae.input_shape": list(SHAPE), "keras_ae.value_range": [0, 1],
            "keras_ae.code_shape": list(CODE_SHAPE), "keras_ae.code_size": 196,
            "keras_ae.decoder": decoder}


def _write_conv_export(folder, decoder="transpose", decoder_file="decoder.onnx",
                       **overrides):
    """A conv export folder, with decoder.onnx where ``decoder_file`` names it.

    A metadata value of None is written as JSON null, one of ``...`` is left out.
    """
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {**_contract_metadata("autoencoder", decoder),
                "keras_ae.encoder_file": "encoder.onnx",
                "keras_ae.decoder_file": decoder_file, **overrides}
    _save_autoencoder(folder / "model.onnx", SHAPE,
                      {k: v for k, v in metadata.items() if v is not ...})
    _save_conv_encoder(folder / "encoder.onnx", _contract_metadata("encoder", decoder))
    if isinstance(decoder_file, str):
        _save_conv_decoder(folder / "decoder.onnx", _contract_metadata("decoder", decoder))
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """model.onnx, encoder.onnx and decoder.onnx of a "transpose" export."""
    return _write_conv_export(tmp_path_factory.mktemp("transpose"))


@pytest.fixture(scope="module")
def model(folder):
    return OnnxAutoencoder(folder)


@pytest.fixture(scope="module")
def unpool_folder(tmp_path_factory):
    """An "unpool" export: keras_ae.decoder_file is null, no decoder.onnx."""
    return _write_conv_export(tmp_path_factory.mktemp("unpool"), decoder="unpool",
                              decoder_file=None)


@pytest.fixture(scope="module")
def bare_folder(tmp_path_factory):
    """A dense export whose files name each other and carry no other metadata.

    image (8, 8, 1) -> the first 32 pixels as the code -> the code twice,
    reshaped to (8, 8, 1) and clipped to [0, 1].
    """
    folder = tmp_path_factory.mktemp("bare")
    _save_autoencoder(folder / "model.onnx", DENSE_SHAPE,
                      {"keras_ae.encoder_file": "encoder.onnx",
                       "keras_ae.decoder_file": "decoder.onnx"})
    _save(folder / "encoder.onnx",
          [helper.make_node("Reshape", ["image", "flat"], ["pixels"]),
           helper.make_node("Slice", ["pixels", "starts", "ends", "axes"], ["code"])],
          [_value("image", DENSE_SHAPE)], [_value("code", [32])],
          [_const("flat", np.array([-1, 64], np.int64)),
           _const("starts", np.array([0], np.int64)),
           _const("ends", np.array([32], np.int64)),
           _const("axes", np.array([1], np.int64))])
    _save(folder / "decoder.onnx",
          [helper.make_node("Concat", ["code", "code"], ["twice"], axis=1),
           helper.make_node("Reshape", ["twice", "image_shape"], ["image"]),
           helper.make_node("Clip", ["image", "zero", "one"], ["reconstruction"])],
          [_value("code", [32])], [_value("reconstruction", DENSE_SHAPE)],
          [_const("image_shape", np.array([-1, *DENSE_SHAPE], np.int64)),
           _const("zero", np.float32(0)), _const("one", np.float32(1))])
    return folder


# --- what NumPy says the files compute -------------------------------------

def _expected_reconstruction(images):
    return np.float32(0.5) * images.astype(np.float32) + np.float32(0.25)


def _expected_codes(images):
    """images (N, 28, 28, 1) in [0, 1] -> codes (N, 7, 7, 4)."""
    blocks = images.astype(np.float64).reshape(len(images), 7, 4, 7, 4)
    return blocks.mean(axis=(2, 4))[..., None] * CODE_SCALES


def _expected_decoded(codes):
    first = codes[..., :1].astype(np.float32)
    return np.clip(first.repeat(4, axis=1).repeat(4, axis=2), 0, 1)


def _expected_errors(images):
    diff = _expected_reconstruction(images).astype(np.float64) - images
    return np.mean(diff.reshape(len(images), -1) ** 2, axis=1)


def _uint8_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


def _float_images(n, seed=0):
    return np.random.default_rng(seed).random((n, *SHAPE), dtype=np.float32)


@pytest.fixture
def run_calls(monkeypatch):
    """The batch sizes of every InferenceSession.run call during a test."""
    calls = []
    original = ort.InferenceSession.run

    def run(session, output_names, feed, *args, **kwargs):
        calls.append(len(next(iter(feed.values()))))
        return original(session, output_names, feed, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "run", run)
    return calls


# --- loading ---------------------------------------------------------------

def test_properties_come_from_the_metadata(model, folder):
    assert model.path == str(folder / "model.onnx")
    assert model.input_shape == (28, 28, 1)
    assert model.code_shape == (7, 7, 4)
    assert model.code_size == 196
    assert model.decoder_kind == "transpose"
    assert model.version == "0.1.0"
    assert model.can_encode and model.can_decode
    assert model.metadata == {**_contract_metadata("autoencoder"),
                              "keras_ae.encoder_file": "encoder.onnx",
                              "keras_ae.decoder_file": "decoder.onnx"}


def test_the_folder_and_its_model_file_load_the_same(folder):
    by_file = OnnxAutoencoder(folder / "model.onnx")
    by_folder = OnnxAutoencoder(str(folder))
    assert by_file.path == by_folder.path
    assert by_file.metadata == by_folder.metadata


def test_runs_on_the_cpu_here_and_repr_says_so(model, folder):
    assert model.provider == CPU
    text = repr(model)
    for part in (str(folder / "model.onnx"), "(28, 28, 1)", "code_size=196",
                 "'transpose'", CPU):
        assert part in text


def test_default_providers_prefer_cuda_where_onnxruntime_has_it(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    assert onnx_files.default_providers() == [CPU]
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", CPU])
    assert onnx_files.default_providers() == ["CUDAExecutionProvider", CPU]


def test_session_options():
    options = onnx_files.session_options(intra_op_threads=3)
    assert options.intra_op_num_threads == 3
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert onnx_files.session_options().intra_op_num_threads == 0  # onnxruntime's default
    with pytest.raises(ValueError, match="intra_op_threads"):
        onnx_files.session_options(intra_op_threads=0)
    options = onnx_files.session_options(graph_optimization="basic",
                                         allow_spinning=False)
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert onnx_files.session_options().get_session_config_entry(
        "session.intra_op.allow_spinning") == "1"
    with pytest.raises(ValueError, match=r"graph_optimization must be one of "
                       r"\['disable', 'basic', 'extended', 'all'\], got 'max'"):
        onnx_files.session_options(graph_optimization="max")


def test_explicit_providers_and_threads(folder):
    model = OnnxAutoencoder(folder, providers=[CPU], intra_op_threads=1,
                            graph_optimization="basic", allow_spinning=False)
    assert model.provider == CPU
    options = model._model_session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    image = _float_images(1)[0]
    np.testing.assert_array_equal(model.reconstruct(image),
                                  _expected_reconstruction(image))


def test_encoder_and_decoder_sessions_start_on_first_use(folder, monkeypatch):
    opened = []

    class Recording(ort.InferenceSession):
        def __init__(self, path, *args, **kwargs):
            opened.append(Path(path).name)
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", Recording)
    model = OnnxAutoencoder(folder)
    model.reconstruct(_uint8_images(2))
    assert opened == ["model.onnx"]
    model.encode(_uint8_images(2))
    model.encode(_uint8_images(2))
    assert opened == ["model.onnx", "encoder.onnx"]
    model.decode(np.zeros(CODE_SHAPE, np.float32))
    assert opened == ["model.onnx", "encoder.onnx", "decoder.onnx"]


def test_missing_metadata_falls_back_to_the_graphs(bare_folder):
    model = OnnxAutoencoder(bare_folder)
    assert model.input_shape == (8, 8, 1)
    assert model.code_shape == (32,)
    assert model.code_size == 32
    assert model.version is None and model.decoder_kind is None
    images = np.random.default_rng(1).random((3, 8, 8), dtype=np.float32)
    codes = model.encode(images)
    np.testing.assert_array_equal(codes, images.reshape(3, 64)[:, :32])
    np.testing.assert_array_equal(model.decode(codes[0]),
                                  np.tile(codes[0], 2).reshape(8, 8, 1))


# --- reconstruct -----------------------------------------------------------

@pytest.mark.parametrize("shape", [(28, 28, 1), (28, 28), (3, 28, 28, 1), (3, 28, 28)],
                         ids=str)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_reconstruct_keeps_the_layout_of_its_input(model, shape, dtype):
    uint8 = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    x = uint8 if dtype == np.uint8 else uint8.astype(np.float32) / 255
    out = model.reconstruct(x)
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, _expected_reconstruction(
        uint8.astype(np.float32) / np.float32(255)))


def test_uint8_255_is_float_1(model):
    white_uint8 = np.full((2, 28, 28, 1), 255, np.uint8)
    white_float = np.ones((2, 28, 28, 1), np.float32)
    np.testing.assert_array_equal(model.reconstruct(white_uint8),
                                  model.reconstruct(white_float))
    np.testing.assert_array_equal(model.reconstruct(white_uint8), np.full(
        (2, 28, 28, 1), 0.75, np.float32))
    np.testing.assert_array_equal(model.encode(white_uint8), model.encode(white_float))
    np.testing.assert_array_equal(model.reconstruction_error(white_uint8),
                                  model.reconstruction_error(white_float))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_float16_and_float64_images(model, dtype):
    images = (np.arange(2 * 784).reshape(2, 28, 28, 1) % 5 / 4).astype(dtype)
    out = model.reconstruct(images)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, _expected_reconstruction(images))


def test_nested_lists_are_images(model):
    image = np.linspace(0, 1, 784, dtype=np.float64).reshape(28, 28)
    np.testing.assert_array_equal(model.reconstruct(image.tolist()),
                                  _expected_reconstruction(image))


# --- encode, decode, reconstruction_error -----------------------------------

def test_encode(model):
    images = _float_images(5)
    codes = model.encode(images)
    assert codes.shape == (5, 7, 7, 4) and codes.dtype == np.float32
    np.testing.assert_allclose(codes, _expected_codes(images), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(model.encode(images[0]), codes[0])
    np.testing.assert_array_equal(model.encode(images[..., 0]), codes)
    np.testing.assert_array_equal(model.encode(images[0, ..., 0]), codes[0])


def test_encode_constant_blocks_exactly(model):
    # Each 4x4 block holds one multiple of 1/64, so its average is exact.
    blocks = np.arange(49, dtype=np.float32).reshape(1, 7, 7) / 64
    images = blocks.repeat(4, axis=1).repeat(4, axis=2)[..., None]
    np.testing.assert_array_equal(model.encode(images),
                                  blocks[..., None] * CODE_SCALES)


def test_decode(model):
    codes = np.random.default_rng(3).normal(0.5, 0.5, (4, *CODE_SHAPE)).astype(np.float32)
    images = model.decode(codes)
    assert images.shape == (4, 28, 28, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(images, _expected_decoded(codes))
    np.testing.assert_array_equal(model.decode(codes[1]), images[1])
    np.testing.assert_array_equal(model.decode(codes.astype(np.float64)), images)
    np.testing.assert_array_equal(model.decode(codes.tolist()), images)


def test_decode_of_encode(model):
    images = _uint8_images(3)
    np.testing.assert_allclose(
        model.decode(model.encode(images)),
        _expected_decoded(_expected_codes(images / 255)), rtol=1e-6, atol=1e-7)


def test_reconstruction_error(model):
    images = _float_images(6)
    errors = model.reconstruction_error(images)
    assert errors.shape == (6,) and errors.dtype == np.float32
    np.testing.assert_allclose(errors, _expected_errors(images), rtol=1e-6)
    one = model.reconstruction_error(images[2, ..., 0])
    assert isinstance(one, np.float32) and np.ndim(one) == 0
    assert one == errors[2]


def test_reconstruction_error_by_hand(model):
    # 0.5 * x + 0.25 - x is -0.25 at 1, 0.25 at 0 and 0 at 0.5.
    images = np.stack([np.ones(SHAPE), np.zeros(SHAPE), np.full(SHAPE, 0.5)])
    assert model.reconstruction_error(images).tolist() == [0.0625, 0.0625, 0.0]
    uint8 = np.full((28, 28), 255, np.uint8)
    assert model.reconstruction_error(uint8) == np.float32(0.0625)


def test_chunks_give_the_results_of_one_call(model, run_calls):
    images = _uint8_images(37, seed=4)
    whole = model.reconstruct(images, batch_size=256)
    codes = model.encode(images, batch_size=256)
    decoded = model.decode(codes, batch_size=256)
    errors = model.reconstruction_error(images, batch_size=256)
    assert run_calls == [37, 37, 37, 37]
    run_calls.clear()

    np.testing.assert_array_equal(model.reconstruct(images, batch_size=5), whole)
    assert run_calls == [5] * 7 + [2]
    np.testing.assert_array_equal(model.encode(images, batch_size=5), codes)
    np.testing.assert_array_equal(model.decode(codes, batch_size=5), decoded)
    np.testing.assert_array_equal(model.reconstruction_error(images, batch_size=5),
                                  errors)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_must_be_a_positive_int(model, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        model.reconstruct(_uint8_images(2), batch_size=batch_size)


def test_empty_batches_give_empty_results_without_running(model, run_calls):
    empty = np.zeros((0, 28, 28), np.uint8)
    assert model.reconstruct(empty).shape == (0, 28, 28)
    assert model.reconstruct(empty[..., None]).shape == (0, 28, 28, 1)
    assert model.encode(empty).shape == (0, 7, 7, 4)
    assert model.decode(np.zeros((0, *CODE_SHAPE), np.float32)).shape == (0, 28, 28, 1)
    errors = model.reconstruction_error(empty)
    assert errors.shape == (0,) and errors.dtype == np.float32
    assert run_calls == []


# --- bad inputs ------------------------------------------------------------

@pytest.mark.parametrize("shape", [(28, 28, 3), (27, 28, 1), (2, 28, 28, 2), (28, 28, 1, 1),
                                   (2, 1, 28, 28, 1), (784,), (2, 784), (), (28,)],
                         ids=str)
def test_wrong_image_shapes(model, shape):
    with pytest.raises(ValueError) as error:
        model.reconstruct(np.zeros(shape, np.float32))
    message = str(error.value)
    assert f"got shape {shape}" in message
    for accepted in ("(28, 28, 1)", "(28, 28)", "(N, 28, 28, 1)", "(N, 28, 28)"):
        assert accepted in message


def test_channels_may_only_be_left_out_of_grey_images(tmp_path):
    _save_autoencoder(tmp_path / "model.onnx", (4, 4, 3),
                      {"keras_ae.input_shape": [4, 4, 3]})
    model = OnnxAutoencoder(tmp_path)
    assert model.reconstruct(np.zeros((4, 4, 3), np.uint8)).shape == (4, 4, 3)
    with pytest.raises(ValueError, match=r"\(4, 4, 3\)"):
        model.reconstruct(np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, np.bool_, np.complex64,
                                   object])
def test_wrong_image_dtypes(model, dtype):
    with pytest.raises(ValueError, match=f"dtype {np.dtype(dtype)}"):
        model.reconstruct(np.zeros(SHAPE, dtype))


def test_strings_and_ragged_lists_are_not_images(model):
    with pytest.raises(ValueError):
        model.reconstruct(np.full(SHAPE, "a"))
    with pytest.raises(ValueError, match="array of numbers"):
        model.reconstruct([[0.0, 0.5], [0.5]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["reconstruct", "encode", "reconstruction_error"])
def test_non_finite_images(model, bad, method):
    images = _float_images(2)
    images[1, 3, 4, 0] = bad
    with pytest.raises(ValueError, match="finite"):
        getattr(model, method)(images)


@pytest.mark.parametrize("low, high", [(0.0, 255.0), (-0.5, 1.0), (0.0, 1.0001)])
def test_float_images_outside_0_1(model, low, high):
    images = np.linspace(low, high, 784, dtype=np.float64).reshape(28, 28)
    with pytest.raises(ValueError) as error:
        model.reconstruct(images)
    message = str(error.value)
    assert f"from {low:g} to {high:g}" in message
    assert "[0, 1]" in message and "255" in message


@pytest.mark.parametrize("shape", [(7, 7), (7, 7, 3), (2, 7, 7, 3), (196,), (2, 196)],
                         ids=str)
def test_decode_wrong_code_shapes(model, shape):
    with pytest.raises(ValueError) as error:
        model.decode(np.zeros(shape, np.float32))
    message = str(error.value)
    assert f"got shape {shape}" in message
    assert "(7, 7, 4)" in message and "(N, 7, 7, 4)" in message


@pytest.mark.parametrize("codes", [np.zeros(CODE_SHAPE, np.int32),
                                   np.zeros(CODE_SHAPE, np.uint8),
                                   np.zeros(CODE_SHAPE, bool)],
                         ids=["int32", "uint8", "bool"])
def test_decode_wants_float_codes(model, codes):
    with pytest.raises(ValueError, match="float"):
        model.decode(codes)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_decode_non_finite_codes(model, bad):
    codes = np.zeros((3, *CODE_SHAPE), np.float32)
    codes[2, 0, 0, 1] = bad
    with pytest.raises(ValueError, match="finite"):
        model.decode(codes)


# --- exports that lack a part, and files that are no export ----------------

def test_unpool_exports_cannot_decode(unpool_folder):
    model = OnnxAutoencoder(unpool_folder)
    assert model.metadata["keras_ae.decoder_file"] is None
    assert model.decoder_kind == "unpool" and not model.can_decode
    with pytest.raises(RuntimeError) as error:
        model.decode(np.zeros(CODE_SHAPE, np.float32))
    assert "unpool" in str(error.value) and "argmax" in str(error.value)
    # Everything else still runs.
    images = _float_images(2)
    np.testing.assert_array_equal(model.reconstruct(images),
                                  _expected_reconstruction(images))
    assert model.encode(images).shape == (2, 7, 7, 4)


def test_a_decoder_file_left_from_an_earlier_export_is_ignored(tmp_path):
    folder = _write_conv_export(tmp_path, decoder="unpool", decoder_file=...)
    _save_conv_decoder(folder / "decoder.onnx", _contract_metadata("decoder"))
    model = OnnxAutoencoder(folder)
    assert not model.can_decode
    with pytest.raises(RuntimeError, match="argmax"):
        model.decode(np.zeros(CODE_SHAPE, np.float32))


def test_exports_without_an_encoder_cannot_encode(tmp_path):
    folder = _write_conv_export(tmp_path, decoder="custom", decoder_file=...,
                                **{"keras_ae.encoder_file": None})
    model = OnnxAutoencoder(folder)
    assert not model.can_encode and not model.can_decode
    with pytest.raises(RuntimeError, match="without an encoder"):
        model.encode(_uint8_images(1))
    with pytest.raises(RuntimeError, match="'custom'"):
        model.decode(np.zeros(CODE_SHAPE, np.float32))


def test_a_named_part_that_is_missing(tmp_path):
    folder = _write_conv_export(tmp_path)
    (folder / "decoder.onnx").unlink()
    model = OnnxAutoencoder(folder)
    with pytest.raises(FileNotFoundError, match="decoder.onnx"):
        model.decode(np.zeros(CODE_SHAPE, np.float32))


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere.onnx"))):
        OnnxAutoencoder(tmp_path / "nowhere.onnx")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "model.onnx"))):
        OnnxAutoencoder(tmp_path)


def test_onnx_files_that_are_no_autoencoder(tmp_path):
    path = _save(tmp_path / "other.onnx", [helper.make_node("Identity", ["x"], ["y"])],
                 [_value("x", [3])], [_value("y", [3])])
    with pytest.raises(ValueError) as error:
        OnnxAutoencoder(path)
    message = str(error.value)
    assert "'image'" in message and "'reconstruction'" in message  # expected
    assert "'x'" in message and "'y'" in message  # found


def test_the_encoder_file_is_no_autoencoder(folder):
    with pytest.raises(ValueError, match="it is the encoder"):
        OnnxAutoencoder(folder / "encoder.onnx")


def test_files_that_are_no_onnx(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("not a model")
    with pytest.raises(ValueError, match="not an ONNX model"):
        OnnxAutoencoder(path)


def test_metadata_that_contradicts_the_graph(tmp_path):
    _write_conv_export(tmp_path, **{"keras_ae.input_shape": [32, 32, 1]})
    with pytest.raises(ValueError, match=r"\[32, 32, 1\]"):
        OnnxAutoencoder(tmp_path)


# --- no TensorFlow ---------------------------------------------------------

def _python(code, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=False,
                          cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_serving_does_not_load_tensorflow_or_keras():
    out = _python("import sys, keras_ae.runtime.onnx_autoencoder; "
                  "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    assert out.strip() == "[]"


def test_serving_runs_where_tensorflow_and_keras_cannot_be_imported(folder):
    code = """
import sys

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, NoTensorFlow())
for name in ("tensorflow", "keras"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} could be imported")

import numpy as np
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

model = OnnxAutoencoder(sys.argv[1])
print(model.reconstruct(np.full((2, 28, 28), 255, np.uint8)).mean())
"""
    assert float(_python(code, folder)) == 0.75


# --- docs ------------------------------------------------------------------

def test_docstring_examples(model, folder):
    result = doctest.testmod(serving, extraglobs={
        "np": np, "model": model, "folder": str(folder)})
    assert result.attempted > 10
    assert result.failed == 0
