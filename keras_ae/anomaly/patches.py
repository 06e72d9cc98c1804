"""Patch-level anomaly scores: how unlike every normal patch each patch of
an image is (PatchCore's idea, on the autoencoder's own encoder or any Keras
feature extractor).

A global code describes a whole image; a thin crack on a part changes it
little. Here every position of an encoder feature map is a patch: features
from one or more encoder stages, resized to the first one's grid and
averaged over each position's 3x3 neighbourhood, are collected from the
normal images into a memory bank, thinned by greedy coreset selection (the
patches that cover the others best, so it fits in memory and in an ONNX
file). A patch's score is its distance to the nearest patch of the bank;
an image's, its largest patch score; its map, the patch scores.

This module is the scorer's first part (issue 24): the features, the
coreset and the nearest-neighbour scorer, in NumPy and Keras. It is not yet
an ``AnomalyDetector`` score nor exported to ONNX.

Example::

    extractor = feature_extractor(autoencoder)            # its encoder's stages
    scorer = PatchScorer.fit(patch_features(extractor, normal_images))
    maps = scorer.maps(patch_features(extractor, new_images))   # (N, h, w)
    scores = maps.max(axis=(1, 2))
"""

import numpy as np

from keras_ae.errors import InputError, positive_int

DEFAULT_BANK_SHARE = 0.1  # PatchCore's coreset share of all normal patches
MAX_BANK = 5000  # patches kept at most, whatever the share
MAX_CANDIDATES = 100000  # patches the coreset chooses from (a seeded random draw)
PROJECTION = 128  # dimensions the coreset's distances are computed in


def feature_extractor(model, layers=None):
    """A Keras model from images to the feature maps patches are made of.

    Args:
        model: a keras_ae autoencoder (its nested ``encoder``), or any Keras
            model whose outputs are ``(N, h, w, C)`` feature maps (a
            ``keras.applications`` network cut where you like, say), used
            as it is.
        layers: names of the encoder's layers to take; by default each
            stage's pooling output but the last, and the last stage's last
            convolution (the code's own grid is too coarse for small
            defects).

    Returns:
        A ``keras.Model`` with one or more feature-map outputs.
    """
    import keras

    try:
        encoder = model.get_layer("encoder")
    except ValueError:
        return model  # a feature extractor already
    names = [layer.name for layer in encoder.layers]
    if layers is None:
        stages = sorted({name.split("_")[1] for name in names
                         if name.startswith("encoder_stage")})
        layers = [f"encoder_{stage}_pool" for stage in stages[:-1]]
        last = [name for name in names if name.startswith(f"encoder_{stages[-1]}_conv")]
        layers += last[-1:]
    missing = [name for name in layers if name not in names]
    if missing:
        raise InputError(f"the encoder has no layer {missing[0]!r}; its layers are "
                         f"{', '.join(names)}.")
    outputs = []
    for name in layers:
        output = encoder.get_layer(name).output
        outputs.append(output[0] if isinstance(output, (list, tuple)) else output)
    return keras.Model(encoder.input, outputs, name="patch_features")


def patch_features(extractor, images, batch_size=64):
    """``(N, h, w, C)`` float32 patch features of ``images``: every output
    of ``extractor`` resized (bilinear) to the first one's grid,
    concatenated, and averaged over each position's 3x3 neighbourhood."""
    import tensorflow as tf

    from keras_ae.runtime.pixels import to_unit_float

    images = to_unit_float(np.asarray(images))
    if images.ndim == 3:
        images = images[..., np.newaxis]
    batches = []
    for start in range(0, len(images), positive_int("batch_size", batch_size)):
        maps = extractor(images[start:start + batch_size], training=False)
        maps = maps if isinstance(maps, (list, tuple)) else [maps]
        grid = tuple(maps[0].shape[1:3])
        joined = tf.concat([tf.cast(m if tuple(m.shape[1:3]) == grid else
                                    tf.image.resize(m, grid, "bilinear"), tf.float32)
                            for m in maps], axis=-1)
        batches.append(tf.nn.avg_pool2d(joined, 3, 1, "SAME").numpy())
    return np.concatenate(batches)


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


class PatchScorer:
    """Nearest-neighbour distance of each patch to a bank of normal patches.

    Attributes:
        bank: ``(M, C)`` float32, the normal patches kept.
    """

    def __init__(self, bank):
        self.bank = np.asarray(bank, np.float32)

    @classmethod
    def fit(cls, features, share=DEFAULT_BANK_SHARE, max_bank=MAX_BANK,
            max_candidates=MAX_CANDIDATES, seed=0):
        """A scorer over the patches of normal images.

        Args:
            features: ``(N, h, w, C)`` patch features of normal images.
            share: the share of all their patches the bank keeps (greedy
                coreset); 1 keeps them all.
            max_bank: the most patches kept.
            max_candidates: the coreset chooses among at most this many
                patches, drawn at random (its cost grows with both).
            seed: seeds the draw and the coreset.
        """
        features = np.asarray(features, np.float32)
        if features.ndim != 4 or not len(features):
            raise InputError(f"features must be (N, h, w, C) of some images, got shape "
                             f"{features.shape}.")
        if not 0 < share <= 1:
            raise InputError(f"share must be in (0, 1], got {share!r}.")
        patches = features.reshape(-1, features.shape[-1])
        size = min(max(1, int(round(share * len(patches)))), max_bank)
        if size >= len(patches):
            return cls(patches)
        if len(patches) > max_candidates:
            rng = np.random.default_rng(seed)
            patches = patches[np.sort(rng.choice(len(patches), max_candidates, replace=False))]
        return cls(patches[greedy_coreset(patches, size, seed)])

    def maps(self, features, chunk=4096):
        """``(N, h, w)`` distance of each patch to its nearest bank patch."""
        features = np.asarray(features, np.float32)
        if features.ndim != 4 or features.shape[-1] != self.bank.shape[1]:
            raise InputError(f"features must be (N, h, w, {self.bank.shape[1]}), got shape "
                             f"{features.shape}.")
        patches = features.reshape(-1, features.shape[-1])
        bank_norms = np.sum(self.bank ** 2, axis=1)
        nearest = np.empty(len(patches), np.float32)
        for start in range(0, len(patches), chunk):
            part = patches[start:start + chunk]
            squared = (np.sum(part ** 2, axis=1)[:, None] + bank_norms[None]
                       - 2 * part @ self.bank.T)
            nearest[start:start + chunk] = np.sqrt(np.maximum(squared.min(axis=1), 0))
        return nearest.reshape(features.shape[:3])

    def scores(self, features):
        """Each image's largest patch score."""
        return self.maps(features).max(axis=(1, 2))
