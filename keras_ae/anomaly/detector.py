"""Anomaly detection with an autoencoder trained on normal images only.

``AnomalyDetector.fit(model, normal_images)`` learns, from normal images
alone, what normal looks like to the model: the codes of the training
images (their nearest neighbours and their Gaussian), and how each score
spreads over held-out normal images, which sets the threshold. It then
scores new images (``scores``), says which are anomalies
(``is_anomaly``), shows where (``maps``), and measures itself against known
anomalies (``evaluate``, image level; ``localisation``, pixel level).
No anomaly is used to fit anything.

The default score, ``DEFAULT_SCORE``, is the one that measured best on the
one-class protocol of the literature on Fashion-MNIST
(``tools/benchmark_anomaly.py``): docs/benchmarks.md gives the model and
training it was measured with, and docs/anomaly_detection.md how to use it.
The arithmetic of each score is ``keras_ae.anomaly.scores``'; an
exported detector (``keras_ae.export.detector_export``) runs the same on
onnxruntime.
"""

import numpy as np

from keras_ae.runtime.pixels import check_finite_outputs
from keras_ae.codes import adapter
from keras_ae.anomaly import patches
from keras_ae.anomaly.options import (CODE_PARTS, DEFAULT_MAP, DEFAULT_SCORE,
                                      MAP_KINDS, PATCH_PARTS, PIXEL_PARTS, SCORE_PARTS,
                                      check_map_kind, default_map, default_score,
                                      parse_score)
from keras_ae.anomaly.metrics import evaluate_scores, pixel_roc_auc
from keras_ae.anomaly.scores import AnomalyScoring
from keras_ae.errors import InputError
from keras_ae.runtime.pixels import to_unit_float

__all__ = ["AnomalyDetector", "DEFAULT_SCORE", "DEFAULT_MAP", "MAP_KINDS",
           "SCORE_PARTS"]

# The maps' Gaussian blur, pixels per 28 of the image's side: 2 localised
# synthetic defects best of 0, 1 and 2 (tools/benchmark_anomaly.py).
DEFAULT_SMOOTHING = 2.0
# The patch maps': PatchCore's 4 pixels per 224 of the image's side.
DEFAULT_PATCH_SMOOTHING = 4.0 / 224
# Normal images whose patches fit the patch scores at most (a seeded draw):
# their features are held in memory at once.
MAX_PATCH_IMAGES = 1000
DEFAULT_NEIGHBORS = 5
DEFAULT_HELD_OUT = 0.1
# Codes kept for the nearest-neighbour score: a seeded draw beyond this many
# (they travel in the exported detector, 4 bytes x code floats each).
MAX_REFERENCE_CODES = 20000
SSIM_WINDOW = 7


class AnomalyDetector:
    """Scores images by how unlike the normal training images they are.

    Build one with ``AnomalyDetector.fit``; works with a Keras autoencoder
    from keras_ae's builders and with an exported one on onnxruntime
    (``keras_ae.runtime.onnx_autoencoder.OnnxAutoencoder``).

    Attributes:
        model: the autoencoder.
        scoring: the ``keras_ae.anomaly.scores.AnomalyScoring`` it fitted.
        threshold: scores above it are anomalies.
        rule: how the threshold was chosen, for reports.

    Example::

        detector = AnomalyDetector.fit(model, normal_train_images)
        detector.is_anomaly(new_images)          # array of bools
        detector.maps(new_images)                # (N, H, W), where
        detector.evaluate(test_images, is_anomaly)["roc_auc"]
    """

    def __init__(self, model, scoring, threshold, rule="given"):
        if not np.isfinite(threshold):
            raise InputError(f"threshold must be a finite number, got {threshold!r}.")
        self.model, self.scoring = model, scoring
        self.threshold, self.rule = float(threshold), rule

    @property
    def input_shape(self):
        """``(height, width, channels)`` of the images the model takes."""
        shape = self.model.input_shape
        return tuple(shape if hasattr(self.model, "can_encode") else shape[1:])

    @classmethod
    def fit(cls, model, normal_images, held_out_images=None, *, score=DEFAULT_SCORE,
            std=3.0, percentile=None, map_kind=DEFAULT_MAP, smoothing=None,
            neighbors=None, features=None, bank_share=patches.DEFAULT_BANK_SHARE,
            held_out_share=DEFAULT_HELD_OUT, seed=0, batch_size=adapter.DEFAULT_BATCH):
        """Learns normal from normal images.

        Args:
            model: the autoencoder, trained on normal images.
            normal_images: normal images, ``(N, H, W, C)`` uint8 or float in
                [0, 1]; the model's training images are best: their codes
                are the reference the ``"knn"`` and ``"mahalanobis"`` scores
                measure against.
            held_out_images: normal images the model did not train on, which
                normalise the scores and set the threshold; ``None`` draws
                ``held_out_share`` of ``normal_images`` (seeded) instead.
            score: ``"mse"``, ``"ssim"``, ``"knn"``, ``"mahalanobis"``,
                ``"patch_gaussian"``, ``"patch_knn"``, several joined by
                ``+``, or ``"auto"`` (``DEFAULT_SCORE``): ``"knn"`` for
                images under 64 pixels a side, ``"patch_gaussian+knn"`` from
                there up (``keras_ae.anomaly.options.default_score``).
            std: threshold = mean + ``std`` standard deviations of the
                held-out scores (used when ``percentile`` is None).
            percentile: threshold = this percentile of the held-out scores
                instead (e.g. 99: about 1% of normal images flagged).
            map_kind: ``"squared_error"``, ``"ssim"``, ``"patch"`` (the
                patch scores, with a patch score) or ``"auto"``: ``"patch"``
                with a patch score, else ``"squared_error"``.
            smoothing: the maps' Gaussian blur in pixels; ``None`` for
                ``DEFAULT_SMOOTHING`` pixels per 28 of the image's smaller
                side (patch maps: ``DEFAULT_PATCH_SMOOTHING`` per pixel).
            neighbors: ``k`` of the ``"knn"`` score; ``None`` for
                ``DEFAULT_NEIGHBORS``, or every reference image when fewer.
            features: what the patch scores measure: ``None`` for the
                autoencoder encoder's default layers
                (``keras_ae.anomaly.patches.default_layers``), a list of its
                encoder's layer names, or any Keras model from these images
                to ``(N, h, w, C)`` feature maps (e.g. a pretrained network
                you have the weights of, with its preprocessing inside).
            bank_share: the share of normal patches ``"patch_knn"``'s memory
                bank keeps (greedy coreset; at most
                ``keras_ae.anomaly.patches.MAX_BANK``).
            held_out_share: the share drawn when ``held_out_images`` is None.
            seed: seeds that draw.
            batch_size: images per model call.

        Returns:
            An ``AnomalyDetector``.

        Raises:
            ValueError: for no normal images, too few to hold some out, a
                percentile outside (0, 100), a negative std, or an unknown
                score or map kind.
        """
        _check_rule(std, percentile)
        reference, held_out = _normal_splits(normal_images, held_out_images,
                                             held_out_share, seed)
        shape = reference.shape[1:]
        score = default_score(shape) if score == "auto" else score
        parts = parse_score(score)
        map_kind = default_map(parts) if map_kind == "auto" else check_map_kind(map_kind)
        if map_kind == "patch" and not any(part in PATCH_PARTS for part in parts):
            raise InputError(f"map_kind 'patch' shows a patch score; score {score!r} "
                             f"has none (add 'patch_gaussian' or 'patch_knn').")
        if hasattr(model, "get_layer"):  # a Keras model
            from keras_ae.models.loading import as_float32

            # computing as its export will: one trained in bfloat16 or
            # float16 scores in float32, and its detector exports with parity
            model = as_float32(model)
        adapter.check_image_shape(model, reference)
        if neighbors is None:
            neighbors = min(DEFAULT_NEIGHBORS, len(reference))
        if isinstance(neighbors, bool) or not isinstance(neighbors, int) or not (
                1 <= neighbors <= len(reference)):
            raise InputError(f"neighbors must be an int in [1, {len(reference)}] "
                             f"(the reference images), got {neighbors!r}.")
        fitted = {}
        if any(part in CODE_PARTS for part in parts):
            codes = adapter.encode(model, _at_most(reference, MAX_REFERENCE_CODES,
                                                      seed), batch_size)
            fitted = _code_statistics(codes, parts)
        if any(part in PATCH_PARTS for part in parts):
            fitted.update(_patch_statistics(
                model, features, _at_most(reference, MAX_PATCH_IMAGES, seed), parts,
                bank_share, seed))
        scoring = AnomalyScoring(
            score, map_kind, _smoothing(smoothing, shape, map_kind), _ssim_window(shape),
            neighbors, **fitted)
        raw = _run_parts(model, scoring, held_out, batch_size)
        scoring.part_mean = np.array([raw[p].mean() for p in parts])
        spread = np.array([raw[p].std() for p in parts])
        scoring.part_std = np.where(spread > 0, spread, 1.0)
        scores = np.asarray(scoring.combine(raw), np.float64)
        # a model that diverged in training scores NaN: never fitted as if fine
        check_finite_outputs(scores, "the autoencoder (on its held-out normal images)")
        threshold, rule = _threshold(scores, std, percentile)
        return cls(model, scoring, threshold, rule)

    # --- scoring ---------------------------------------------------------------

    def scores_and_maps(self, images, batch_size=adapter.DEFAULT_BATCH):
        """``(scores (N,), maps (N, H, W))``, float32 arrays."""
        batch_size = self.scoring.batch_at_most(batch_size)
        images = self._images(images)
        scores, maps = [], []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            score, where = self.scoring(batch, *_model_outputs(
                self.model, self.scoring, batch, batch_size))
            scores.append(np.asarray(score))
            maps.append(np.asarray(where))
        return np.concatenate(scores), np.concatenate(maps)

    def scores(self, images, batch_size=adapter.DEFAULT_BATCH):
        """Per-image anomaly scores, float32 ``(N,)``: higher is stranger;
        the held-out normal images' mean is 0 for a single score."""
        images = self._images(images)
        parts = _run_parts(self.model, self.scoring, images, batch_size)
        return np.asarray(self.scoring.combine(parts), np.float32)

    def maps(self, images, batch_size=adapter.DEFAULT_BATCH):
        """Per-pixel anomaly maps, float32 ``(N, H, W)``: where each image
        differs from what the model makes of it."""
        batch_size = self.scoring.batch_at_most(batch_size)
        images = self._images(images)
        maps = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            reconstructions = (adapter.reconstruct(self.model, batch, batch_size)
                               if self.scoring.needs_reconstructions else batch)
            maps.append(np.asarray(self.scoring.maps(batch, reconstructions)))
        return np.concatenate(maps)

    def is_anomaly(self, images, batch_size=adapter.DEFAULT_BATCH):
        """``True`` for each image whose score is above the threshold."""
        return self.scores(images, batch_size) > self.threshold

    def fit_threshold(self, images, anomalous, batch_size=adapter.DEFAULT_BATCH):
        """Moves the threshold to the one of best F1 on labelled images.

        For when some real defects are at hand: the held-out rule knows only
        normal images. The threshold lands halfway between the lowest score
        flagged at the best F1 and the highest one below it.

        Args:
            images: labelled images, some normal and some anomalous.
            anomalous: ``(N,)`` booleans, ``True`` for the anomalies.

        Returns:
            ``self``, with ``threshold`` and ``rule`` set.
        """
        from keras_ae.anomaly.metrics import best_f1_threshold

        self.threshold, self.rule = best_f1_threshold(self.scores(images, batch_size),
                                                      anomalous)
        return self

    def _images(self, images):
        images = adapter.as_images(images)
        if not len(images):
            raise InputError("no images to score: got an empty array.")
        adapter.check_image_shape(self.model, images)
        return to_unit_float(images)

    # --- measuring ---------------------------------------------------------

    def evaluate(self, images, anomalous, batch_size=adapter.DEFAULT_BATCH):
        """How well the scores and the threshold find known anomalies.

        Args:
            images: images of both kinds.
            anomalous: ``(N,)`` booleans, ``True`` for the anomalies.

        Returns:
            A dict: ``roc_auc`` (threshold-free: the chance that an anomaly
            scores above a normal image), ``precision`` and ``recall`` at the
            threshold, ``threshold``, ``rule``, ``score``, ``flagged``,
            ``anomalies``, ``images``.

        Raises:
            ValueError: unless ``anomalous`` holds one flag per image and
                both kinds.
        """
        scores = self.scores(images, batch_size)
        return evaluate_scores(scores, anomalous, self.threshold,
                               {"rule": self.rule, "score": self.scoring.score})

    def localisation(self, images, masks, batch_size=adapter.DEFAULT_BATCH):
        """Pixel-level ROC AUC of the maps against defect masks.

        Args:
            images: ``(N, H, W, C)`` images with defects.
            masks: ``(N, H, W)`` (or ``(N, H, W, 1)``), nonzero on defects.

        Returns:
            The chance that a defect pixel's map value is above a clean
            pixel's, over all pixels of all images.

        Raises:
            ValueError: for masks of another size than the images, or masks
                with no defect pixel or no clean one.
        """
        maps = self.maps(images, batch_size)
        return pixel_roc_auc(maps, masks)

    def describe(self):
        """A JSON-able summary: score, threshold, rule, maps, normalisation."""
        return {**self.scoring.settings(), "threshold": self.threshold,
                "rule": self.rule}

    def __repr__(self):
        return (f"AnomalyDetector(score={self.scoring.score!r}, "
                f"threshold={self.threshold:.6g}, rule={self.rule!r})")


# --- pieces --------------------------------------------------------------------

def _check_rule(std, percentile):
    if percentile is not None:
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) \
                or not 0 < percentile < 100:
            raise InputError(f"percentile must be in (0, 100), got {percentile!r}.")
    elif isinstance(std, bool) or not isinstance(std, (int, float)) or not std >= 0:
        raise InputError(f"std must be a number >= 0, got {std!r}.")


def _threshold(scores, std, percentile):
    if percentile is not None:
        return (float(np.percentile(scores, percentile)),
                f"percentile {percentile:g} of {len(scores)} held-out normal images")
    return (float(scores.mean() + std * scores.std()),
            f"mean + {std:g} std of {len(scores)} held-out normal images")


def _normal_splits(normal_images, held_out_images, share, seed):
    """``(reference, held_out)`` float32 image arrays."""
    normal = adapter.as_images(normal_images)
    if not len(normal):
        raise InputError("no normal images: an anomaly detector learns normal "
                         "from at least a few normal images.")
    if held_out_images is not None:
        held_out = adapter.as_images(held_out_images)
        if held_out.shape[1:] != normal.shape[1:]:
            raise InputError(f"held_out_images must be of the normal images' shape "
                             f"{normal.shape[1:]}, got {held_out.shape[1:]}.")
    else:
        if not 0 < share < 1:
            raise InputError(f"held_out_share must be in (0, 1), got {share!r}.")
        order = np.random.default_rng(seed).permutation(len(normal))
        count = int(round(share * len(normal)))
        held_out, normal = normal[order[:count]], normal[order[count:]]
    if len(held_out) < 2 or not len(normal):
        raise InputError(
            f"need at least 2 held-out normal images and 1 reference image, got "
            f"{len(held_out)} held out and {len(normal)} reference; give more "
            f"normal images or held_out_images.")
    return (to_unit_float(normal),
            to_unit_float(held_out))


def _at_most(images, count, seed):
    if len(images) <= count:
        return images
    return images[np.sort(np.random.default_rng(seed).permutation(len(images))[:count])]


def _code_statistics(codes, parts):
    """The reference codes and the codes' Gaussian, as the parts need."""
    fitted = {"reference_codes": codes if "knn" in parts else None}
    if "mahalanobis" in parts:
        from sklearn.covariance import LedoitWolf

        gaussian = LedoitWolf().fit(codes)
        fitted.update(code_mean=gaussian.location_, code_precision=gaussian.precision_)
    return fitted


def _patch_statistics(model, features, reference, parts, bank_share, seed):
    """The patch features and each patch part's fitted scorer."""
    if features is None or isinstance(features, (list, tuple)):
        if not hasattr(model, "get_layer"):
            raise InputError(
                "patch scores read the encoder's feature maps, which an exported "
                "(ONNX) autoencoder does not give; fit on the .keras model, or pass "
                "features= a Keras feature extractor.")
        features = patches.feature_extractor(model, features)
        grid = patches.code_grid(model)
    elif hasattr(features, "outputs"):
        grid = None  # the extractor's smallest map
    else:
        raise InputError(f"features must be None, a list of encoder layer names or a "
                         f"Keras model of feature maps, got {type(features).__name__}.")
    found = patches.PatchFeatures(features, grid)
    if tuple(found.input_shape) != tuple(reference.shape[1:]):
        raise InputError(f"the feature extractor takes images of shape "
                         f"{tuple(found.input_shape)}, the normal images are "
                         f"{tuple(reference.shape[1:])}.")
    gaussian, bank = patches.fit_patch_scorers(
        found, reference, gaussian="patch_gaussian" in parts, bank="patch_knn" in parts,
        bank_share=bank_share, seed=seed)
    scorers = {name: scorer for name, scorer in (("patch_gaussian", gaussian),
                                                 ("patch_knn", bank)) if scorer}
    return {"patch_features": found, "patch_scorers": scorers}


def _smoothing(smoothing, shape, map_kind):
    if smoothing is None:
        if map_kind == "patch":
            return min(shape[0], shape[1]) * DEFAULT_PATCH_SMOOTHING
        return min(shape[0], shape[1]) / 28.0 * DEFAULT_SMOOTHING
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) \
            or not smoothing >= 0:
        raise InputError(f"smoothing must be a number of pixels >= 0, got {smoothing!r}.")
    return float(smoothing)


def _ssim_window(shape):
    """SSIM's window: 7 pixels, or the largest odd size that fits."""
    side = min(shape[0], shape[1])
    return min(SSIM_WINDOW, side if side % 2 else side - 1)


def _model_outputs(model, scoring, images, batch_size):
    """``(reconstructions, codes)`` of float images; no codes (an empty
    array) where no part measures them."""
    reconstructions = adapter.reconstruct(model, images, batch_size)
    codes = (adapter.encode(model, images, batch_size) if scoring.needs_codes
             else np.zeros((len(images), 0), np.float32))
    return reconstructions, codes


def _run_parts(model, scoring, images, batch_size):
    """Each raw score part of ``images``, float64 arrays; the model runs
    only the halves the parts need."""
    batch_size = scoring.batch_at_most(batch_size)
    needs_pixels = any(part in PIXEL_PARTS for part in scoring.parts)
    found = {part: [] for part in scoring.parts}
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        reconstructions = (adapter.reconstruct(model, batch, batch_size)
                           if needs_pixels else batch)
        codes = (adapter.encode(model, batch, batch_size) if scoring.needs_codes
                 else np.zeros((len(batch), 0), np.float32))
        for part, value in scoring.parts_of(batch, reconstructions, codes).items():
            found[part].append(np.asarray(value))
    return {part: np.concatenate(values) for part, values in found.items()}
