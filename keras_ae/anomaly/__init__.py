"""Anomaly detection with an autoencoder trained on normal images only: the
detector, its scores and maps, defects with masks, and pictures of both.

``AnomalyDetector.fit(model, normal_images)`` (a class method) learns what normal looks
like and where to put the threshold; ``scores``, ``is_anomaly``, ``maps``,
``evaluate`` and ``localisation`` follow. ``synthetic_defects`` paints
defects with masks; ``evaluate_defect_folder`` reads the MVTec AD layout.

Example:

>>> import keras_ae
>>> from keras_ae.anomaly import AnomalyDetector
>>> rng = np.random.default_rng(0)
>>> normal_images = rng.uniform(0.4, 0.6, (64, 16, 16, 1)).astype("float32")
>>> model = keras_ae.build_conv_autoencoder((16, 16, 1), filters=(4, 2))
>>> detector = AnomalyDetector.fit(model, normal_images, score="mse")
>>> new_images = np.concatenate([normal_images[:2], np.ones((2, 16, 16, 1), "float32")])
>>> detector.is_anomaly(new_images).tolist()
[False, False, True, True]
"""

from keras_ae.public import lazy_exports

# Module (in this package) -> the public names it defines.
_EXPORTS = {
    "detector": ("AnomalyDetector", "DEFAULT_SMOOTHING"),
    "patches": ("PatchFeatures", "PatchGaussians", "PatchMemoryBank", "feature_extractor",
                "greedy_coreset"),
    "tiling": ("TiledDetector",),
    "metrics": ("aupro", "best_f1_threshold", "evaluate_scores", "f1_max", "pixel_metrics",
                "pixel_roc_auc"),
    "defects": ("DEFECT_KINDS", "evaluate_defect_folder", "read_defect_folder",
                "synthetic_defects"),
    "runs": ("run_anomaly",),
    "options": ("DEFAULT_MAP", "DEFAULT_SCORE", "MAP_KINDS", "SCORE_PARTS", "default_score"),
    "pictures": ("save_map_overlays", "save_score_histogram"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
