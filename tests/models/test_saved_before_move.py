"""Files written before the subpackages keep working: a .keras file of every
decoder and pooling saved at 8f4bd4b (tests/fixtures/keras_8f4bd4b) loads with
today's keras_ae and computes what it computed then."""

import pathlib

import numpy as np
import pytest

from keras_ae.models import load_keras_model

FIXTURES = pathlib.Path(__file__).parents[1] / "fixtures" / "keras_8f4bd4b"
SAVED = sorted(p.stem for p in FIXTURES.glob("*.keras"))


def test_every_decoder_and_pooling_is_kept():
    assert SAVED == ["conv_transpose_average", "conv_transpose_max", "conv_transpose_sqrt",
                     "conv_unpool_average", "conv_unpool_max", "conv_upsample_average",
                     "conv_upsample_max", "dense"]


@pytest.mark.parametrize("name", SAVED)
def test_a_model_saved_before_the_move_loads_and_computes_the_same(name):
    model = load_keras_model(FIXTURES / f"{name}.keras")
    images = np.load(FIXTURES / "input.npy")
    np.testing.assert_allclose(model.predict(images, verbose=0),
                               np.load(FIXTURES / f"{name}.npy"), atol=1e-6)


@pytest.mark.parametrize("old, new, name", [
    ("keras_ae.layers", "keras_ae.models.layers", "MaxUnpooling2D"),
    ("keras_ae.serving", "keras_ae.runtime.onnx_autoencoder", "OnnxAutoencoder"),
    ("keras_ae.downstream", "keras_ae.codes", "linear_probe"),
])
def test_an_old_module_path_gives_the_new_module_with_a_warning(old, new, name):
    import importlib
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new) and hasattr(module, name)
