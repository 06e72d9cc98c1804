"""SavedModel and ONNX exports: names, signatures, metadata, parity, atomicity."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf

import keras_ae
from keras_ae.cli import commands as cli
from keras_ae.export import exporter as export
from keras_ae.models.loading import as_float32
from keras_ae.models.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D

SMALL = {"filters": (8, 4), "convs_per_stage": 1}


def conv(decoder, **options):
    return keras_ae.build_conv_autoencoder(decoder=decoder, **{**SMALL, **options})


BUILDERS = {
    "transpose": lambda: conv("transpose"),
    "upsample": lambda: conv("upsample"),
    "unpool": lambda: conv("unpool"),
    "unpool-average": lambda: conv("unpool", pooling="average"),
    "transpose-sqrt": lambda: conv("transpose", intensity="sqrt"),
    "dense": lambda: keras_ae.build_dense_autoencoder(code_size=16),
}


def images(n, shape=(28, 28, 1), seed=5):
    return np.random.default_rng(seed).random((n, *shape), "float32")


def run_onnx(path, name, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: x})[0]


def metadata(path):
    return {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}


# --- describe ---------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_describe_names_the_decoder_and_code(kind):
    facts = export.describe(BUILDERS[kind]())
    assert facts["decoder"] == kind.split("-")[0]
    assert facts["pooling"] == ("average" if "average" in kind else
                                None if kind == "dense" else "max")
    assert facts["input_shape"] == [28, 28, 1]
    assert facts["code_shape"] == ([16] if kind == "dense" else [7, 7, 4])
    assert facts["code_size"] == (16 if kind == "dense" else 196)
    max_unpooling = kind.startswith("unpool") and "average" not in kind
    assert facts["decoder_runs_alone"] is not max_unpooling


def test_describe_refuses_what_is_not_an_image_autoencoder():
    flat = keras.Sequential([keras.Input((10,)), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=r"fixed shape \(H, W, C\)"):
        export.describe(flat)
    image = keras.Input((8, 8, 1))
    smaller = keras.Model(image, keras.layers.MaxPooling2D()(image))
    with pytest.raises(ValueError, match=r"output of the input's shape \(8, 8, 1\)"):
        export.describe(smaller)
    with pytest.raises(TypeError, match="expected a keras.Model, got str"):
        export.describe("model.keras")


def test_a_plain_image_model_exports_without_encoder_parts(tmp_path):
    image = keras.Input((8, 8, 1))
    model = keras.Model(image, keras.layers.Conv2D(1, 3, padding="same",
                                                   activation="sigmoid")(image))
    figures = export.export_onnx(model, tmp_path / "model.onnx")
    assert sorted(figures) == ["model"]
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]
    assert metadata(tmp_path / "model.onnx")["keras_ae.encoder_file"] is None


# --- SavedModel -------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_saved_model_signatures_match_keras(kind, tmp_path):
    import tensorflow as tf

    model = BUILDERS[kind]()
    figures = export.export_saved_model(model, tmp_path / "sm")
    expected = {"serving_default", "encode"} | ({"decode"} if kind != "unpool" else set())
    assert set(figures) == expected
    assert max(figures.values()) <= export.PARITY_TOLERANCE

    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    assert set(loaded.signatures) == expected
    x = images(3)
    out = loaded.signatures["serving_default"](image=tf.constant(x))
    assert list(out) == ["reconstruction"]
    np.testing.assert_allclose(out["reconstruction"].numpy(), model(x), atol=1e-6)
    code = loaded.signatures["encode"](image=tf.constant(x))["code"].numpy()
    encoded = model.get_layer("encoder")(x)
    encoded = encoded[0] if isinstance(encoded, (list, tuple)) else encoded
    np.testing.assert_allclose(code, encoded, atol=1e-6)
    if kind != "unpool":
        back = loaded.signatures["decode"](code=tf.constant(code))["reconstruction"]
        np.testing.assert_allclose(back.numpy(), model(x), atol=1e-5)


@pytest.mark.slow  # a fresh process loads the SavedModel
def test_saved_model_loads_and_runs_without_keras_ae(tmp_path):
    """Plain TensorFlow and saved_model_cli, in a process that never imports us."""
    model = conv("unpool")
    export.export_saved_model(model, tmp_path / "sm")
    x = images(2)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(tmp_path / 'sm')!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "y = m.signatures['serving_default'](image=tf.constant(x))['reconstruction']\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, y.numpy())\n"
        "assert not any(n.startswith('keras_ae') for n in sys.modules), 'imported'\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    subprocess.run([sys.executable, "-c", script], check=True, env=env,
                   cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x), atol=1e-6)

    cli_tool = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli_tool):
        pytest.skip("saved_model_cli is not installed beside this Python")
    shown = subprocess.run(
        [cli_tool, "show", "--dir", str(tmp_path / "sm"), "--all"],
        check=True, capture_output=True, text=True, env=env).stdout
    for text in ("signature_def['serving_default']", "signature_def['encode']",
                 "inputs['image']", "outputs['reconstruction']", "outputs['code']"):
        assert text in shown
    assert "signature_def['decode']" not in shown  # unpool: needs the indices


# --- ONNX -------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_onnx_files_names_metadata_and_parity(kind, tmp_path):
    model = BUILDERS[kind]()
    figures = export.export_onnx(model, tmp_path / "model.onnx")
    parts = {"model", "encoder"} | ({"decoder"} if kind != "unpool" else set())
    assert set(figures) == parts
    assert max(figures.values()) <= export.PARITY_TOLERANCE
    expected_files = {"model.onnx", "encoder.onnx"} | (
        {"decoder.onnx"} if kind != "unpool" else set())
    assert set(os.listdir(tmp_path)) == expected_files

    proto = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["reconstruction"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 28, 28, 1]
    meta = metadata(tmp_path / "model.onnx")
    assert meta["keras_ae.input_shape"] == [28, 28, 1]
    assert meta["keras_ae.value_range"] == [0, 1]
    assert meta["keras_ae.decoder"] == kind.split("-")[0]
    assert meta["keras_ae.code_size"] == (16 if kind == "dense" else 196)
    assert meta["keras_ae.version"] == keras_ae.__version__
    assert meta["keras_ae.role"] == "autoencoder"
    assert meta["keras_ae.max_abs_diff"] == figures["model"]
    assert meta["keras_ae.encoder_file"] == "encoder.onnx"
    assert meta["keras_ae.decoder_file"] == (None if kind == "unpool" else "decoder.onnx")

    for batch in (1, 4):  # dynamic batch, sizes the check did not use
        x = images(batch, seed=batch)
        np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", "image", x),
                                   model(x), atol=1e-5)
    code = run_onnx(tmp_path / "encoder.onnx", "image", images(2))
    assert code.shape == (2, *export.describe(model)["code_shape"])
    if kind != "unpool":
        back = run_onnx(tmp_path / "decoder.onnx", "code", code)
        np.testing.assert_allclose(back, model.get_layer("decoder")(code), atol=1e-5)


def test_nearest_upsampling_becomes_one_resize_per_stage(tmp_path):
    model = conv("upsample")
    export.export_onnx(model, tmp_path / "model.onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "model.onnx")).graph.node]
    assert ops.count("Resize") == 2 and "Tile" not in ops
    x = images(5, seed=9)  # exact, not merely close: a copy of each pixel
    np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", "image", x),
                               model(x), atol=1e-6)
    # the Keras model itself is untouched
    kinds = [type(layer).__name__ for layer in model.get_layer("decoder").layers]
    assert kinds.count("UpSampling2D") == 2


def test_transposed_convolutions_become_a_convolution_and_a_shuffle(tmp_path):
    model = conv("transpose")
    export.export_onnx(model, tmp_path / "model.onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "model.onnx")).graph.node]
    layers = [type(layer).__name__ for part in ("encoder", "decoder")
              for layer in model.get_layer(part).layers]
    assert "ConvTranspose" not in ops and ops.count("Conv") == (
        layers.count("Conv2D") + layers.count("Conv2DTranspose"))
    x = images(5, seed=3)
    np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", "image", x),
                               model(x), atol=1e-6)


@pytest.mark.parametrize("kernel, strides, replaced", [
    (3, 3, True), ((2, 3), (2, 3), True), (3, 2, False), (2, 1, False)])
def test_pixel_shuffle_is_exact_where_it_applies(kernel, strides, replaced):
    from keras_ae.export.trace import PixelShuffleConv2DTranspose, for_onnx

    image = keras.Input((5, 4, 3))
    layer = keras.layers.Conv2DTranspose(6, kernel, strides=strides, activation="relu")
    model = keras.Model(image, layer(image))
    model.layers[-1].bias.assign(np.linspace(-0.5, 0.5, 6))
    traced = for_onnx(model)
    assert isinstance(traced.layers[-1], PixelShuffleConv2DTranspose)  # falls back
    # to Conv2DTranspose's own call where kernel and stride differ
    x = images(2, shape=(5, 4, 3), seed=1)
    np.testing.assert_allclose(traced(x), model(x), atol=1e-6)
    # the trace only: the model itself keeps its layer
    assert type(model.layers[-1]) is keras.layers.Conv2DTranspose
    if replaced:
        graph = tf.function(traced).get_concrete_function(
            tf.TensorSpec((None, 5, 4, 3))).graph
        assert not any(op.type == "Conv2DBackpropInput" for op in graph.get_operations())


def test_unpool_with_overlapping_windows_is_exact_in_onnx(tmp_path):
    """Window 3, stride 2: positions two windows picked are summed, as in TF."""
    image = keras.Input((9, 9, 2))
    pooled, argmax = MaxPoolingWithArgmax2D(3, 2)(image)
    model = keras.Model(image, MaxUnpooling2D(3, 2)(pooled, argmax, output_size=(9, 9)))
    x = images(4, (9, 9, 2), seed=3)
    reference = np.asarray(model(x))
    assert (reference > x + 1e-6).any()  # duplicates did occur, and were summed
    export.export_onnx(model, tmp_path / "model.onnx", opset=16)
    np.testing.assert_array_equal(run_onnx(tmp_path / "model.onnx", "image", x),
                                  reference)
    with pytest.raises(ValueError, match="opset 16 or later.*ScatterND.*got opset 15"):
        export.export_onnx(model, tmp_path / "old.onnx", opset=15)
    assert not (tmp_path / "old.onnx").exists()


@pytest.mark.parametrize("opset", [12, 19, "17", True])
def test_opset_outside_what_tf2onnx_converts_is_refused(opset, tmp_path):
    with pytest.raises(ValueError, match="opset must be an integer from 13 to 18"):
        export.export_onnx(BUILDERS["dense"](), tmp_path / "model.onnx", opset=opset)


def test_onnx_path_must_end_in_onnx(tmp_path):
    with pytest.raises(ValueError, match=r"ending in \.onnx"):
        export.export_onnx(BUILDERS["dense"](), tmp_path / "model.bin")


@pytest.mark.parametrize("policy, onnx_type, tolerance", [
    ("mixed_float16", onnx.TensorProto.FLOAT16, 5e-3),
    ("mixed_bfloat16", onnx.TensorProto.BFLOAT16, 3e-2)])
def test_mixed_precision_model_exports_a_float32_graph(tmp_path, policy, onnx_type,
                                                       tolerance):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = conv("transpose")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.get_layer("encoder").layers[1].compute_dtype == policy.removeprefix("mixed_")
    card = export.export_model(model, tmp_path / "out", verbose=False)
    assert card["exported_from_mixed_precision"] is True
    proto = onnx.load(str(tmp_path / "out" / "model.onnx"))
    assert not [t.name for t in proto.graph.initializer if t.data_type == onnx_type]
    assert not [n.name for n in proto.graph.node
                if n.op_type == "Cast" and any(a.i == onnx_type for a in n.attribute)]
    x = images(3)
    got = run_onnx(tmp_path / "out" / "model.onnx", "image", x)
    np.testing.assert_allclose(got, as_float32(model)(x), atol=1e-5)
    np.testing.assert_allclose(got, model(x), atol=tolerance)  # 16-bit rounding only


def test_as_float32_is_the_model_itself_when_already_float32():
    model = BUILDERS["dense"]()
    assert as_float32(model) is model


# --- atomic writes, parity failures -----------------------------------------

def test_failed_parity_check_writes_nothing_and_keeps_the_old_export(
        tmp_path, monkeypatch):
    target = tmp_path / "out"
    export.export_model(BUILDERS["dense"](), target, verbose=False)
    before = sorted(os.listdir(target))
    card = (target / "model_card.json").read_text()
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)  # nothing can pass
    with pytest.raises(export.ExportParityError, match=r"differs from the Keras model"):
        export.export_model(BUILDERS["transpose"](), target, verbose=False)
    assert sorted(os.listdir(target)) == before
    assert (target / "model_card.json").read_text() == card
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary folders left


def test_interrupted_export_keeps_the_old_export(tmp_path, monkeypatch):
    target = tmp_path / "out"
    export.export_model(BUILDERS["dense"](), target, saved_model=False, verbose=False)
    old_bytes = (target / "model.onnx").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_add_metadata", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export_model(BUILDERS["upsample"](), target, saved_model=False,
                            verbose=False)
    assert (target / "model.onnx").read_bytes() == old_bytes
    assert sorted(os.listdir(tmp_path)) == ["out"]
    with pytest.raises(KeyboardInterrupt):  # export_onnx alone, into the folder
        export.export_onnx(BUILDERS["upsample"](), target / "model.onnx")
    assert (target / "model.onnx").read_bytes() == old_bytes
    assert not [n for n in os.listdir(target) if n.startswith(".")]


def test_reexporting_an_unpool_model_removes_the_stale_decoder(tmp_path):
    export.export_onnx(BUILDERS["dense"](), tmp_path / "model.onnx")
    assert (tmp_path / "decoder.onnx").exists()
    export.export_onnx(BUILDERS["unpool"](), tmp_path / "model.onnx")
    assert not (tmp_path / "decoder.onnx").exists()
    assert metadata(tmp_path / "encoder.onnx")["keras_ae.decoder"] == "unpool"


def test_export_model_writes_the_model_card(tmp_path):
    model = BUILDERS["unpool"]()
    card = export.export_model(model, tmp_path / "out", card={"note": "hello"},
                               verbose=False)
    on_disk = json.loads((tmp_path / "out" / "model_card.json").read_text())
    assert on_disk == json.loads(json.dumps(card))
    assert on_disk["note"] == "hello"
    assert on_disk["model"]["decoder"] == "unpool"
    assert on_disk["model"]["parameters"] == model.count_params()
    assert on_disk["files"] == {"saved_model": "saved_model", "onnx": "model.onnx",
                                "encoder_onnx": "encoder.onnx"}
    assert set(on_disk["parity"]["onnx"]) == {"model", "encoder"}
    assert on_disk["parity"]["tolerance"] == 1e-5
    assert on_disk["parity"]["batches"] == [1, 7]
    assert on_disk["onnx_opset"] == 17


def test_parity_images_include_flat_images_for_pooling_ties():
    x = export.parity_images((4, 4, 1))
    assert x.shape == (7, 4, 4, 1) and x.dtype == np.float32
    assert (x[0] == 0).all() and (x[1] == 0.5).all()
    assert 0 <= x.min() and x.max() <= 1


# --- keras-ae export ----------------------------------------------------------

@pytest.fixture
def run_folder(tmp_path):
    folder = tmp_path / "runs" / "small"
    folder.mkdir(parents=True)
    model = BUILDERS["upsample"]()
    model.save(folder / "model.keras")
    metrics = {"test": {"mse": 0.0123, "psnr": 19.1, "ssim": 0.5, "images": 10},
               "settings": {"model": "conv", "epochs": 1}, "epochs_run": 1,
               "train_images_per_second": 100.0, "devices": "CPU"}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_cli_export_writes_everything_with_the_run_in_the_card(run_folder, tmp_path,
                                                               capsys):
    out = tmp_path / "exported" / "small"
    assert cli.main(["export", str(run_folder / "model.keras"),
                     "--output", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["decoder.onnx", "encoder.onnx", "keras-ae.json",
                                       "model.onnx", "model_card.json", "saved_model"]
    card = json.loads((out / "model_card.json").read_text())
    assert card["test"]["mse"] == 0.0123
    assert card["training"]["settings"] == {"model": "conv", "epochs": 1}
    assert card["source"].endswith("model.keras")
    printed = capsys.readouterr().out
    assert "largest difference from Keras" in printed and "wrote" in printed


def test_cli_export_onnx_only(run_folder, tmp_path):
    out = tmp_path / "onnx_only"
    assert cli.main(["export", str(run_folder / "model.keras"), "--output", str(out),
                     "--formats", "onnx", "--opset", "18"]) == 0
    assert "saved_model" not in os.listdir(out)
    assert json.loads((out / "model_card.json").read_text())["onnx_opset"] == 18


@pytest.mark.parametrize("args, message", [
    (["missing.keras"], "no model file at missing.keras"),
    (["{run}/metrics.json"], "is not a Keras model file that loads"),
    (["{run}/model.keras", "--opset", "9"], "opset must be an integer from 13 to 18"),
])
def test_cli_export_bad_input_is_one_line(args, message, run_folder, tmp_path,
                                          capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{run}", str(run_folder)) for a in args]
    assert cli.main(["export", *args, "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_average_unpool_at_an_odd_size_exports_with_parity(tmp_path):
    # 29x31: "same" pooling pads the last window, which unpooling must crop
    model = keras_ae.build_conv_autoencoder((29, 31, 3), decoder="unpool",
                                            pooling="average", **SMALL)
    figures = export.export_onnx(model, tmp_path / "model.onnx")
    assert set(figures) == {"model", "encoder", "decoder"}
    assert max(figures.values()) <= export.PARITY_TOLERANCE
    x = images(3, (29, 31, 3))
    np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", "image", x),
                               model(x), atol=1e-5)
    assert metadata(tmp_path / "model.onnx")["keras_ae.pooling"] == "average"
