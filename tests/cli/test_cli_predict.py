"""`keras-ae predict`: PNG in, reconstruction PNG out, through onnxruntime only."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import keras_ae
from keras_ae.cli import commands as cli
from keras_ae.export import exporter as export
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    model = keras_ae.build_conv_autoencoder(filters=(8, 4), convs_per_stage=1,
                                            decoder="unpool")
    export.export_onnx(model, folder / "model.onnx")
    return folder / "model.onnx"


@pytest.fixture
def pngs(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), "L").save(path)
        paths.append(path)
    return paths


def test_the_old_out_flag_still_works_for_one_release_and_says_so(exported, pngs,
                                                                 tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["predict", str(exported), str(pngs[0]), "--out", str(out)]) == 0
    assert ("keras-ae predict: --out is deprecated and goes in 0.4; use --output"
            in capsys.readouterr().err)
    assert (out / "a_reconstruction.png").is_file()
    assert cli.main(["predict", str(exported), str(pngs[0]), "--out", str(out),
                     "--output", str(out)]) == 2
    assert "give --output only" in capsys.readouterr().err
    assert cli.main(["predict", str(exported), str(pngs[0])]) == 2
    assert "required: --output" in capsys.readouterr().err


def test_predict_writes_reconstructions_and_prints_errors(exported, pngs, tmp_path,
                                                           capsys):
    out = tmp_path / "out"
    assert cli.main(["predict", str(exported), *map(str, pngs), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "unpool decoder, on CPUExecutionProvider" in printed
    model = OnnxAutoencoder(exported)
    for path in pngs:
        pixels = np.asarray(Image.open(path))
        written = np.asarray(Image.open(out / f"{path.stem}_reconstruction.png"))
        assert written.shape == (28, 28) and written.dtype == np.uint8
        expected = np.round(model.reconstruct(pixels) * 255).astype(np.uint8)
        assert np.abs(written.astype(int) - expected).max() <= 1
        error = float(model.reconstruction_error(pixels))
        assert f"{path}: reconstruction error (MSE) {error:.5f}" in printed


def test_predict_refuses_an_image_of_another_size(exported, tmp_path, capsys):
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((32, 30), np.uint8), "L").save(big)
    out = tmp_path / "out"
    assert cli.main(["predict", str(exported), str(big), "--output", str(out)]) == 2
    error = capsys.readouterr().err
    assert "big.png is 32x30 (height x width); the model takes 28x28" in error
    assert "--resize" in error
    assert not out.exists()  # a refused command leaves no folder behind
    assert cli.main(["predict", str(exported), str(tmp_path / "nope.png"),
                     "--output", str(out)]) == 2
    assert "no image file at" in capsys.readouterr().err


def test_predict_runs_where_tensorflow_cannot_be_imported(exported, pngs, tmp_path):
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from keras_ae.cli.commands import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run(
        [sys.executable, "-c", script, "predict", str(exported), str(pngs[0]),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "reconstruction error (MSE)" in result.stdout
    assert (tmp_path / "out" / "a_reconstruction.png").exists()
