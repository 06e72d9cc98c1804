"""Hostile or broken models on the serving route: an ONNX file that outputs
NaN, another shape, or whose metadata claims huge shapes or points outside
its folder, is refused in one line, with nothing written."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from keras_ae.cli import commands as cli
from keras_ae.errors import InputError
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder


def one_line_error(capsys, command):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"keras-ae {command}: error: "), err
    return lines[0]


def hand_made_model(path, *, output_rows=4, scale=1.0, metadata=None):
    """An "autoencoder" of 4x4 grey images, written with onnx.helper:
    ``reconstruction = image[:, :output_rows] * scale``."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 4, 4, 1])
    out = helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT,
                                        [None, output_rows, 4, 1])
    constants = [helper.make_tensor(name, TensorProto.INT64, [1], [value])
                 for name, value in (("starts", 0), ("ends", output_rows), ("axes", 1))]
    constants.append(helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]))
    nodes = [helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["rows"]),
             helper.make_node("Mul", ["rows", "scale"], ["reconstruction"])]
    graph = helper.make_graph(nodes, "hand_made", [image], [out], initializer=constants)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    for key, value in {"keras_ae.role": "autoencoder", **(metadata or {})}.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(proto, path)
    return path


@pytest.fixture
def image(tmp_path):
    Image.fromarray(np.full((4, 4), 100, np.uint8), "L").save(tmp_path / "x.png")
    return tmp_path / "x.png"


def test_a_model_that_outputs_nan_is_never_served(tmp_path, image, capsys):
    model = hand_made_model(tmp_path / "nan.onnx", scale=float("nan"))
    out = tmp_path / "out"
    assert cli.main(["predict", str(model), str(image), "--out", str(out)]) == 2
    line = one_line_error(capsys, "predict")
    assert "nan.onnx gives NaN or infinite outputs (16 of 16 values)" in line
    assert not out.exists()
    with pytest.raises(InputError, match="gives NaN or infinite outputs"):
        OnnxAutoencoder(model).reconstruction_error(np.zeros((1, 4, 4, 1), np.uint8))


def test_a_model_whose_output_has_another_shape_is_one_line(tmp_path, image, capsys):
    model = hand_made_model(tmp_path / "rows.onnx", output_rows=2)
    assert cli.main(["predict", str(model), str(image), "--out",
                     str(tmp_path / "out")]) == 2
    line = one_line_error(capsys, "predict")
    assert "rows.onnx returned 'reconstruction' of shape (1, 2, 4, 1)" in line
    assert "expected (1, 4, 4, 1)" in line


def test_metadata_shapes_are_bounded_before_anything_is_allocated(tmp_path, image, capsys):
    model = hand_made_model(tmp_path / "huge.onnx",
                            metadata={"keras_ae.input_shape": [100000, 100000, 1]})
    assert cli.main(["predict", str(model), str(image), "--resize", "--out",
                     str(tmp_path / "out")]) == 2
    line = one_line_error(capsys, "predict")
    assert "input_shape [100000, 100000, 1] claims 10,000,000,000 values" in line


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "..", "a/b.onnx"])
def test_metadata_never_names_a_file_outside_the_models_folder(tmp_path, name):
    model = hand_made_model(tmp_path / "model.onnx",
                            metadata={"keras_ae.encoder_file": name})
    with pytest.raises(InputError, match=r"encoder_file .* is not a file name in the "
                                         r"model's folder"):
        OnnxAutoencoder(model)
