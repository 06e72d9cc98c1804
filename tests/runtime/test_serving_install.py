"""The serving install: `pip install keras_ae` into a fresh virtual
environment (offline, from this checkout's wheel, with NumPy, Pillow and
onnxruntime only) serves exported models without TensorFlow on disk."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import keras_ae
from keras_ae.anomaly import AnomalyDetector
from keras_ae.export import export_detector
from keras_ae.runtime import OnnxAnomalyDetector
from keras_ae.training import compile_autoencoder

from conftest import load_tool, smooth_images

pytestmark = pytest.mark.slow  # a venv made and a wheel built

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "exported" / "fashion_mnist_conv_transpose" / "model.onnx"
SAMPLE = ROOT / "exported" / "samples" / "bag.png"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    return load_tool("benchmark_install_size").make_serving_venv(
        tmp_path_factory.mktemp("serving") / "venv")


def _run(venv, *command):
    return subprocess.run([str(Path(venv).parent / command[0]), *command[1:]],
                          capture_output=True, text=True, timeout=300)


def test_the_serving_install_has_no_tensorflow_on_disk(venv):
    site = next(Path(venv).parents[1].glob("lib/python*/site-packages"))
    installed = {p.name.lower() for p in site.iterdir()}
    assert {"numpy", "pil", "onnxruntime", "keras_ae"} <= installed
    assert not installed & {"tensorflow", "keras", "tf2onnx", "onnx", "sklearn",
                            "matplotlib", "keras_tuner", "scipy"}


def test_predict_serves_a_shipped_model(venv, tmp_path):
    result = _run(venv, "keras-ae", "predict", str(SHIPPED),
                  str(SAMPLE), "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "bag.png: reconstruction error (MSE) 0.0" in result.stdout
    assert (tmp_path / "bag_reconstruction.png").stat().st_size > 100


@pytest.mark.parametrize("score", ["knn", "patch_gaussian+knn"])
def test_an_exported_detector_scores_as_in_the_full_install(venv, tmp_path, score):
    normal = smooth_images(120, size=16, seed=2)
    model = compile_autoencoder(keras_ae.build_conv_autoencoder(
        (16, 16, 1), filters=(4, 2), convs_per_stage=1))
    model.fit(normal[:100], normal[:100], batch_size=32, epochs=2, verbose=0)
    detector = AnomalyDetector.fit(model, normal[:100], normal[100:], score=score)
    export_detector(detector, tmp_path / "detector.onnx")
    images = np.concatenate([normal[100:110], 1 - normal[100:110]])
    np.save(tmp_path / "images.npy", images)
    script = ("import json, sys, numpy as np\n"
              "from keras_ae.runtime import OnnxAnomalyDetector\n"
              f"d = OnnxAnomalyDetector({str(tmp_path / 'detector.onnx')!r})\n"
              f"x = np.load({str(tmp_path / 'images.npy')!r})\n"
              "print(json.dumps({'scores': d.scores(x).tolist(), "
              "'tensorflow': 'tensorflow' in sys.modules}))\n")
    result = _run(venv, "python", "-c", script)
    assert result.returncode == 0, result.stderr
    served = json.loads(result.stdout)
    assert not served["tensorflow"]
    expected = OnnxAnomalyDetector(tmp_path / "detector.onnx").scores(images)
    np.testing.assert_allclose(served["scores"], expected, rtol=1e-6)
    # Scores are in held-out standard deviations: 1e-5 of the spread.
    np.testing.assert_allclose(served["scores"], detector.scores(images), atol=1e-5)
    result = _run(venv, "keras-ae", "predict", "--anomaly", str(tmp_path / "detector.onnx"),
                  str(SAMPLE), "--resize", "--output", str(tmp_path / "maps"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "maps" / "bag_anomaly_map.png").exists()


def test_the_full_install_is_named_in_one_line(venv, tmp_path):
    result = _run(venv, "python", "-c", "import keras_ae; keras_ae.build_conv_autoencoder()")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: keras_ae.build_conv_autoencoder needs keras, which the "
        "serving install (pip install keras_ae) leaves out: pip install 'keras_ae[full]'")
    result = _run(venv, "keras-ae", "train", "--output", str(tmp_path / "run"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("keras-ae train: error: keras-ae train needs ")
    assert result.stderr.rstrip().endswith("pip install 'keras_ae[full]'")
