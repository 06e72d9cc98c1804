"""Patch-level scores: the coreset, the nearest-patch scorer, the features."""

import numpy as np
import pytest

import keras_ae
from keras_ae.anomaly.patches import (PatchScorer, feature_extractor, greedy_coreset,
                                      patch_features)
from keras_ae.errors import InputError


def test_the_coreset_covers_every_cluster_before_a_second_point_of_one():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    points = np.concatenate([c + rng.normal(0, 0.1, (50, 2)) for c in centres])
    chosen = greedy_coreset(points, 4, seed=3)
    assert sorted({int(i) // 50 for i in chosen}) == [0, 1, 2, 3]


def test_the_farthest_patch_is_the_one_that_scores():
    rng = np.random.default_rng(0)
    normal = rng.normal(0, 1, (20, 4, 4, 8)).astype(np.float32)
    scorer = PatchScorer.fit(normal, share=1.0)
    assert len(scorer.bank) == 20 * 16
    new = rng.normal(0, 1, (3, 4, 4, 8)).astype(np.float32)
    new[1, 2, 3] += 25.0  # one patch far from every normal one
    maps = scorer.maps(new)
    assert maps.shape == (3, 4, 4)
    assert np.unravel_index(maps[1].argmax(), (4, 4)) == (2, 3)
    assert scorer.scores(new).argmax() == 1
    # a normal patch itself is at distance 0
    np.testing.assert_allclose(scorer.maps(normal[:1]), 0, atol=5e-3)  # float32 sums


def test_a_coreset_bank_keeps_its_share():
    features = np.random.default_rng(1).normal(size=(10, 4, 4, 3)).astype(np.float32)
    assert len(PatchScorer.fit(features, share=0.25).bank) == 40
    assert len(PatchScorer.fit(features, share=0.25, max_bank=7).bank) == 7
    with pytest.raises(InputError, match=r"share must be in \(0, 1\], got 0"):
        PatchScorer.fit(features, share=0)
    with pytest.raises(InputError, match=r"features must be \(N, h, w, 3\)"):
        PatchScorer.fit(features).maps(features[..., :2])


def test_the_encoder_stages_give_one_grid_of_patch_features():
    model = keras_ae.build_conv_autoencoder((32, 32, 1), filters=(8, 4, 2), decoder="unpool")
    extractor = feature_extractor(model)
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [
        (16, 16, 8), (8, 8, 4), (8, 8, 2)]  # stage 1 and 2 pools, stage 3's last conv
    features = patch_features(extractor, np.zeros((3, 32, 32, 1), np.uint8), batch_size=2)
    assert features.shape == (3, 16, 16, 14) and features.dtype == np.float32
    with pytest.raises(InputError, match="the encoder has no layer 'nope'"):
        feature_extractor(model, layers=["nope"])
    # any Keras model of feature maps is used as it is
    assert feature_extractor(extractor) is extractor
