"""The arithmetic of anomaly scores and maps, in TensorFlow ops.

One function, ``AnomalyScoring.__call__``, turns images, their
reconstructions and their codes into per-image scores and per-pixel maps.
``keras_ae.anomaly.detector.AnomalyDetector`` runs it eagerly; ``export_detector``
traces the same function (behind the autoencoder) into one ONNX graph, so
the served detector computes what the Keras one does.

Scores (each higher for stranger images):

- ``"mse"``: mean squared reconstruction error.
- ``"ssim"``: one minus the mean structural similarity of image and
  reconstruction (Bergmann et al. 2019), Gaussian window as
  ``tf.image.ssim``'s.
- ``"knn"``: mean Euclidean distance from the image's code to its nearest
  codes among the normal training images'.
- ``"mahalanobis"``: distance of the code from a Gaussian fitted to the
  normal training codes (Ledoit-Wolf shrunk covariance, scikit-learn).

- ``"patch_gaussian"``, ``"patch_knn"``: the largest patch score of the
  image (``keras_ae.anomaly.patches``): distance from a Gaussian per position,
  or to the nearest normal patch.

Several joined by ``+`` (``"knn+mahalanobis"``) are averaged after each is
normalised by held-out normal images' mean and standard deviation.

Maps: ``"squared_error"`` (per pixel, averaged over channels), ``"ssim"``
(one minus the local SSIM) or ``"patch"`` (the patch scores, normalised as
the image score is and resized to the image), smoothed by a Gaussian of
``smoothing`` pixels.
"""

import numpy as np
import tensorflow as tf

from keras_ae.anomaly.options import (CODE_PARTS, PATCH_PARTS, PIXEL_PARTS,
                                      check_map_kind, parse_score)

# Numbers patch scores hold at once for a batch at most (2^25 float64: 256 MiB).
PATCH_VALUES = 2 ** 25
# tf.image.ssim's constants: K1, K2 and the Gaussian's width.
SSIM_K1, SSIM_K2, SSIM_SIGMA = 0.01, 0.03, 1.5


def gaussian_line(size, sigma):
    """A normalised 1-D Gaussian of ``size`` taps, float64: the separable
    half of tf.image.ssim's window."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    line = np.exp(-offsets ** 2 / (2 * sigma ** 2))
    return line / line.sum()


def filter_matrix(length, line, padding):
    """The ``(out, length)`` matrix that convolves a line of ``length``
    values with ``line``: ``"VALID"`` (out = length - taps + 1) or
    ``"REFLECT"`` (out = length, borders mirrored as ``tf.pad``'s REFLECT)."""
    size = len(line)
    index = np.arange(length)
    if padding == "REFLECT":
        low = size // 2
        index = np.pad(index, (low, size - 1 - low), mode="reflect")
    matrix = np.zeros((len(index) - size + 1, length))
    for row in range(len(matrix)):
        np.add.at(matrix[row], index[row:row + size], line)
    return matrix


def _filter(images, line, padding):
    """Each channel of ``images`` (N, H, W, C) float64 convolved with the
    separable Gaussian ``line`` x ``line``.

    Two matrix products instead of a convolution: they run in float64 in
    TensorFlow and onnxruntime alike (onnxruntime's Conv is float32 only),
    and SSIM's variances, small differences of squares, need it.
    """
    height, width = images.shape[1], images.shape[2]
    rows = tf.constant(filter_matrix(height, line, padding))
    columns = tf.constant(filter_matrix(width, line, padding).T)
    channels_first = tf.transpose(images, [0, 3, 1, 2])
    filtered = tf.matmul(tf.matmul(rows, channels_first), columns)
    return tf.transpose(filtered, [0, 2, 3, 1])


def ssim_map(images, reconstructions, window, padding="VALID"):
    """Local SSIM of each pixel and channel, float64 (N, H', W', C):
    tf.image.ssim's formula (max value 1), whose map TensorFlow does not
    return.

    With ``padding="VALID"`` its mean equals ``tf.image.ssim(images,
    reconstructions, 1.0, filter_size=window)``; ``"REFLECT"`` keeps the
    image's size for maps.
    """
    line = gaussian_line(window, SSIM_SIGMA)
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    images = tf.cast(images, tf.float64)
    reconstructions = tf.cast(reconstructions, tf.float64)
    mean_x = _filter(images, line, padding)
    mean_y = _filter(reconstructions, line, padding)
    square_x = _filter(images * images, line, padding)
    square_y = _filter(reconstructions * reconstructions, line, padding)
    cross = _filter(images * reconstructions, line, padding)
    luminance = (2 * mean_x * mean_y + c1) / (mean_x ** 2 + mean_y ** 2 + c1)
    variances = square_x - mean_x ** 2 + square_y - mean_y ** 2
    contrast = (2 * (cross - mean_x * mean_y) + c2) / (variances + c2)
    return luminance * contrast


def smooth(maps, sigma):
    """(N, H, W) float64 maps blurred by a Gaussian of ``sigma`` pixels
    (0: as given), borders mirrored."""
    if not sigma:
        return maps
    size = 2 * int(np.ceil(2 * sigma)) + 1
    return _filter(maps[..., None], gaussian_line(size, sigma), "REFLECT")[..., 0]


class AnomalyScoring:
    """Scores and maps from images, reconstructions and codes.

    Holds what fitting learned: the normal training codes (for ``"knn"``),
    their Gaussian (for ``"mahalanobis"``), each part's held-out mean and
    standard deviation. Code arithmetic runs in float64, so that the ONNX
    graph and TensorFlow agree to rounding of the model itself.

    Args:
        score: a score name (see the module docstring).
        map_kind, smoothing: the maps' kind and Gaussian blur in pixels.
        window: SSIM's window, odd, at most the image's smaller side.
        neighbors: ``k`` of ``"knn"``.
        reference_codes: ``(R, D)`` normal training codes, or ``None``.
        code_mean, code_precision: the Gaussian's mean ``(D,)`` and inverse
            covariance ``(D, D)``, or ``None``.
        part_mean, part_std: ``(len(parts),)`` normalisation of each part.
        patch_features: the ``keras_ae.anomaly.patches.PatchFeatures`` the
            patch parts score, or ``None``.
        patch_scorers: ``{part: PatchGaussians or PatchMemoryBank}`` of the
            patch parts.
    """

    def __init__(self, score, map_kind, smoothing, window, neighbors=5,
                 reference_codes=None, code_mean=None, code_precision=None,
                 part_mean=None, part_std=None, patch_features=None, patch_scorers=None):
        self.parts = parse_score(score)
        self.score = score
        self.map_kind = check_map_kind(map_kind)
        self.patch_features = patch_features
        self.patch_scorers = dict(patch_scorers or {})
        self.smoothing, self.window, self.neighbors = float(smoothing), int(window), int(neighbors)
        self.reference_codes = _float64(reference_codes)
        self.code_mean = _float64(code_mean)
        self.code_precision = _float64(code_precision)
        count = len(self.parts)
        self.part_mean = np.zeros(count) if part_mean is None else np.asarray(part_mean, np.float64)
        self.part_std = np.ones(count) if part_std is None else np.asarray(part_std, np.float64)

    @property
    def needs_codes(self):
        """Whether a part measures codes (``"knn"``, ``"mahalanobis"``)."""
        return any(part in CODE_PARTS for part in self.parts)

    @property
    def needs_reconstructions(self):
        """Whether a part or the map compares images with reconstructions."""
        return (any(part in PIXEL_PARTS for part in self.parts)
                or self.map_kind != "patch")

    def batch_at_most(self, batch_size):
        """``batch_size``, made smaller where patch scores would hold more
        than ``PATCH_VALUES`` numbers at once for it (feature maps, distances
        of every patch to every bank patch): memory stays bounded whatever
        the batch asked for."""
        if self.patch_features is None:
            return batch_size
        per_image = max(self.patch_features.values_per_image,
                        *(getattr(scorer, "values_per_patch", 0) * int(np.prod(
                            self.patch_features.grid)) for scorer in
                          self.patch_scorers.values()))
        return max(1, min(batch_size, PATCH_VALUES // per_image))

    def patch_maps(self, images):
        """``{part: (N, h, w) float64 tensor}`` of the patch parts."""
        if not any(part in PATCH_PARTS for part in self.parts):
            return {}
        features = self.patch_features(tf.convert_to_tensor(images, tf.float32))
        return {part: self.patch_scorers[part].map(features)
                for part in self.parts if part in PATCH_PARTS}

    def parts_of(self, images, reconstructions, codes, patch_maps=None):
        """Each raw part, a dict of float64 ``(N,)`` tensors (``patch_maps``
        as ``self.patch_maps(images)`` gives, computed when not given)."""
        images = tf.convert_to_tensor(images, tf.float32)
        reconstructions = tf.cast(reconstructions, tf.float32)
        codes = tf.reshape(tf.cast(codes, tf.float64), [tf.shape(images)[0], -1])
        if patch_maps is None:
            patch_maps = self.patch_maps(images)
        part = {}
        for name in self.parts:
            if name in PATCH_PARTS:
                value = tf.reduce_max(patch_maps[name], [1, 2])
            elif name == "mse":
                value = tf.reduce_mean(tf.square(images - reconstructions), [1, 2, 3])
            elif name == "ssim":
                value = 1.0 - tf.reduce_mean(
                    ssim_map(images, reconstructions, self.window), [1, 2, 3])
            elif name == "knn":
                value = self._knn(codes)
            else:
                value = self._mahalanobis(codes)
            part[name] = tf.cast(value, tf.float64)
        return part

    def _knn(self, codes):
        reference = tf.constant(self.reference_codes)
        squared = (tf.reduce_sum(codes * codes, 1, keepdims=True)
                   - 2.0 * tf.matmul(codes, reference, transpose_b=True)
                   + tf.constant(np.sum(self.reference_codes ** 2, 1))[None])
        nearest = -tf.math.top_k(-squared, k=self.neighbors).values
        return tf.reduce_mean(tf.sqrt(tf.maximum(nearest, 0.0)), 1)

    def _mahalanobis(self, codes):
        centred = codes - tf.constant(self.code_mean)
        quadratic = tf.reduce_sum(tf.matmul(centred, tf.constant(self.code_precision))
                                  * centred, 1)
        return tf.sqrt(tf.maximum(quadratic, 0.0))

    def combine(self, part):
        """The score: the mean of the normalised parts, float32 ``(N,)``."""
        normalised = [(part[name] - self.part_mean[i]) / self.part_std[i]
                      for i, name in enumerate(self.parts)]
        return tf.cast(tf.add_n(normalised) / len(normalised), tf.float32)

    def maps(self, images, reconstructions, patch_maps=None):
        """Per-pixel maps, float32 ``(N, H, W)``."""
        images = tf.convert_to_tensor(images, tf.float32)
        reconstructions = tf.cast(reconstructions, tf.float32)
        if self.map_kind == "patch":
            raw = self._patch_map(images, patch_maps)
        elif self.map_kind == "squared_error":
            raw = tf.cast(tf.reduce_mean(tf.square(images - reconstructions), -1),
                          tf.float64)
        else:
            raw = 1.0 - tf.reduce_mean(
                ssim_map(images, reconstructions, self.window, "REFLECT"), -1)
        return tf.cast(smooth(raw, self.smoothing), tf.float32)

    def _patch_map(self, images, patch_maps):
        """The patch parts' maps, each normalised as its image score is,
        averaged and resized (bilinear) to the images, float64."""
        if patch_maps is None:
            patch_maps = self.patch_maps(images)
        if not patch_maps:
            raise ValueError(f"the 'patch' map needs a patch score, not {self.score!r}")
        normalised = [(patch_maps[name] - self.part_mean[i]) / self.part_std[i]
                      for i, name in enumerate(self.parts) if name in patch_maps]
        joined = tf.add_n(normalised) / len(normalised)
        size = images.shape[1:3]  # resized in float32: onnxruntime's Resize has no float64
        resized = tf.image.resize(tf.cast(joined, tf.float32)[..., None], size, "bilinear")
        return tf.cast(resized[..., 0], tf.float64)

    def __call__(self, images, reconstructions, codes):
        """``(scores (N,), maps (N, H, W))``, float32 tensors."""
        patch_maps = self.patch_maps(images)
        return (self.combine(self.parts_of(images, reconstructions, codes, patch_maps)),
                self.maps(images, reconstructions, patch_maps))

    def settings(self):
        """The JSON-able description: score, map, window, neighbours,
        normalisation."""
        return {"score": self.score, "map_kind": self.map_kind,
                "smoothing": self.smoothing, "ssim_window": self.window,
                "neighbors": self.neighbors,
                "reference_codes": (None if self.reference_codes is None
                                    else len(self.reference_codes)),
                "part_mean": self.part_mean.tolist(), "part_std": self.part_std.tolist(),
                **(self.patch_features.settings() if self.patch_features else {}),
                "max_batch": self.batch_at_most(2 ** 31),
                **{key: value for scorer in self.patch_scorers.values()
                   for key, value in scorer.settings().items()}}


def _float64(values):
    return None if values is None else np.asarray(values, np.float64)
