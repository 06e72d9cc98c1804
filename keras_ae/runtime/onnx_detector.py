"""Serving an exported anomaly detector with onnxruntime alone.

``keras_ae.export.detector_export.export_detector`` writes one ``detector.onnx``:
image in; ``score``, ``map`` and ``reconstruction`` out; threshold and score
rule in its metadata. ``OnnxAnomalyDetector`` runs it with NumPy, Pillow
and onnxruntime, no TensorFlow, and takes images as ``OnnxAutoencoder``
does (arrays, files, Pillow images; ``resize=True`` for any size):

>>> detector = OnnxAnomalyDetector("exported/shoes/detector.onnx")
>>> scores, maps = detector.scores_and_maps(images)
>>> detector.is_anomaly(images)           # scores above detector.threshold
"""

import numpy as np

from keras_ae.errors import positive_int
from keras_ae.errors import InputError
from keras_ae.runtime.onnx_files import METADATA_PREFIX
from keras_ae.runtime.pixels import check_finite_outputs, to_unit_float
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder, _batch_slices

DETECTOR_FILE = "detector.onnx"  # as keras_ae.export.detector_export writes it
ROLE = "anomaly_detector"
SCORE, MAP = "score", "map"


class OnnxAnomalyDetector(OnnxAutoencoder):
    """An exported keras_ae anomaly detector on onnxruntime.

    Everything ``OnnxAutoencoder`` does (``reconstruct``, ``prepare``,
    ``input_shape``...), plus scores, maps and verdicts.

    Args:
        path: ``detector.onnx``, or the folder that holds it.
        providers, intra_op_threads, graph_optimization, allow_spinning: as
            for ``OnnxAutoencoder``, but ``allow_spinning`` defaults to False
            here: a detector's graph is many small operators, between which
            spinning threads hold the cores (chosen by
            ``tools/benchmark_serving.py``: docs/benchmarks.md, "Serving at
            128x128").
        threshold: a threshold of your own, in place of the file's (scores
            are in standard deviations of held-out normal images' scores
            from their mean; ``raw_scores`` gives them before that).

    Attributes:
        threshold: scores above it are anomalies.
        rule: how the threshold was chosen.
        score_name: the score, e.g. ``"knn"``.
        map_kind: ``"squared_error"`` or ``"ssim"``.

    Raises:
        FileNotFoundError: for no file.
        ValueError: for a file that is not an exported detector (an
            autoencoder's ``model.onnx``, say).
    """

    FILE, WRITER, WHAT = DETECTOR_FILE, "keras_ae.export.detector_export", "anomaly detector"

    def __init__(self, path, providers=None, intra_op_threads=None, *, threshold=None,
                 **settings):
        settings.setdefault("allow_spinning", False)
        super().__init__(path, providers, intra_op_threads, **settings)
        role = self.metadata.get(METADATA_PREFIX + "role")
        outputs = {o.name for o in self._model_session.get_outputs()}
        if role != ROLE or not {SCORE, MAP} <= outputs:
            raise InputError(
                f"{self.path} is not a keras_ae anomaly detector: its metadata "
                f"says role {role!r} and it has outputs {sorted(outputs)}; "
                f"expected role {ROLE!r} with outputs 'score' and 'map' "
                f"(export one with keras-ae anomaly or export_detector).")
        meta = lambda key: self.metadata.get(METADATA_PREFIX + key)  # noqa: E731
        self.threshold = float(meta("threshold"))
        self.rule, self.score_name = meta("rule"), meta("score")
        self.map_kind = meta("map_kind")
        self.part_mean, self.part_std = meta("part_mean"), meta("part_std")
        self.max_batch = meta("max_batch")
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                    or not np.isfinite(threshold):
                raise InputError(f"threshold must be a finite number, got {threshold!r}.")
            self.threshold = float(threshold)
            self.rule = f"given at serving ({threshold:g}; the file's rule: {self.rule})"

    def scores_and_maps(self, x, batch_size=256, *, resize=False):
        """Scores and per-pixel maps of images.

        Args:
            x: images, as for ``OnnxAutoencoder.reconstruct`` (arrays,
                files, Pillow images).
            batch_size: images per onnxruntime call.
            resize: ``True`` (or a mode) to take images of any size.

        Returns:
            ``(scores, maps)``: float32 ``(N,)`` and ``(N, H, W)`` for a
            batch; a 0-d score and an ``(H, W)`` map for one image.
        """
        images, _, single = self._images(self._inputs(x, resize))
        batch_size = positive_int("batch_size", batch_size)
        if self.max_batch:  # patch scores: memory bounded whatever the batch
            batch_size = min(batch_size, self.max_batch)
        scores = np.empty(len(images), np.float32)
        maps = np.empty((len(images), *self.input_shape[:2]), np.float32)
        for rows in _batch_slices(len(images), batch_size):
            chunk = np.ascontiguousarray(to_unit_float(images[rows]))
            scores[rows], maps[rows] = self._model_session.run(
                [SCORE, MAP], {"image": chunk})
        for values in (scores, maps):  # a diverged model scores NaN
            check_finite_outputs(values, self.path)
        return (scores[0], maps[0]) if single else (scores, maps)

    def scores(self, x, batch_size=256, *, resize=False):
        """Anomaly scores, float32 (see ``scores_and_maps``)."""
        return self.scores_and_maps(x, batch_size, resize=resize)[0]

    def maps(self, x, batch_size=256, *, resize=False):
        """Per-pixel anomaly maps, float32 (see ``scores_and_maps``)."""
        return self.scores_and_maps(x, batch_size, resize=resize)[1]

    def raw_scores(self, scores):
        """``scores`` as they were before the held-out normalisation: the
        score's own units (a distance, an error), for a single-part score.

        Raises:
            ValueError: for a score of several parts (their mean has no
                units of its own).
        """
        if not self.part_mean or len(self.part_mean) != 1:
            raise InputError(f"raw scores exist for a score of one part; "
                             f"{self.score_name!r} averages {len(self.part_mean or ())} "
                             f"normalised parts.")
        return np.asarray(scores, np.float64) * self.part_std[0] + self.part_mean[0]

    def is_anomaly(self, x, batch_size=256, *, resize=False):
        """``True`` where the score is above ``threshold``."""
        return self.scores(x, batch_size, resize=resize) > self.threshold

    def __repr__(self):
        return (f"OnnxAnomalyDetector({self.path!r}, score={self.score_name!r}, "
                f"threshold={self.threshold:.6g})")
