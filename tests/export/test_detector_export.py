"""An exported detector: one ONNX file that onnxruntime runs alone, with the
Keras detector's scores and maps, and its threshold in the metadata."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

import keras_ae
from keras_ae.training import loop as training
from keras_ae.anomaly.detector import AnomalyDetector
from keras_ae.export.detector_export import export_detector
from keras_ae.runtime.onnx_detector import OnnxAnomalyDetector

from conftest import smooth_images

# slow: detectors traced to ONNX and compared with Keras (`pytest -m "not slow"` leaves them out)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def normal():
    return smooth_images(240, size=16, seed=2)


def trained(decoder, normal, intensity="sqrt"):
    model = training.compile_autoencoder(keras_ae.build_conv_autoencoder(
        (16, 16, 1), filters=(8, 4), decoder=decoder, intensity=intensity))
    model.fit(normal[:200], normal[:200], batch_size=32, epochs=3, verbose=0)
    return model


@pytest.mark.parametrize("decoder, score, map_kind", [
    ("transpose", "knn", "squared_error"),
    ("unpool", "knn+mahalanobis+mse", "squared_error"),
    ("upsample", "ssim", "ssim"),
    ("unpool", "patch_gaussian", "auto"),
    ("transpose", "patch_knn+mse", "patch"),
])
def test_the_onnx_detector_scores_and_maps_as_keras_does(normal, tmp_path, decoder,
                                                         score, map_kind):
    detector = AnomalyDetector.fit(trained(decoder, normal), normal[:200], normal[200:],
                                   score=score, map_kind=map_kind)
    path = tmp_path / "detector.onnx"
    differences = export_detector(detector, path)
    assert max(differences.values()) <= 1e-5
    served = OnnxAnomalyDetector(path)
    spinning = "session.intra_op.allow_spinning"
    assert served._model_session.get_session_options().get_session_config_entry(
        spinning) == "0"  # a detector's default; an autoencoder's is "1"
    assert OnnxAnomalyDetector(path, allow_spinning=True)._model_session \
        .get_session_options().get_session_config_entry(spinning) == "1"
    images = np.concatenate([normal[200:], 1 - normal[200:210]])
    scores, maps = served.scores_and_maps(images)
    expected_scores, expected_maps = detector.scores_and_maps(images)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(maps, expected_maps, atol=1e-5)
    assert served.threshold == detector.threshold and served.score_name == score
    np.testing.assert_array_equal(served.is_anomaly(images),
                                  expected_scores > detector.threshold)


def test_metadata_carries_the_rule_and_the_model_facts(normal, tmp_path):
    detector = AnomalyDetector.fit(trained("transpose", normal), normal[:200],
                                   normal[200:], percentile=99)
    export_detector(detector, tmp_path / "detector.onnx",
                    preprocessing={"image_size": [16, 16], "resize": "crop",
                                   "color_mode": "grayscale"})
    proto = onnx.load(tmp_path / "detector.onnx")
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["keras_ae.role"] == "anomaly_detector"
    assert meta["keras_ae.threshold"] == detector.threshold
    assert meta["keras_ae.rule"] == "percentile 99 of 40 held-out normal images"
    assert meta["keras_ae.input_shape"] == [16, 16, 1]
    assert meta["keras_ae.preprocessing"]["resize"] == "crop"
    assert sorted(o.name for o in proto.graph.output) == ["map", "reconstruction", "score"]
    card = json.loads((tmp_path / "detector_card.json").read_text())
    assert card["detector"]["threshold"] == detector.threshold
    assert card["detector"]["rule"] == detector.rule
    assert card["model"]["input_shape"] == [16, 16, 1] and card["max_abs_diff"]["score"] <= 1e-5


def test_serving_a_detector_imports_no_tensorflow(normal, tmp_path):
    detector = AnomalyDetector.fit(trained("transpose", normal), normal[:200],
                                   normal[200:])
    export_detector(detector, tmp_path / "detector.onnx")
    images = normal[200:205]
    np.save(tmp_path / "images.npy", images)
    code = (
        "import sys, numpy as np\n"
        "from keras_ae.runtime.onnx_detector import OnnxAnomalyDetector\n"
        f"d = OnnxAnomalyDetector({str(tmp_path)!r})\n"
        f"s = d.scores(np.load({str(tmp_path / 'images.npy')!r}))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "print(' '.join(repr(float(v)) for v in s))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    served = np.array([float(v) for v in done.stdout.split()])
    np.testing.assert_allclose(served, detector.scores(images), atol=1e-5, rtol=1e-5)


def test_an_autoencoder_file_is_not_a_detector(tmp_path):
    from keras_ae.export.exporter import export_onnx

    export_onnx(keras_ae.build_dense_autoencoder((16, 16, 1), code_size=4),
                tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="is not a keras_ae anomaly detector: its "
                                         "metadata says role 'autoencoder'"):
        OnnxAnomalyDetector(tmp_path / "model.onnx")
    with pytest.raises(FileNotFoundError, match="No keras_ae anomaly detector at"):
        OnnxAnomalyDetector(tmp_path)  # the folder has no detector.onnx


def test_export_refuses_a_detector_over_an_onnx_model_and_a_bad_path(normal, tmp_path):
    from keras_ae.export.exporter import export_onnx
    from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

    model = trained("transpose", normal)
    export_onnx(model, tmp_path / "model.onnx")
    detector = AnomalyDetector.fit(OnnxAutoencoder(tmp_path), normal[:200], normal[200:])
    with pytest.raises(ValueError, match="needs a detector over a Keras model"):
        export_detector(detector, tmp_path / "detector.onnx")
    keras_detector = AnomalyDetector.fit(model, normal[:200], normal[200:])
    with pytest.raises(ValueError, match="expected a path ending in .onnx"):
        export_detector(keras_detector, tmp_path / "detector.bin")
    # the detector over the ONNX model scores as the Keras one does
    np.testing.assert_allclose(detector.scores(normal[200:]),
                               keras_detector.scores(normal[200:]), atol=1e-4)


def test_a_pretrained_network_s_patches_export_with_the_detector(tmp_path):
    """keras.applications with random weights (nothing downloads here), as a
    user's network with its weights on disk would be."""
    import keras

    keras.utils.set_random_seed(0)
    network = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                             include_top=False, weights=None)
    image = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(2.0, offset=-1.0)(image)  # MobileNet's [-1, 1]
    cut = keras.Model(network.input, network.get_layer("block_3_expand_relu").output)
    extractor = keras.Model(image, cut(scaled))
    normal = np.repeat(smooth_images(120, size=32, seed=3), 3, axis=-1)
    model = training.compile_autoencoder(keras_ae.build_conv_autoencoder((32, 32, 3),
                                                                         filters=(8, 4)))
    detector = AnomalyDetector.fit(model, normal[:100], normal[100:], score="patch_gaussian",
                                   features=extractor)
    assert detector.describe()["grid"] == [8, 8]
    path = tmp_path / "detector.onnx"
    assert max(export_detector(detector, path).values()) <= 1e-5
    images = np.concatenate([normal[100:], 1 - normal[100:105]])
    np.testing.assert_allclose(OnnxAnomalyDetector(path).scores(images),
                               detector.scores(images), atol=1e-5, rtol=1e-5)
