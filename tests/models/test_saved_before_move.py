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
