"""Patch-level scores: the features, the coreset, the memory bank and the
Gaussians per position, with hand-worked values."""

import keras
import numpy as np
import pytest

import keras_ae
from keras_ae.anomaly.patches import (PatchFeatures, PatchGaussians, PatchMemoryBank,
                                      code_grid, default_layers, feature_extractor,
                                      greedy_coreset)
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
    bank = PatchMemoryBank.fit(normal, share=1.0)
    assert len(bank.bank) == 20 * 16
    new = rng.normal(0, 1, (3, 4, 4, 8)).astype(np.float32)
    new[1, 2, 3] += 25.0  # one patch far from every normal one
    maps = bank.map(new).numpy()
    assert maps.shape == (3, 4, 4)
    assert np.unravel_index(maps[1].argmax(), (4, 4)) == (2, 3)
    # a normal patch itself is at distance 0
    np.testing.assert_allclose(bank.map(normal[:1]), 0, atol=5e-3)  # float32 sums
    # by hand: a bank of two points, (0, 0) and (3, 4)
    two = PatchMemoryBank([[0.0, 0.0], [3.0, 4.0]])
    found = two.map(np.array([[[[6.0, 8.0], [0.0, 1.0]]]], np.float32)).numpy()
    np.testing.assert_allclose(found, [[[5.0, 1.0]]], rtol=1e-6)


def test_a_coreset_bank_keeps_its_share():
    features = np.random.default_rng(1).normal(size=(10, 4, 4, 3)).astype(np.float32)
    assert len(PatchMemoryBank.fit(features, share=0.25).bank) == 40
    assert len(PatchMemoryBank.fit(features, share=0.25, max_bank=7).bank) == 7
    with pytest.raises(InputError, match=r"share must be in \(0, 1\], got 0"):
        PatchMemoryBank.fit(features, share=0)
    with pytest.raises(InputError, match=r"features must be \(N, h, w, C\)"):
        PatchMemoryBank.fit(features[0])


def test_a_gaussian_per_position_by_hand():
    # position (0, 1): mean (1, 0), variances 1 and 1/4 -> precision diag(1, 4)
    mean = np.zeros((1, 2, 2))
    mean[0, 1] = [1.0, 0.0]
    precision = np.tile(np.eye(2), (1, 2, 1, 1))
    precision[0, 1] = np.diag([1.0, 4.0])
    gaussians = PatchGaussians([0, 1], mean, precision)
    features = np.array([[[[3.0, 4.0], [4.0, 1.0]]]], np.float32)
    # (0, 0): sqrt(9 + 16) = 5; (0, 1): sqrt((4 - 1)^2 * 1 + 1^2 * 4) = sqrt(13)
    np.testing.assert_allclose(gaussians.map(features).numpy(), [[[5.0, np.sqrt(13)]]],
                               rtol=1e-6)


def test_fitted_gaussians_measure_each_position_against_its_own_normal():
    rng = np.random.default_rng(0)
    normal = rng.normal(0, 1, (200, 2, 3, 4)).astype(np.float32)
    normal[:, 0, 0] = normal[:, 0, 0] * 0.1 + 5.0  # one position is tight around 5
    gaussians = PatchGaussians.fit(normal)
    np.testing.assert_allclose(gaussians.mean[0, 0], 5.0, atol=0.05)
    new = np.zeros((1, 2, 3, 4), np.float32)  # the usual value elsewhere, far at (0, 0)
    maps = gaussians.map(new).numpy()[0]
    assert maps[0, 0] > 20 and maps.ravel()[1:].max() < 1.5
    # above max_dimensions, a seeded draw of them
    wide = PatchGaussians.fit(normal, max_dimensions=3, seed=1)
    assert len(wide.dimensions) == 3 and wide.precision.shape == (2, 3, 3, 3)
    assert wide.map(new).shape == (1, 2, 3)
    with pytest.raises(InputError, match="needs at least 2 normal images, got 1"):
        PatchGaussians.fit(normal[:1])


def identity_extractor(shape):
    image = keras.Input(shape)
    return keras.Model(image, keras.layers.Identity()(image))


def test_features_are_pooled_normalised_and_joined_with_their_neighbours():
    images = np.zeros((1, 4, 6, 1), np.float32)
    images[0, :2, :2] = 0.8  # the top-left 2x2 block
    images[0, 2:, 4:] = 0.4  # the bottom-right one
    features = PatchFeatures(identity_extractor((4, 6, 1)), grid=(2, 3), normalise=False,
                             neighbourhood=1).of(images)
    np.testing.assert_allclose(features[0, ..., 0], [[0.8, 0, 0], [0, 0, 0.4]], atol=1e-7)
    # normalised: divided by the mean magnitude, (0.8 + 0.4) / 6 = 0.2
    normalised = PatchFeatures(identity_extractor((4, 6, 1)), grid=(2, 3),
                               neighbourhood=1).of(images)
    np.testing.assert_allclose(normalised[0, ..., 0], [[4, 0, 0], [0, 0, 2]], rtol=1e-5)
    # 3x3 neighbours, row by row, borders mirrored: position (0, 1)'s row
    # above is row 1 again
    joined = PatchFeatures(identity_extractor((4, 6, 1)), grid=(2, 3), normalise=False
                           ).of(images)
    assert joined.shape == (1, 2, 3, 9)
    np.testing.assert_allclose(joined[0, 0, 1], [0, 0, 0.4, 0.8, 0, 0, 0, 0, 0.4], atol=1e-7)
    np.testing.assert_allclose(joined[0, 0, 0], [0, 0, 0, 0, 0.8, 0, 0, 0, 0], atol=1e-7)
    with pytest.raises(InputError, match="neighbourhood must be odd, got 2"):
        PatchFeatures(identity_extractor((4, 6, 1)), neighbourhood=2)


def test_the_encoder_gives_the_image_and_its_first_convolution_on_the_code_grid():
    model = keras_ae.build_conv_autoencoder((32, 32, 1), filters=(8, 4, 2), decoder="unpool",
                                            intensity="sqrt")
    assert default_layers(model) == ["encoder_intensity", "encoder_stage1_conv"]
    assert code_grid(model) == (4, 4)
    extractor = feature_extractor(model)
    assert [tuple(o.shape[1:]) for o in extractor.outputs] == [(32, 32, 1), (32, 32, 8)]
    features = PatchFeatures(extractor, code_grid(model))
    assert features.of(np.zeros((3, 32, 32, 1), np.uint8), batch_size=2).shape == (
        3, 4, 4, 81)
    with pytest.raises(InputError, match="the encoder has no layer 'nope'"):
        feature_extractor(model, layers=["nope"])
    # any Keras model of feature maps is used as it is
    assert feature_extractor(extractor) is extractor
    # a 64x64 code (256x256 images) is halved to the largest grid, 32x32
    assert code_grid(keras_ae.build_conv_autoencoder((256, 128, 1))) == (32, 16)
    with pytest.raises(InputError, match="patch scores need a convolutional autoencoder"):
        code_grid(keras_ae.build_dense_autoencoder((8, 8, 1)))
