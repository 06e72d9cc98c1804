"""Patch-level anomaly scores: how unlike the normal images each small
region of an image is, for defects too small to change a whole image's code.

A patch is one position of a grid of feature maps: the autoencoder
encoder's own stages (or any Keras model of feature maps, such as a
pretrained network cut where you like), resized to one grid, each divided by
its mean magnitude over the image (so that a cell lit brighter all over is
not a defect), and each position joined with its 3x3 neighbours' features. Two
scorers learn normal from the patches of normal images:

- ``PatchMemoryBank`` (PatchCore, Roth et al. 2022): a patch's score is its
  distance to the nearest patch of a bank of normal patches, thinned by
  greedy coreset selection so that it fits in memory and in an ONNX file.
  Suits textures and parts that are not aligned.
- ``PatchGaussians`` (PaDiM, Defard et al. 2021): a Gaussian per grid
  position (mean and Ledoit-Wolf covariance, its diagonal floored); a
  patch's score is its Mahalanobis distance from its position's Gaussian.
  Suits aligned parts.

An image's score is its largest patch score; its map, the patch scores
resized to the image. Everything here runs in TensorFlow ops, so that the
exported detector (``keras_ae.export.detector_export``) traces the same
arithmetic into its ONNX graph; fitting is NumPy and scikit-learn.

Example::

    features = PatchFeatures(feature_extractor(autoencoder))
    gaussians = PatchGaussians.fit(features.of(normal_images))
    maps = gaussians.map(features(new_images))        # (N, h, w) tensor
"""

import numpy as np

from keras_ae.errors import InputError, positive_int

DEFAULT_BANK_SHARE = 0.1  # PatchCore's coreset share of all normal patches
MAX_BANK = 5000  # patches kept at most, whatever the share
MAX_CANDIDATES = 100000  # patches the coreset chooses from (a seeded random draw)
PROJECTION = 128  # dimensions the coreset's distances are computed in
# PaDiM keeps a seeded random 100 of its network's feature dimensions; a
# Gaussian per position holds dims^2 floats.
MAX_GAUSSIAN_DIMS = 100
NEIGHBOURHOOD = 3  # each patch joins its 3x3 neighbours' features
# A Gaussian per position holds dims^2 numbers: 32x32 positions of 100
# dimensions are 82 MB in float64, inside the exported file too; a 64x64 grid
# (256x256 images) is four times that, and tf2onnx's conversion of it ran out
# of 24 GiB. Larger codes' grids are halved down to this side.
MAX_GRID_SIDE = 32
# Added to each covariance's diagonal, as PaDiM adds 0.01 I to its raw network
# features' (ours are normalised to magnitude 1 and vary less, so less is
# added; the value was chosen on ELPV cells with tools/benchmark_anomaly.py):
# no direction of the features is trusted to vary less than this, which also
# bounds how far a rounding of the features moves a distance (the exported
# graph's parity with Keras).
COVARIANCE_FLOOR = 1e-4
MAGNITUDE_EPSILON = 1e-6


def feature_extractor(model, layers=None):
    """A Keras model from images to the feature maps patches are made of.

    Args:
        model: a keras_ae autoencoder (its nested ``encoder``), or any Keras
            model whose outputs are ``(N, h, w, C)`` feature maps (a
            ``keras.applications`` network cut where you like, say), used
            as it is.
        layers: names of the encoder's layers to take; by default
            ``default_layers(model)``.

    Returns:
        A ``keras.Model`` with one or more feature-map outputs.

    Raises:
        ValueError: naming a layer the encoder does not have, and its layers.
    """
    import keras

    try:
        encoder = model.get_layer("encoder")
    except ValueError:
        return model  # a feature extractor already
    names = [layer.name for layer in encoder.layers]
    layers = default_layers(model) if layers is None else list(layers)
    missing = [name for name in layers if name not in names]
    if missing:
        raise InputError(f"the encoder has no layer {missing[0]!r}; its layers are "
                         f"{', '.join(names)}.")
    outputs = []
    for name in layers:
        output = encoder.get_layer(name).output
        outputs.append(output[0] if isinstance(output, (list, tuple)) else output)
    return keras.Model(encoder.input, outputs, name="patch_features")


def default_layers(model):
    """The encoder layers patches are made of by default: the image as the
    encoder sees it (after its intensity transform, if any) and the first
    stage's first convolution.

    Thin defects (cracks a pixel or two wide) vanish in the pooled and
    deeper stages, which are made to rebuild the image, not to tell its
    parts apart; the measurements behind this choice are in
    docs/benchmarks.md (``tools/benchmark_anomaly.py``, ELPV section).
    """
    names = [layer.name for layer in model.get_layer("encoder").layers]
    first = names[1] if names[1] == "encoder_intensity" else names[0]
    convolutions = [name for name in names if name.startswith("encoder_stage1_conv")]
    return [first] + convolutions[:1]


def code_grid(model):
    """``(h, w)`` of the patches of an autoencoder's encoder by default: one
    per code position (a quarter of the image's side for the default
    two-stage model), halved while a side is over ``MAX_GRID_SIDE``."""
    shape = model.get_layer("encoder").output
    shape = (shape[0] if isinstance(shape, (list, tuple)) else shape).shape
    if len(shape) != 4:
        raise InputError(f"patch scores need a convolutional autoencoder (a code of "
                         f"(h, w, C) maps), got a code of shape {tuple(shape[1:])}.")
    height, width = shape[1:3]
    while max(height, width) > MAX_GRID_SIDE and height % 2 == 0 and width % 2 == 0:
        height, width = height // 2, width // 2
    return height, width


class PatchFeatures:
    """Images to patch features, ``(N, h, w, C)`` float64, in TensorFlow ops.

    Float64 from the extractor's outputs on: a Gaussian's whitening
    multiplies features by the inverse of their spread, so a rounding of the
    per-image normalisation (a sum over the whole map, added up in another
    order by onnxruntime) would otherwise part the exported scores from
    these by more than float32's own precision.

    Args:
        extractor: a Keras model from images to one or more feature maps
            (``feature_extractor``).
        grid: ``(h, w)`` of the patch grid; every map is average-pooled (or
            resized, bilinear, where the sizes do not divide) to it.
            Default: the smallest map's grid.
        normalise: divide each map by its mean magnitude over the image
            (all positions and channels), so that brightness and contrast
            over the whole image do not count as anomalies.
        neighbourhood: each position joins the features of its
            ``neighbourhood`` x ``neighbourhood`` neighbours (borders
            mirrored); 1 keeps positions alone.

    Example::

        features = PatchFeatures(feature_extractor(autoencoder))
        features.of(images).shape          # (N, h, w, C), NumPy
    """

    def __init__(self, extractor, grid=None, normalise=True, neighbourhood=NEIGHBOURHOOD):
        self.extractor = extractor
        shapes = [tuple(output.shape[1:]) for output in _outputs(extractor)]
        if any(len(shape) != 3 or None in shape[:2] for shape in shapes):
            raise InputError(f"a feature extractor gives (N, h, w, C) maps of a fixed "
                             f"size, got outputs of shapes {shapes}.")
        if grid is None:
            grid = min((shape[:2] for shape in shapes), key=lambda s: s[0] * s[1])
        self.grid = tuple(int(side) for side in grid)
        self.normalise = bool(normalise)
        self.neighbourhood = positive_int("neighbourhood", neighbourhood)
        if self.neighbourhood % 2 == 0:
            raise InputError(f"neighbourhood must be odd, got {neighbourhood}.")
        self.channels = sum(shape[2] for shape in shapes) * self.neighbourhood ** 2
        # the most numbers one image's features take on the way
        self.values_per_image = max(int(np.prod(self.grid)) * self.channels,
                                    *(int(np.prod(shape)) for shape in shapes))

    @property
    def input_shape(self):
        """``(H, W, C)`` of the images the extractor takes."""
        return tuple(self.extractor.input_shape[1:])

    def __call__(self, images):
        """``(N, h, w, C)`` float64 tensor of float32 images in [0, 1]."""
        import tensorflow as tf

        maps = self.extractor(images, training=False)
        maps = maps if isinstance(maps, (list, tuple)) else [maps]
        maps = [_to_grid(tf.cast(m, tf.float64), self.grid) for m in maps]
        if self.normalise:
            # one factor per image and map, not per channel: a channel that
            # is nearly silent on normal images would be divided by ~0
            maps = [m / (tf.reduce_mean(tf.abs(m), axis=[1, 2, 3], keepdims=True)
                         + MAGNITUDE_EPSILON) for m in maps]
        return _neighbours(tf.concat(maps, -1), self.neighbourhood)

    def of(self, images, batch_size=64):
        """The features of images (uint8 or float in [0, 1]) as a float64
        NumPy array, computed in batches."""
        from keras_ae.runtime.pixels import to_unit_float

        images = to_unit_float(np.asarray(images))
        if images.ndim == 3:
            images = images[..., np.newaxis]
        batch_size = positive_int("batch_size", batch_size)
        return np.concatenate([np.asarray(self(images[start:start + batch_size]))
                               for start in range(0, len(images), batch_size)])

    def settings(self):
        """The JSON-able description."""
        return {"feature_layers": [output.name if hasattr(output, "name") else str(output)
                                   for output in self.extractor.output_names]
                if hasattr(self.extractor, "output_names") else None,
                "grid": list(self.grid), "normalise": self.normalise,
                "neighbourhood": self.neighbourhood, "dimensions": self.channels}


def _outputs(model):
    outputs = model.outputs
    return outputs if isinstance(outputs, (list, tuple)) else [outputs]


def _to_grid(maps, grid):
    """``maps`` averaged over windows down to ``grid`` where its size is a
    multiple of it (a reshape and a mean, which run in float64 everywhere),
    resized (bilinear, float32) otherwise."""
    import tensorflow as tf

    height, width, channels = maps.shape[1:4]
    if (height, width) == grid:
        return maps
    if height % grid[0] == 0 and width % grid[1] == 0:
        windows = tf.reshape(maps, [-1, grid[0], height // grid[0], grid[1],
                                    width // grid[1], channels])
        return tf.reduce_mean(windows, axis=[2, 4])
    resized = tf.image.resize(tf.cast(maps, tf.float32), grid, "bilinear")
    return tf.cast(resized, maps.dtype)


def _neighbours(maps, size):
    """Each position's features joined with its ``size`` x ``size``
    neighbours' (borders mirrored): slices of a padded map, concatenated,
    which every ONNX runtime runs as they are."""
    import tensorflow as tf

    if size == 1:
        return maps
    half = size // 2
    height, width = maps.shape[1:3]
    if min(height, width) <= half:
        return maps  # too small a grid to mirror; positions stay alone
    padded = tf.pad(maps, [[0, 0], [half, half], [half, half], [0, 0]], "REFLECT")
    return tf.concat([padded[:, row:row + height, column:column + width]
                      for row in range(size) for column in range(size)], -1)


def greedy_coreset(vectors, size, seed=0, projection=PROJECTION):
    """Indices of ``size`` rows of ``vectors`` chosen greedily so that every
    row is near a chosen one: each step takes the row farthest from those
    chosen so far (the k-center greedy of PatchCore, distances computed
    after a seeded random projection to ``projection`` dimensions).

    Example: three clusters on a line; three picks take one from each.

    >>> points = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [10.0]])
    >>> sorted((points[greedy_coreset(points, 3)][:, 0] // 5).tolist())
    [0.0, 1.0, 2.0]
    """
    vectors = np.asarray(vectors, np.float32)
    size = min(positive_int("size", size), len(vectors))
    rng = np.random.default_rng(seed)
    if vectors.shape[1] > projection:
        vectors = vectors @ rng.normal(0, 1 / np.sqrt(projection),
                                       (vectors.shape[1], projection)).astype(np.float32)
    chosen = [int(rng.integers(len(vectors)))]
    distance = np.linalg.norm(vectors - vectors[chosen[0]], axis=1)
    for _ in range(size - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(vectors - vectors[chosen[-1]], axis=1))
    return np.array(chosen)


def _check_features(features, channels=None):
    features = np.asarray(features, np.float32)
    if features.ndim != 4 or not len(features) or (
            channels is not None and features.shape[-1] != channels):
        expected = f"(N, h, w, {channels})" if channels else "(N, h, w, C)"
        raise InputError(f"features must be {expected} of some images, got shape "
                         f"{features.shape}.")
    return features


def fit_patch_scorers(features, images, *, gaussian=True, bank=True,
                      bank_share=DEFAULT_BANK_SHARE, max_bank=MAX_BANK,
                      max_candidates=MAX_CANDIDATES, seed=0, batch_size=64):
    """``(PatchGaussians or None, PatchMemoryBank or None)`` fitted to the
    patches of normal ``images``, reading them a batch at a time: the
    Gaussians keep only their dimensions of each batch, the bank only its
    share of the candidates, so memory holds one batch's full features.
    """
    rng = np.random.default_rng(seed)
    dimensions = _gaussian_dimensions(features.channels, MAX_GAUSSIAN_DIMS, seed)
    count = len(images)
    total = count * int(np.prod(features.grid))
    draw = min(1.0, max_candidates / total)
    kept, candidates = [], []
    for start in range(0, count, batch_size):
        batch = features.of(images[start:start + batch_size], batch_size)
        if gaussian:  # float32 kept: half the memory, and precise enough to fit
            kept.append(batch[..., dimensions].astype(np.float32))
        if bank:
            flat = batch.reshape(-1, batch.shape[-1])
            chosen = rng.random(len(flat)) < draw
            candidates.append(flat[chosen].astype(np.float32))
    fitted_gaussian = PatchGaussians.fit(np.concatenate(kept), dimensions=dimensions) \
        if gaussian else None
    fitted_bank = None
    if bank:
        size = min(max(1, int(round(bank_share * total))), max_bank)
        fitted_bank = PatchMemoryBank.of_candidates(np.concatenate(candidates), size, seed)
    return fitted_gaussian, fitted_bank


def _gaussian_dimensions(channels, max_dimensions, seed):
    """All ``channels``, or PaDiM's seeded random ``max_dimensions`` of them."""
    if channels <= max_dimensions:
        return np.arange(channels)
    return np.sort(np.random.default_rng(seed).choice(channels, max_dimensions,
                                                      replace=False))


class PatchMemoryBank:
    """Nearest-neighbour distance of each patch to a bank of normal patches.

    Attributes:
        bank: ``(M, C)`` float32, the normal patches kept.
    """

    def __init__(self, bank):
        self.bank = np.asarray(bank, np.float32)
        self.values_per_patch = len(self.bank)  # a distance to each bank patch

    @classmethod
    def fit(cls, features, share=DEFAULT_BANK_SHARE, max_bank=MAX_BANK,
            max_candidates=MAX_CANDIDATES, seed=0):
        """A bank of the patches of normal images.

        Args:
            features: ``(N, h, w, C)`` patch features of normal images.
            share: the share of all their patches the bank keeps (greedy
                coreset); 1 keeps them all.
            max_bank: the most patches kept.
            max_candidates: the coreset chooses among at most this many
                patches, drawn at random (its cost grows with both).
            seed: seeds the draw and the coreset.
        """
        features = _check_features(features)
        if not 0 < share <= 1:
            raise InputError(f"share must be in (0, 1], got {share!r}.")
        patches = features.reshape(-1, features.shape[-1])
        size = min(max(1, int(round(share * len(patches)))), max_bank)
        if size < len(patches) and len(patches) > max_candidates:
            rng = np.random.default_rng(seed)
            patches = patches[np.sort(rng.choice(len(patches), max_candidates, replace=False))]
        return cls.of_candidates(patches, size, seed)

    @classmethod
    def of_candidates(cls, candidates, size, seed=0):
        """A bank of ``size`` of the ``(M, C)`` ``candidates`` chosen by
        greedy coreset (all of them when ``size >= M``)."""
        if size >= len(candidates):
            return cls(candidates)
        return cls(candidates[greedy_coreset(candidates, size, seed)])

    def map(self, features):
        """``(N, h, w)`` float64 tensor: each patch's distance to its
        nearest bank patch."""
        import tensorflow as tf

        features = tf.cast(features, tf.float64)
        shape = tf.shape(features)
        # float64: |a|^2 - 2ab + |b|^2 cancels for a patch near a bank patch,
        # and float32 would leave TensorFlow and onnxruntime apart there
        patches = tf.reshape(features, [-1, self.bank.shape[1]])
        bank = self.bank.astype(np.float64)
        squared = (tf.reduce_sum(patches * patches, 1, keepdims=True)
                   - 2.0 * tf.matmul(patches, tf.constant(bank), transpose_b=True)
                   + tf.constant(np.sum(bank ** 2, 1))[None])
        nearest = tf.sqrt(tf.maximum(tf.reduce_min(squared, 1), 0.0))
        return tf.reshape(nearest, shape[:3])

    def settings(self):
        return {"bank": len(self.bank)}


class PatchGaussians:
    """A Gaussian per grid position; a patch's score is its Mahalanobis
    distance from its position's Gaussian.

    Attributes:
        dimensions: the feature dimensions kept (all, or a seeded random
            ``MAX_GAUSSIAN_DIMS`` of them, as PaDiM does).
        mean: ``(h, w, D)`` float32.
        precision: ``(h, w, D, D)`` float32, inverse Ledoit-Wolf covariances
            (plus ``COVARIANCE_FLOOR`` on the diagonal).
    """

    def __init__(self, dimensions, mean, precision):
        self.dimensions = np.asarray(dimensions, np.int64)
        self.mean = np.asarray(mean, np.float32)
        self.precision = np.asarray(precision, np.float32)
        # precision = L L^T; d P d^T = |d L|^2, a sum of squares, without
        # the cancellation of d P d^T's terms
        self._whitening = np.linalg.cholesky(np.asarray(precision, np.float64))
        self._mean = np.asarray(mean, np.float64)

    @classmethod
    def fit(cls, features, max_dimensions=MAX_GAUSSIAN_DIMS, seed=0, dimensions=None):
        """The Gaussians of the patches of normal images.

        Args:
            features: ``(N, h, w, C)`` patch features of normal images, at
                least 2.
            max_dimensions: above this many feature dimensions a seeded
                random choice of them is kept.
            seed: seeds that choice.
            dimensions: the dimensions ``features`` already holds, chosen
                before (``fit_patch_scorers``), instead of choosing.
        """
        from sklearn.covariance import LedoitWolf

        features = _check_features(features)
        if len(features) < 2:
            raise InputError(f"a Gaussian per position needs at least 2 normal "
                             f"images, got {len(features)}.")
        if dimensions is None:
            dimensions = _gaussian_dimensions(features.shape[-1], max_dimensions, seed)
            features = features[..., dimensions]
        features = features.astype(np.float64)
        height, width, count = features.shape[1], features.shape[2], len(dimensions)
        mean = np.empty((height, width, count))
        precision = np.empty((height, width, count, count))
        for row in range(height):
            for column in range(width):
                gaussian = LedoitWolf().fit(features[:, row, column])
                mean[row, column] = gaussian.location_
                precision[row, column] = np.linalg.inv(
                    gaussian.covariance_ + COVARIANCE_FLOOR * np.eye(count))
        return cls(dimensions, mean, precision)

    def map(self, features):
        """``(N, h, w)`` float64 tensor of Mahalanobis distances."""
        import tensorflow as tf

        features = tf.cast(features, tf.float64)
        if len(self.dimensions) != features.shape[-1] or np.any(
                self.dimensions != np.arange(len(self.dimensions))):
            features = tf.gather(features, self.dimensions, axis=-1)
        height, width, count = self.mean.shape
        centred = features - tf.constant(self._mean)[None]
        # positions first: (h * w, N, D) @ (h * w, D, D), one batched product
        by_position = tf.reshape(tf.transpose(centred, [1, 2, 0, 3]),
                                 [height * width, -1, count])
        whitened = tf.matmul(by_position, tf.constant(
            self._whitening.reshape(height * width, count, count)))
        distances = tf.sqrt(tf.reduce_sum(whitened * whitened, -1))
        return tf.transpose(tf.reshape(distances, [height, width, -1]), [2, 0, 1])

    def settings(self):
        return {"gaussian_dimensions": len(self.dimensions)}
