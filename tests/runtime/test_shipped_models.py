"""The models shipped in exported/: they load with onnxruntime alone, agree with
their model cards, and reproduce the cards' test MSE on the real
Fashion-MNIST test set where it is installed."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_ae.data.sources import FASHION_MNIST_DIR, read_idx
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

# slow: the real Fashion-MNIST's test images through every shipped model
# (`pytest -m "not slow"` leaves them out)
pytestmark = pytest.mark.slow

EXPORTED = Path(__file__).resolve().parents[2] / "exported"
SHIPPED = {
    "fashion_mnist_conv_transpose": "transpose",
    "fashion_mnist_conv_upsample": "upsample",
    "fashion_mnist_conv_unpool": "unpool",
    "fashion_mnist_dense": "dense",
}
TEST_IMAGES = Path(FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz"


def card(name):
    return json.loads((EXPORTED / name / "model_card.json").read_text())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_and_matches_its_card(name):
    model = OnnxAutoencoder(EXPORTED / name / "model.onnx")
    facts = card(name)["model"]
    assert model.decoder_kind == facts["decoder"] == SHIPPED[name]
    assert model.input_shape == (28, 28, 1)
    assert model.code_size == facts["code_size"]
    assert model.can_decode is (SHIPPED[name] != "unpool")
    samples = np.stack([np.asarray(Image.open(p)) for p in
                        sorted((EXPORTED / "samples").glob("*.png"))])
    reconstructions = model.reconstruct(samples)
    assert reconstructions.shape == samples.shape
    assert 0 <= reconstructions.min() and reconstructions.max() <= 1
    # trained models, not random ones: sample errors are small
    assert model.reconstruction_error(samples).max() < 0.03
    codes = model.encode(samples)
    assert codes.shape == (len(samples), *model.code_shape)
    if model.can_decode:
        # decode() always gives the channel axis; these PNGs have none
        np.testing.assert_allclose(model.decode(codes)[..., 0], reconstructions,
                                   atol=1e-5)


def test_every_shipped_model_is_small_enough_for_git():
    for name in SHIPPED:
        size = sum(p.stat().st_size for p in (EXPORTED / name).iterdir())
        assert size < 2_000_000, (name, size)


@pytest.mark.skipif(not TEST_IMAGES.exists(),
                    reason="the real Fashion-MNIST is not installed "
                           "(apt-get install dataset-fashion-mnist)")
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_reproduces_its_cards_test_mse(name):
    images = read_idx(TEST_IMAGES)
    assert images.shape == (10_000, 28, 28)
    model = OnnxAutoencoder(EXPORTED / name / "model.onnx")
    mse = float(np.mean(model.reconstruction_error(images), dtype=np.float64))
    expected = card(name)["test"]
    assert expected["images"] == 10_000
    assert mse == pytest.approx(expected["mse"], rel=1e-4)


def _int8_twins():
    return [name for name in sorted(SHIPPED)
            if (card(name).get("int8") or {}).get("files")]


@pytest.mark.parametrize("name", _int8_twins())
def test_shipped_int8_twin_loads_and_stays_within_its_bound(name):
    int8 = card(name)["int8"]
    model = OnnxAutoencoder(EXPORTED / name / int8["files"]["model"])
    assert model.precision == "int8" and model.quantization["int8_mse"] == int8["int8_mse"]
    assert int8["mse_increase"] <= int8["max_mse_increase"] == 0.02
    samples = np.stack([np.asarray(Image.open(p)) for p in
                        sorted((EXPORTED / "samples").glob("*.png"))])
    float_model = OnnxAutoencoder(EXPORTED / name / "model.onnx")
    assert np.abs(model.reconstruct(samples)
                  - float_model.reconstruct(samples)).mean() < 0.01
    assert model.encode(samples).shape == (len(samples), *float_model.code_shape)


@pytest.mark.skipif(not TEST_IMAGES.exists(),
                    reason="the real Fashion-MNIST is not installed "
                           "(apt-get install dataset-fashion-mnist)")
@pytest.mark.parametrize("name", _int8_twins())
def test_shipped_int8_twin_reproduces_its_cards_test_mse(name):
    int8 = card(name)["int8"]
    model = OnnxAutoencoder(EXPORTED / name / int8["files"]["model"])
    mse = float(np.mean(model.reconstruction_error(read_idx(TEST_IMAGES)),
                        dtype=np.float64))
    assert (int8["measured_on"], int8["images"]) == ("test images", 10_000)
    assert mse == pytest.approx(int8["int8_mse"], rel=1e-4)
