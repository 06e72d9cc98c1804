"""How well anomaly scores and maps find the anomalies: the metrics of the
anomaly-detection literature and of industrial inspection.

Image level (one score per image): ROC AUC, AUPR (average precision) and
F1-max (the best F1 over all thresholds, with that threshold), and
precision and recall at a given threshold. Pixel level (maps against defect
masks): ROC AUC, F1-max and AUPRO, the area under the per-region-overlap
curve up to a false-positive rate of 0.3, divided by 0.3 (Bergmann et al.,
"The MVTec Anomaly Detection Dataset", IJCV 2021): unlike pixel ROC AUC, a
small defect counts as much as a large one.
"""

import numpy as np

from keras_ae.errors import InputError

AUPRO_FPR_LIMIT = 0.3  # the MVTec AD paper's integration limit


def _flags(labels, scores, what):
    scores, labels = np.asarray(scores, np.float64).reshape(-1), np.asarray(labels).reshape(-1)
    labels = labels > 0
    if labels.shape != scores.shape or labels.all() or not labels.any():
        raise InputError(f"{what} must mark some but not all of the {scores.size} values, "
                         f"got shape {labels.shape} with {int(labels.sum())} marked.")
    return labels, scores


def f1_max(labels, scores):
    """The best F1 over all thresholds, and the threshold that reaches it.

    Args:
        labels: truth per value (nonzero: anomalous).
        scores: one score per value, higher for anomalous.

    Returns:
        ``(f1, threshold)``: flag the values whose score is at least
        ``threshold``.

    Example:

    >>> f1_max([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    (0.8, 0.4)
    """
    from sklearn.metrics import precision_recall_curve

    labels, scores = _flags(labels, scores, "labels")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
    best = int(np.argmax(f1))
    return round(float(f1[best]), 12), float(thresholds[best])


def best_f1_threshold(scores, anomalous):
    """``(threshold, rule)``: the threshold of best F1 on labelled scores,
    halfway between the lowest score it flags and the highest below, and
    the rule's description.

    Example:

    >>> best_f1_threshold([0.1, 0.6, 0.4, 0.9], [0, 0, 1, 1])
    (0.25, 'best F1 (0.800) on 4 labelled images (2 anomalies)')
    """
    scores = np.asarray(scores, np.float64)
    anomalous = np.asarray(anomalous, bool)
    best, lowest_flagged = f1_max(anomalous, scores)
    below = scores[scores < lowest_flagged]
    threshold = float((lowest_flagged + below.max()) / 2 if len(below)
                      else np.nextafter(lowest_flagged, -np.inf))
    return threshold, (f"best F1 ({best:.3f}) on {len(scores)} labelled images "
                       f"({int(anomalous.sum())} anomalies)")


def evaluate_scores(scores, anomalous, threshold, extra=None):
    """Image-level metrics of anomaly scores.

    Args:
        scores: one score per image.
        anomalous: one flag per image, ``True`` for the anomalies (some,
            not all).
        threshold: flags scores above it.
        extra: more entries for the result (the rule, the score's name).

    Returns:
        ``roc_auc``, ``aupr``, ``f1_max`` (with ``f1_max_threshold``),
        ``precision`` and ``recall`` at ``threshold``, the counts.
    """
    from sklearn.metrics import average_precision_score, precision_score, recall_score
    from sklearn.metrics import roc_auc_score

    scores, anomalous = np.asarray(scores), np.asarray(anomalous, bool)
    if anomalous.shape != scores.shape or anomalous.all() or not anomalous.any():
        raise InputError(
            f"anomalous must hold one flag per image ({len(scores)}) and "
            f"mark some images but not all, got shape {anomalous.shape} "
            f"with {int(anomalous.sum())} marked.")
    flagged = scores > threshold
    best, at = f1_max(anomalous, scores)
    return {"roc_auc": float(roc_auc_score(anomalous, scores)),
            "aupr": float(average_precision_score(anomalous, scores)),
            "f1_max": best, "f1_max_threshold": at,
            "precision": float(precision_score(anomalous, flagged, zero_division=0)),
            "recall": float(recall_score(anomalous, flagged)),
            "threshold": float(threshold), **(extra or {}),
            "flagged": int(flagged.sum()), "anomalies": int(anomalous.sum()),
            "images": len(scores)}


def _maps_and_masks(maps, masks):
    maps, masks = np.asarray(maps, np.float64), np.asarray(masks)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if maps.ndim == 2:  # one image
        maps = maps[None]
        masks = masks[None] if masks.ndim == 2 else masks
    if masks.shape != maps.shape:
        raise InputError(f"masks must match the images: expected shape "
                         f"{maps.shape}, got {masks.shape}.")
    defect = masks > 0
    if defect.all() or not defect.any():
        raise InputError(f"masks must mark some pixels but not all: "
                         f"{int(defect.sum())} of {defect.size} marked.")
    return maps, defect


def pixel_roc_auc(maps, masks):
    """Pixel-level ROC AUC of anomaly maps ``(N, H, W)`` against masks of
    the same size (nonzero on defects): the chance that a defect pixel's
    map value is above a clean pixel's, over all pixels of all images."""
    from sklearn.metrics import roc_auc_score

    maps, defect = _maps_and_masks(maps, masks)
    return float(roc_auc_score(defect.reshape(-1), maps.reshape(-1)))


def aupro(maps, masks, fpr_limit=AUPRO_FPR_LIMIT):
    """The area under the per-region-overlap curve up to ``fpr_limit``,
    divided by ``fpr_limit``: 1 is perfect.

    Each connected defect region (8-connected, in each mask) counts once,
    whatever its size: at every threshold, its overlap is the share of its
    pixels above the threshold, and PRO is the mean overlap over all
    regions; the false-positive rate is the share of clean pixels above the
    threshold. The curve is integrated with the trapezoid rule from FPR 0,
    its value at ``fpr_limit`` interpolated, as the MVTec AD evaluation
    code does.

    Args:
        maps: ``(N, H, W)`` anomaly maps (or one ``(H, W)``).
        masks: the same shape, nonzero on defects.
        fpr_limit: the false-positive rate the curve is integrated to.

    Example: two regions of 2 and 1 pixels, 13 clean pixels; one clean
    pixel (0.9) is above every defect pixel, so PRO reaches 1 at FPR 1/13:

    >>> maps = np.array([[0.9, .8, .3, 0], [0, 0, 0, .5], [0, 0, 0, 0], [0, 0, 0, 0]])
    >>> masks = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    >>> round(aupro(maps, masks), 6) == round((0.3 - 1 / 13) / 0.3, 6)
    True
    """
    from scipy import ndimage

    if not 0 < fpr_limit <= 1:
        raise InputError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}.")
    maps, defect = _maps_and_masks(maps, masks)
    # each pixel's share of the curve: a clean pixel adds 1 / clean pixels to
    # the FPR, a region's pixel 1 / (its region's size * regions) to PRO
    fpr_step = np.where(defect, 0.0, 1.0 / (~defect).sum())
    pro_step = np.zeros(maps.shape)
    regions = []
    for index in range(len(maps)):
        labels, count = ndimage.label(defect[index], structure=np.ones((3, 3)))
        regions.append((index, labels, count))
    total = sum(count for _, _, count in regions)
    for index, labels, count in regions:
        sizes = np.bincount(labels.reshape(-1), minlength=count + 1)
        share = np.where(labels > 0, 1.0 / (np.maximum(sizes[labels], 1) * total), 0.0)
        pro_step[index] = share
    order = np.argsort(-maps.reshape(-1), kind="stable")
    scores = maps.reshape(-1)[order]
    fprs = np.cumsum(fpr_step.reshape(-1)[order])
    pros = np.cumsum(pro_step.reshape(-1)[order])
    last = np.r_[scores[1:] != scores[:-1], True]  # one point per distinct score
    fprs = np.r_[0.0, np.minimum(fprs[last], 1.0)]
    pros = np.r_[0.0, np.minimum(pros[last], 1.0)]
    return float(_area_to(fprs, pros, fpr_limit) / fpr_limit)


def _area_to(x, y, limit):
    """Trapezoid area under ``y(x)`` (``x`` not decreasing) from ``x[0]``
    to ``limit``, ``y(limit)`` interpolated on the segment that crosses it."""
    inside = x <= limit
    xs, ys = x[inside], y[inside]
    if not inside.all():
        after = int(np.argmax(~inside))
        before = after - 1
        span = x[after] - x[before]
        at = y[before] if span == 0 else (
            y[before] + (y[after] - y[before]) * (limit - x[before]) / span)
        xs, ys = np.r_[xs, limit], np.r_[ys, at]
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))


def pixel_metrics(maps, masks, fpr_limit=AUPRO_FPR_LIMIT):
    """``{"pixel_roc_auc", "pixel_f1_max", "aupro"}`` of maps against masks."""
    maps, defect = _maps_and_masks(maps, masks)
    return {"pixel_roc_auc": pixel_roc_auc(maps, defect),
            "pixel_f1_max": f1_max(defect, maps)[0],
            "aupro": aupro(maps, defect, fpr_limit)}
