"""Anomaly detection with an autoencoder trained on normal images only: the
detector, its scores and maps, defects with masks, and pictures of both.

``AnomalyDetector().fit(model, normal_images)`` learns what normal looks
like and where to put the threshold; ``scores``, ``is_anomaly``, ``maps``,
``evaluate`` and ``localisation`` follow. ``synthetic_defects`` paints
defects with masks; ``evaluate_defect_folder`` reads the MVTec AD layout::

    from keras_ae.anomaly import AnomalyDetector
    detector = AnomalyDetector().fit(model, normal_images)
    flags = detector.is_anomaly(new_images)
"""

from keras_ae.public import lazy_exports

# Public name -> the module (in this package) that defines it.
_EXPORTS = {
    "AnomalyDetector": "detector",
    "DEFAULT_SMOOTHING": "detector",
    "evaluate_scores": "detector",
    "pixel_roc_auc": "detector",
    "DEFECT_KINDS": "defects",
    "run_anomaly": "runs",
    "evaluate_defect_folder": "defects",
    "read_defect_folder": "defects",
    "synthetic_defects": "defects",
    "DEFAULT_MAP": "options",
    "DEFAULT_SCORE": "options",
    "MAP_KINDS": "options",
    "SCORE_PARTS": "options",
    "save_map_overlays": "pictures",
    "save_score_histogram": "pictures",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
