"""keras_ae.anomaly.detector and keras_ae.anomaly.scores: each score, the maps, the
threshold rules and bad inputs, with hand-worked values where they exist."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ae
from keras_ae.anomaly import detector as anomaly
from keras_ae.anomaly import options as anomaly_options
from keras_ae.anomaly import scores as anomaly_scores
from keras_ae.training import loop as training
from keras_ae.anomaly.detector import AnomalyDetector
from keras_ae.anomaly.scores import AnomalyScoring, filter_matrix

from conftest import smooth_images


def scoring(score, **fitted):
    return AnomalyScoring(score, "squared_error", 0.0, 3, neighbors=2, **fitted)


# --- the arithmetic, by hand --------------------------------------------------------------

def test_filter_matrix_valid_and_reflect_by_hand():
    line = np.array([0.25, 0.5, 0.25])
    np.testing.assert_allclose(filter_matrix(4, line, "VALID"),
                               [[0.25, 0.5, 0.25, 0], [0, 0.25, 0.5, 0.25]])
    # REFLECT pads 1 0 1 2 3 2 (tf.pad's mode): the first row reads 1, 0, 1
    np.testing.assert_allclose(filter_matrix(4, line, "REFLECT"),
                               [[0.5, 0.5, 0, 0], [0.25, 0.5, 0.25, 0],
                                [0, 0.25, 0.5, 0.25], [0, 0, 0.5, 0.5]])


def test_reflect_filter_matrix_matches_tf_pad_reflect_then_valid():
    line = anomaly_scores.gaussian_line(5, 1.5)
    values = np.random.default_rng(0).random(9)
    padded = tf.pad(values[None], [[0, 0], [2, 2]], mode="REFLECT").numpy()[0]
    expected = np.convolve(padded, line[::-1], mode="valid")
    np.testing.assert_allclose(filter_matrix(9, line, "REFLECT") @ values, expected)


def test_ssim_part_is_one_minus_tf_image_ssim():
    rng = np.random.default_rng(0)
    images = rng.random((3, 12, 12, 1)).astype("float32")
    reconstructions = np.clip(images + rng.normal(0, 0.1, images.shape), 0, 1)
    part = scoring("ssim").parts_of(images, reconstructions, np.zeros((3, 0)))["ssim"]
    expected = 1 - tf.image.ssim(images, reconstructions.astype("float32"), 1.0,
                                 filter_size=3).numpy()
    np.testing.assert_allclose(part, expected, atol=1e-6)


def test_mse_part_is_the_mean_squared_error():
    images = np.zeros((2, 2, 2, 1), "float32")
    reconstructions = images.copy()
    reconstructions[1, 0, 0] = 1.0  # one pixel of four off by 1
    part = scoring("mse").parts_of(images, reconstructions, np.zeros((2, 0)))["mse"]
    np.testing.assert_allclose(part, [0.0, 0.25])


def test_knn_part_is_the_mean_distance_to_the_nearest_codes():
    reference = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    codes = np.array([[0.0, 0.0], [3.0, 4.0], [30.0, 40.0]])
    part = scoring("knn", reference_codes=reference).parts_of(
        np.zeros((3, 2, 2, 1)), np.zeros((3, 2, 2, 1)), codes)["knn"]
    # nearest two: (0 + 5) / 2; (0 + 5) / 2; (40 + 45) / 2
    np.testing.assert_allclose(part, [2.5, 2.5, 42.5])


def test_mahalanobis_part_by_hand():
    fitted = {"code_mean": [1.0, 1.0], "code_precision": [[1.0, 0.0], [0.0, 4.0]]}
    part = scoring("mahalanobis", **fitted).parts_of(
        np.zeros((2, 2, 2, 1)), np.zeros((2, 2, 2, 1)),
        np.array([[1.0, 1.0], [4.0, 3.0]]))["mahalanobis"]
    np.testing.assert_allclose(part, [0.0, 5.0])  # sqrt(3^2 + 4 * 2^2)


def test_combined_score_averages_the_normalised_parts():
    combined = scoring("mse+knn", part_mean=[1.0, 10.0], part_std=[0.5, 2.0])
    score = combined.combine({"mse": np.array([2.0]), "knn": np.array([16.0])})
    np.testing.assert_allclose(score, [(2.0 + 3.0) / 2])


def test_squared_error_map_unsmoothed_and_smoothed():
    images = np.zeros((1, 9, 9, 2), "float32")
    reconstructions = images.copy()
    reconstructions[0, 4, 4] = [1.0, 0.0]  # one pixel, one channel of two
    sharp = AnomalyScoring("mse", "squared_error", 0.0, 3).maps(images, reconstructions)
    assert sharp.shape == (1, 9, 9) and float(sharp[0, 4, 4]) == 0.5
    assert float(tf.reduce_sum(sharp)) == 0.5
    blurred = np.asarray(AnomalyScoring("mse", "squared_error", 1.0, 3).maps(
        images, reconstructions))[0]
    assert np.unravel_index(blurred.argmax(), blurred.shape) == (4, 4)
    assert 0 < blurred[4, 4] < 0.5 and blurred[4, 5] > 0 and blurred[0, 0] < 1e-4
    assert blurred.sum() == pytest.approx(0.5, rel=1e-6)  # nothing reaches the borders


def test_ssim_map_is_zero_where_images_match_and_keeps_the_size():
    rng = np.random.default_rng(1)
    images = rng.random((1, 10, 12, 1)).astype("float32")
    where = np.asarray(AnomalyScoring("ssim", "ssim", 0.0, 3).maps(images, images))
    assert where.shape == (1, 10, 12)
    np.testing.assert_allclose(where, 0.0, atol=1e-6)


def test_bad_score_and_map_names_list_the_choices():
    with pytest.raises(ValueError, match="score must be one of 'mse', 'ssim', 'knn'"):
        anomaly_options.parse_score("knn+psnr")
    with pytest.raises(ValueError, match="score must be one of"):
        anomaly_options.parse_score("knn+knn")
    with pytest.raises(ValueError, match="map_kind must be one of 'squared_error', 'ssim'"):
        anomaly_options.check_map_kind("heat")


def test_auto_picks_the_code_for_small_images_and_patches_from_64_pixels():
    assert anomaly_options.default_score((63, 200, 3)) == "knn"
    assert anomaly_options.default_score((64, 64, 1)) == "patch_gaussian+knn"
    assert anomaly_options.default_map(("knn",)) == "squared_error"
    assert anomaly_options.default_map(("mse", "patch_knn")) == "patch"


# --- the detector -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    """A small conv autoencoder trained on smooth images; anomalies: the
    same images with a square pasted in, black on light, white on dark."""
    normal = smooth_images(400, size=16, seed=0)
    model = training.compile_autoencoder(
        keras_ae.build_conv_autoencoder((16, 16, 1), filters=(8, 4), intensity="sqrt"))
    model.fit(normal[:300], normal[:300], batch_size=32, epochs=15, verbose=0)
    test_normal = smooth_images(60, size=16, seed=1)
    broken = test_normal.copy()
    square = broken[:, 5:11, 5:11]
    broken[:, 5:11, 5:11] = np.where(square > 0.5, 0.0, 1.0)  # against the grain
    return model, normal, test_normal, broken


@pytest.mark.parametrize("score", ["mse", "ssim", "knn", "mahalanobis",
                                   "knn+mahalanobis", "mse+knn", "patch_gaussian",
                                   "patch_knn"])
def test_every_score_finds_pasted_squares(trained, score):
    model, normal, test_normal, broken = trained
    detector = AnomalyDetector.fit(model, normal[:300], normal[300:], score=score)
    images = np.concatenate([test_normal, broken])
    flags = np.r_[np.zeros(60, bool), np.ones(60, bool)]
    result = detector.evaluate(images, flags)
    assert result["roc_auc"] > 0.9, result
    assert result["score"] == score and result["images"] == 120


def test_scores_and_maps_agree_with_scores_and_maps_alone(trained):
    model, normal, test_normal, broken = trained
    detector = AnomalyDetector.fit(model, normal[:300], normal[300:],
                                   score="knn+mse", smoothing=1.0)
    scores, maps = detector.scores_and_maps(broken[:7], batch_size=3)
    np.testing.assert_allclose(scores, detector.scores(broken[:7]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps, detector.maps(broken[:7]), atol=1e-7)


def test_maps_point_at_the_defect(trained):
    model, normal, test_normal, broken = trained
    detector = AnomalyDetector.fit(model, normal[:300], normal[300:])
    masks = np.zeros(broken.shape[:3], bool)
    masks[:, 5:11, 5:11] = True
    auc = detector.localisation(broken, masks)
    maps = detector.maps(broken)
    assert auc > 0.9  # 0.5 for maps that miss it
    assert maps[masks].mean() > 3 * maps[~masks].mean()


def test_std_rule_puts_the_threshold_in_held_out_standard_deviations(trained):
    model, normal, *_ = trained
    detector = AnomalyDetector.fit(model, normal[:300], normal[300:], score="knn", std=2.5)
    held_out = detector.scores(normal[300:])
    # one score, normalised on the held-out images: mean 0, std 1
    assert held_out.mean() == pytest.approx(0.0, abs=1e-5)
    assert held_out.std() == pytest.approx(1.0, abs=1e-5)
    assert detector.threshold == pytest.approx(2.5, abs=1e-6)
    assert "mean + 2.5 std of 100 held-out normal images" == detector.rule


def test_percentile_rule_flags_that_share_of_held_out_images(trained):
    model, normal, *_ = trained
    detector = AnomalyDetector.fit(model, normal[:300], normal[300:], percentile=90)
    flagged = detector.is_anomaly(normal[300:])
    assert flagged.sum() == 10  # 100 held-out images, 10% above the 90th percentile
    assert detector.rule == "percentile 90 of 100 held-out normal images"


def test_held_out_images_are_drawn_when_not_given(trained):
    model, normal, *_ = trained
    detector = AnomalyDetector.fit(model, normal[:200], held_out_share=0.25)
    assert detector.rule.endswith("of 50 held-out normal images")
    assert detector.describe()["reference_codes"] == 150


def test_describe_and_repr(trained):
    model, normal, *_ = trained
    detector = AnomalyDetector.fit(model, normal[:300], normal[300:],
                                   score="knn+mahalanobis", map_kind="ssim")
    facts = detector.describe()
    assert facts["score"] == "knn+mahalanobis" and facts["map_kind"] == "ssim"
    assert facts["threshold"] == detector.threshold and len(facts["part_std"]) == 2
    assert repr(detector).startswith("AnomalyDetector(score='knn+mahalanobis'")


@pytest.mark.parametrize("arguments, message", [
    ({"normal_images": np.zeros((0, 16, 16, 1))}, "no normal images"),
    ({"normal_images": np.zeros((5, 16, 16, 1)), "held_out_images": np.zeros((1, 16, 16, 1))},
     "need at least 2 held-out normal images"),
    ({"normal_images": np.zeros((5, 16, 16, 1)), "held_out_images": np.zeros((3, 8, 8, 1))},
     "held_out_images must be of the normal images' shape"),
    ({"normal_images": np.zeros((30, 8, 8, 1))}, "takes images of shape"),
    ({"normal_images": np.zeros((30, 16, 16, 1)), "percentile": 100}, "percentile must be in"),
    ({"normal_images": np.zeros((30, 16, 16, 1)), "std": -1}, "std must be a number >= 0"),
    ({"normal_images": np.zeros((30, 16, 16, 1)), "neighbors": 100}, "neighbors must be"),
    ({"normal_images": np.zeros((30, 16, 16, 1)), "score": "psnr"}, "score must be one of"),
    ({"normal_images": np.zeros((30, 16, 16, 1)), "smoothing": -2}, "smoothing must be"),
    ({"normal_images": np.zeros((30, 16, 16, 1)), "map_kind": "patch"},
     "map_kind 'patch' shows a patch score; score 'knn' has none"),
    ({"normal_images": np.zeros((30, 16, 16, 1)), "score": "patch_knn", "features": 3},
     "features must be None, a list of encoder layer names or a Keras model"),
    ({"normal_images": np.zeros((30, 16, 16, 1)), "score": "patch_knn",
      "features": ["encoder_stage9"]}, "the encoder has no layer 'encoder_stage9'"),
])
def test_fit_refuses_bad_inputs_in_one_line(trained, arguments, message):
    model = trained[0]
    with pytest.raises(ValueError, match=message) as caught:
        AnomalyDetector.fit(model, **arguments)
    assert "\n" not in str(caught.value)


def test_scoring_refuses_empty_and_misshapen_images(trained):
    model, normal, *_ = trained
    detector = AnomalyDetector.fit(model, normal[:300], normal[300:], score="mse")
    with pytest.raises(ValueError, match="no images to score"):
        detector.scores(np.zeros((0, 16, 16, 1)))
    with pytest.raises(ValueError, match="takes images of shape"):
        detector.scores(np.zeros((2, 17, 16, 1)))


def test_pixel_roc_auc_by_hand_and_its_bad_masks():
    maps = np.array([[[0.1, 0.9], [0.2, 0.3]]])
    assert anomaly.pixel_roc_auc(maps, [[[0, 1], [0, 0]]]) == 1.0
    assert anomaly.pixel_roc_auc(maps, [[[1, 0], [0, 0]]]) == 0.0
    with pytest.raises(ValueError, match=r"masks must match the images: expected shape "
                                         r"\(1, 2, 2\), got \(1, 3, 2\)"):
        anomaly.pixel_roc_auc(maps, np.zeros((1, 3, 2)))
    with pytest.raises(ValueError, match="masks must mark some pixels but not all"):
        anomaly.pixel_roc_auc(maps, np.zeros((1, 2, 2)))


def test_evaluate_scores_needs_both_kinds():
    with pytest.raises(ValueError, match="mark some images but not all"):
        anomaly.evaluate_scores(np.arange(3.0), [True, True, True], 1.0)


def test_patch_maps_point_at_a_small_defect_in_the_score_s_units():
    # patches need no training to see a dark 4x4 spot on smooth 32x32
    # images: the image itself is one of the default features
    keras.utils.set_random_seed(0)
    model = keras_ae.build_conv_autoencoder((32, 32, 1), filters=(8, 4), intensity="sqrt")
    normal = smooth_images(240, size=32, seed=0)
    detector = AnomalyDetector.fit(model, normal[:200], normal[200:], smoothing=0,
                                   score="patch_gaussian")
    assert detector.scoring.map_kind == "patch"  # "auto" for a patch score
    broken = smooth_images(20, size=32, seed=1)
    masks = np.zeros(broken.shape[:3], bool)
    near = masks.copy()  # within 2 pixels: patches are 4 pixels a side here
    for index, (row, column) in enumerate(np.random.default_rng(2).integers(4, 24, (20, 2))):
        broken[index, row:row + 4, column:column + 4] = 0.0
        masks[index, row:row + 4, column:column + 4] = True
        near[index, row - 2:row + 6, column - 2:column + 6] = True
    scores, maps = detector.scores_and_maps(broken)
    peaks = maps.reshape(len(maps), -1).argmax(axis=1)
    # (a spot on an already dark stretch barely shows; at random, 6% would)
    assert near.reshape(len(near), -1)[np.arange(len(near)), peaks].mean() >= 0.8
    assert detector.localisation(broken, masks) > 0.9
    # unsmoothed, the map is in the score's units: its peak is the largest
    # patch score (the image's score) blended with its neighbours by the
    # bilinear resizing, so at most the score and close to it
    peaks = maps.max(axis=(1, 2))
    assert np.all(peaks <= scores + 1e-5) and np.all(peaks > 0.8 * scores)


def test_any_keras_feature_extractor_can_make_the_patches(trained):
    model, normal, test_normal, broken = trained
    image = keras.Input((16, 16, 1))
    features = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(image)
    keras.utils.set_random_seed(0)
    extractor = keras.Model(image, keras.layers.AveragePooling2D(2)(features))
    detector = AnomalyDetector.fit(model, normal[:300], normal[300:], score="patch_knn",
                                   features=extractor)
    assert detector.describe()["grid"] == [8, 8]
    flags = np.r_[np.zeros(60, bool), np.ones(60, bool)]
    assert detector.evaluate(np.concatenate([test_normal, broken]), flags)["roc_auc"] > 0.9
    with pytest.raises(ValueError, match=r"the feature extractor takes images of shape "
                                         r"\(16, 16, 3\), the normal images are \(16, 16, 1\)"):
        rgb = keras.Input((16, 16, 3))
        AnomalyDetector.fit(model, normal[:300], score="patch_knn",
                            features=keras.Model(rgb, keras.layers.Conv2D(2, 3)(rgb)))
