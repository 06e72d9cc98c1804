"""The metrics, on vectors and masks worked by hand."""

import numpy as np
import pytest

from keras_ae.anomaly.metrics import aupro, evaluate_scores, f1_max, pixel_metrics
from keras_ae.errors import InputError


def test_f1_max_picks_the_best_threshold():
    # flag >= 0.4: TP 2, FP 1 -> P 2/3, R 1 -> F1 0.8 (>= 0.6: 0.5; >= 0.9: 2/3)
    assert f1_max([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == (0.8, 0.4)
    assert f1_max([0, 1], [0.2, 0.7]) == (1.0, 0.7)


def test_image_metrics_hold_aupr_and_f1_max():
    result = evaluate_scores([0.1, 0.6, 0.4, 0.9], [False, False, True, True], 0.5)
    assert result["roc_auc"] == 0.75  # 3 of the 4 (anomaly, normal) pairs ordered
    # average precision: at recall 1/2 precision 1 (0.9), at recall 1 precision 2/3
    assert result["aupr"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert (result["f1_max"], result["f1_max_threshold"]) == (0.8, 0.4)
    assert (result["precision"], result["recall"]) == (0.5, 0.5)  # 0.6 and 0.9 flagged


def _two_regions():
    """Image 0: region A (2 pixels: 0.8, 0.3) and region B (1 pixel: 0.5);
    image 1: region C (4 pixels, all 0.2). Clean pixels: 0.9 once, 0 else."""
    maps = np.zeros((2, 4, 4))
    masks = np.zeros((2, 4, 4), int)
    maps[0, 0, 0] = 0.9
    maps[0, 0, 1], maps[0, 0, 2], masks[0, 0, 1:3] = 0.8, 0.3, 1
    maps[0, 3, 3], masks[0, 3, 3] = 0.5, 1
    maps[1, 1:3, 1:3], masks[1, 1:3, 1:3] = 0.2, 1
    return maps, masks


def test_aupro_by_hand():
    maps, masks = _two_regions()
    clean = 32 - 7
    # Thresholds from the top: 0.9 -> FPR 1/25, PRO 0; 0.8 -> PRO 1/6 (half of
    # A, one of 3 regions); 0.5 -> 1/6 + 1/3; 0.3 -> 2/3; 0.2 -> 1 (C whole);
    # 0 -> FPR 1. All defect pixels lie above every clean pixel but one, so
    # the curve is 0 up to FPR 1/25, then 1 to FPR 1.
    expected = (0.3 - 1 / clean) / 0.3
    assert aupro(maps, masks) == pytest.approx(expected, abs=1e-12)
    # to FPR 1 the same shape: (1 - 1/25) / 1
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(1 - 1 / clean, abs=1e-12)


def test_aupro_weighs_a_small_region_like_a_large_one():
    maps, masks = _two_regions()
    maps[1, 1:3, 1:3] = 0.0  # region C (4 pixels) now ties with the clean ones
    # PRO reaches 2/3 at FPR 1/25 and 1 only at FPR 1: C counts a third
    # whatever its size. Below 0.3 the curve is 0 to 1/25, then 2/3; at FPR 1
    # the tied pixels join, linearly from (1/25, 2/3) to (1, 1).
    expected = (0.3 - 1 / 25) * 2 / 3 + (0.3 - 1 / 25) ** 2 / (1 - 1 / 25) * (1 / 3) / 2
    assert aupro(maps, masks) == pytest.approx(expected / 0.3, abs=1e-12)
    assert pixel_metrics(maps, masks)["aupro"] == pytest.approx(expected / 0.3, abs=1e-12)


def test_a_perfect_map_scores_one_and_masks_must_mark_something():
    maps, masks = _two_regions()
    assert aupro(masks.astype(float), masks) == 1.0
    with pytest.raises(InputError, match="masks must mark some pixels but not all"):
        aupro(maps, np.zeros_like(masks))
    with pytest.raises(InputError, match=r"masks must match the images"):
        aupro(maps, masks[:, :2])
