"""int8 exports: onnxruntime static quantization, its refusal rule, serving."""

import json
import re

import numpy as np
import onnx
import pytest

import keras
import keras_ae
from keras_ae.export import exporter as export
from keras_ae.export import quantize
from keras_ae.runtime.pixels import per_image_mse
from keras_ae.export.quantize import QuantizationRefused, int8_path, quantize_onnx
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder
from conftest import smooth_images


@pytest.fixture(scope="module")
def trained():
    """A small conv model trained on smooth images, and its images."""
    keras.utils.set_random_seed(0)
    train, test = smooth_images(384, seed=0), smooth_images(96, seed=1)
    model = keras_ae.build_conv_autoencoder((16, 16, 1), filters=(8, 4),
                                            convs_per_stage=1)
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    model.fit(train, train, batch_size=32, epochs=15, verbose=0)
    return model, train, test


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    model, _, _ = trained
    folder = tmp_path_factory.mktemp("float")
    export.export_onnx(model, folder / "model.onnx")
    return folder


def _copy(folder, tmp_path):
    for path in folder.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return tmp_path / "model.onnx"


def test_int8_path_names_the_twin():
    assert int8_path("a/model.onnx").as_posix() == "a/model.int8.onnx"
    assert int8_path("encoder.onnx").name == "encoder.int8.onnx"


def test_int8_twin_is_written_measured_and_served(trained, exported, tmp_path):
    _, train, test = trained
    path = _copy(exported, tmp_path)
    report = quantize_onnx(path, train[:256], test_images=test,
                           max_mse_increase=1.0)
    assert report["files"] == {"model": "model.int8.onnx",
                               "encoder": "encoder.int8.onnx"}
    assert (report["measured_on"], report["images"],
            report["calibration_images"]) == ("test images", 96, 256)

    float_model = OnnxAutoencoder(path)
    int8_model = OnnxAutoencoder(tmp_path / "model.int8.onnx")
    assert (float_model.precision, int8_model.precision) == ("float32", "int8")
    assert int8_model.quantization["int8_mse"] == pytest.approx(report["int8_mse"])
    assert "precision='int8'" in repr(int8_model)
    # the report's figures are what the two files do on the test images
    assert report["float_mse"] == pytest.approx(
        float(np.mean(float_model.reconstruction_error(test))), rel=1e-5)
    assert report["int8_mse"] == pytest.approx(
        float(np.mean(int8_model.reconstruction_error(test))), rel=1e-5)
    assert report["mse_increase"] == pytest.approx(
        report["int8_mse"] / report["float_mse"] - 1)

    # integer weights and quantize/dequantize nodes: really int8
    graph = onnx.load(tmp_path / "model.int8.onnx").graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    # close to the float model, not equal to it
    difference = np.abs(int8_model.reconstruct(test) - float_model.reconstruct(test))
    assert 0 < difference.mean() < 0.02
    codes = int8_model.encode(test[:4])
    assert codes.shape == (4, *float_model.code_shape)
    assert np.abs(codes - float_model.encode(test[:4])).mean() < 0.1
    # decoding runs the float decoder
    assert int8_model.decode(codes).shape == (4, 16, 16, 1)


def test_quantization_is_refused_beyond_the_bound(trained, exported, tmp_path):
    _, train, test = trained
    path = _copy(exported, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    # Calibrated on dark images, the int8 ranges clip the test images'
    # activations: the quality loss the rule is there to catch.
    dark = train[:256] * 0.1
    with pytest.raises(QuantizationRefused, match=r"the int8 model's MSE is \+[0-9.]+% "
                       r"above the float model's .* on 96 test images\); "
                       r"allowed: \+50%") as refusal:
        quantize_onnx(path, dark, test_images=test, max_mse_increase=0.5)
    assert refusal.value.report["mse_increase"] > 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_export_model_keeps_the_float_folder_when_int8_is_refused(trained, tmp_path):
    model, train, test = trained
    with pytest.raises(QuantizationRefused):
        export.export_model(model, tmp_path / "ex", saved_model=False,
                            quantize="int8", calibration_images=train[:128] * 0.1,
                            test_images=test, max_mse_increase=0.5, verbose=False)
    names = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert names == ["decoder.onnx", "encoder.onnx", "keras-ae.json", "model.onnx",
                     "model_card.json"]
    card = json.loads((tmp_path / "ex" / "model_card.json").read_text())
    assert "allowed: +50%" in card["int8"]["refused"] and card["int8"]["files"] == {}
    assert card["int8"]["mse_increase"] > 0.5

    card = export.export_model(model, tmp_path / "ex", saved_model=False,
                               quantize="int8", calibration_images=train[:128],
                               test_images=test, max_mse_increase=1.0, verbose=False)
    assert card["files"]["model_int8_onnx"] == "model.int8.onnx"
    assert card["int8"]["int8_mse"] > 0 and "refused" not in card["int8"]
    assert (tmp_path / "ex" / "encoder.int8.onnx").is_file()

    # a float export over it leaves no int8 file of the earlier model behind
    export.export_onnx(model, tmp_path / "ex" / "model.onnx")
    assert not (tmp_path / "ex" / "model.int8.onnx").exists()
    assert not (tmp_path / "ex" / "encoder.int8.onnx").exists()


def test_quantize_without_measuring_images_measures_on_calibration(trained, exported,
                                                                   tmp_path):
    _, train, _ = trained
    report = quantize_onnx(_copy(exported, tmp_path), train[:64], max_mse_increase=1.0)
    assert (report["measured_on"], report["images"]) == ("calibration images", 64)
    errors = per_image_mse(OnnxAutoencoder(tmp_path / "model.onnx").reconstruct(
        train[:64]), train[:64])
    assert report["float_mse"] == pytest.approx(float(np.mean(errors)), rel=1e-5)


def test_bad_quantization_requests(trained, exported, tmp_path):
    model, train, _ = trained
    with pytest.raises(ValueError, match=r"quantize must be None or 'int8', got 'int4'"):
        export.export_onnx(model, tmp_path / "m.onnx", quantize="int4")
    with pytest.raises(ValueError, match="quantize='int8' needs calibration_images"):
        export.export_onnx(model, tmp_path / "m.onnx", quantize="int8")
    with pytest.raises(ValueError, match="quantize needs the ONNX export"):
        export.export_model(model, tmp_path / "x", onnx=False, quantize="int8",
                            calibration_images=train[:8])
    path = _copy(exported, tmp_path)
    with pytest.raises(ValueError, match=r"calibration_images must be a batch "
                       r"shaped \(N, 16, 16, 1\), got shape \(8, 28, 28, 1\)"):
        quantize_onnx(path, np.zeros((8, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match=r"test_images must be uint8, or floats in "
                       r"\[0, 1\]; got float32 from 2.0 to 2.0"):
        quantize_onnx(path, train[:8], test_images=np.full((2, 16, 16, 1), 2.0, "f"))
    with pytest.raises(ValueError, match="max_mse_increase must be a fraction >= 0, "
                       "got -0.1"):
        quantize_onnx(path, train[:8], max_mse_increase=-0.1)
    assert not int8_path(path).exists()


def test_uint8_images_calibrate_as_their_floats(trained, exported, tmp_path):
    _, train, test = trained
    as_uint8 = np.round(train[:64] * 255).astype(np.uint8)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_uint8 = quantize_onnx(_copy(exported, tmp_path / "a"), as_uint8,
                               test_images=test, max_mse_increase=1.0)
    from_float = quantize_onnx(_copy(exported, tmp_path / "b"),
                               as_uint8.astype(np.float32) / 255,
                               test_images=test, max_mse_increase=1.0)
    assert from_uint8["int8_mse"] == from_float["int8_mse"]


# --- the command line ---------------------------------------------------------

@pytest.fixture
def run_folder(trained_run):
    return trained_run  # conftest's, shared


def test_export_quantize_calibrates_on_the_runs_own_data(run_folder, idx_dir, tmp_path,
                                                         capsys):
    from keras_ae.cli import commands as cli

    out = tmp_path / "exported"
    assert cli.main(["export", str(run_folder / "model.keras"), "--output", str(out),
                     "--formats", "onnx", "--quantize", "int8",
                     "--calibration-images", "300", "--max-mse-increase", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"int8 calibration and test images: idx:{idx_dir}" in printed
    card = json.loads((out / "model_card.json").read_text())
    assert card["int8"]["calibration_images"] == 300
    assert (card["int8"]["measured_on"], card["int8"]["images"]) == ("test images", 200)
    assert card["files"]["model_int8_onnx"] == "model.int8.onnx"
    assert f"{card['int8']['int8_mse']:.5f}" in printed

    # predict takes the int8 file as it takes the float one
    from PIL import Image
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "black.png")
    assert cli.main(["predict", str(out / "model.int8.onnx"), str(tmp_path / "black.png"),
                     "--output", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "black_reconstruction.png").is_file()


def test_export_says_why_no_int8_was_written(run_folder, tmp_path, capsys, monkeypatch):
    from keras_ae.cli import commands as cli

    def refuse(path, *args, **kwargs):
        raise QuantizationRefused("model.onnx: the int8 model's MSE is +9.0% above "
                                  "the float model's", {"mse_increase": 0.09})
    monkeypatch.setattr(quantize, "quantize_onnx", refuse)
    out = tmp_path / "exported"
    assert cli.main(["export", str(run_folder / "model.keras"), "--output", str(out),
                     "--formats", "onnx", "--quantize", "int8",
                     "--calibration-images", "16"]) == 1
    printed = capsys.readouterr().out
    assert "int8 refused: model.onnx: the int8 model's MSE is +9.0%" in printed
    assert "without int8 files" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "decoder.onnx", "encoder.onnx", "keras-ae.json", "model.onnx", "model_card.json"]


def test_export_quantize_with_a_bad_count(run_folder, tmp_path, capsys):
    from keras_ae.cli import commands as cli

    assert cli.main(["export", str(run_folder / "model.keras"), "--output",
                     str(tmp_path / "x"), "--quantize", "int8",
                     "--calibration-images", "0"]) == 2
    assert "(--calibration-images) must be a positive integer, got 0." in \
        capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# --- the recipe's graph preparation ------------------------------------------

def test_the_output_convolution_is_int8_with_its_logits_cut(trained, exported, tmp_path):
    import onnxruntime

    _, train, test = trained
    path = _copy(exported, tmp_path)
    limit = 0.5
    # (a cut this deep clips the pixels to [0.38, 0.62]: no bound)
    quantize_onnx(path, train[:128], test_images=test, max_mse_increase=float("inf"),
                  recipe={"logit_limit": limit})
    graph = onnx.load(int8_path(path)).graph
    producers = {out: node for node in graph.node for out in node.output}
    values = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    # back from the sigmoid, through the slice of the widened output
    # convolution, to that convolution: the logits come from int8
    path_back = [producers[next(n for n in graph.node
                                if n.op_type == "Sigmoid").input[0]]]
    while path_back[-1].op_type in ("Transpose", "Slice", "QuantizeLinear",
                                    "DequantizeLinear"):
        path_back.append(producers[path_back[-1].input[0]])
    assert path_back[-1].op_type == "Conv"
    assert "Slice" in [node.op_type for node in path_back]
    dequantize = next(n for n in path_back if n.op_type == "DequantizeLinear")

    # the logits' range on the calibration images, cut to [-0.5, 0.5]
    proto = onnx.load(path)
    logits = next(n for n in proto.graph.node if n.op_type == "Sigmoid").input[0]
    proto.graph.output.extend([onnx.ValueInfoProto(name=logits)])
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    seen = session.run([logits], {"image": train[:128].astype(np.float32)})[0]
    assert seen.min() < -limit and seen.max() > limit  # so the cut shows
    assert float(values[dequantize.input[1]]) == pytest.approx(2 * limit / 255)

    # the first convolution (1 channel in) was widened to 4
    assert any(node.op_type == "Pad" for node in graph.node)


def test_the_output_convolution_can_stay_float(trained, exported, tmp_path):
    _, train, _ = trained
    path = _copy(exported, tmp_path)
    report = quantize_onnx(path, train[:64], max_mse_increase=1.0,
                           recipe={"float_output_conv": True, "min_input_channels": None})
    assert report["recipe"]["float_output_conv"] is True
    graph = onnx.load(int8_path(path)).graph
    producers = {out: node for node in graph.node for out in node.output}
    sigmoid = next(node for node in graph.node if node.op_type == "Sigmoid")
    assert producers[sigmoid.input[0]].op_type == "Conv"
    # neither widened: the first by request, the float one is not for int8
    assert not {"Pad", "Slice"} & {node.op_type for node in graph.node}


@pytest.mark.parametrize("change, message", [
    ({"logit_limit": 0}, "recipe 'logit_limit' must be None or a number > 0, got 0."),
    ({"min_input_channels": True},
     "recipe 'min_input_channels' must be None or an integer >= 1, got True."),
    ({"min_filters": 0}, "recipe 'min_filters' must be None or an integer >= 1, got 0."),
    ({"per_channel": "yes"}, "recipe 'per_channel' must be one of [True, False], "
                             "got 'yes'."),
    ({"bits": 4}, "unknown recipe keys ['bits']; expected some of"),
])
def test_bad_recipes(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        quantize.check_recipe(change)


def test_upsampling_runs_as_a_copy_and_a_shuffle_in_int8_only(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras_ae.build_conv_autoencoder((16, 16, 1), filters=(8, 4),
                                            convs_per_stage=1, decoder="upsample")
    export.export_onnx(model, tmp_path / "model.onnx")
    images = np.random.default_rng(0).random((32, 16, 16, 1), np.float32)
    report = quantize_onnx(tmp_path / "model.onnx", images,
                           max_mse_increase=float("inf"))
    float_ops = {n.op_type for n in onnx.load(tmp_path / "model.onnx").graph.node}
    int8_ops = {n.op_type for n in onnx.load(int8_path(tmp_path / "model.onnx")).graph.node}
    assert "Resize" in float_ops and "Resize" not in int8_ops
    assert report["recipe"]["resize_as_shuffle"] is True
