"""A detector over images larger than its model: scored tile by tile, the
maps stitched back (``keras_ae.runtime.tiles``).

An image's score is its highest tile's, its map the tiles' maps stitched at
the image's own size, so a defect of a few pixels on a large part keeps its
size instead of being shrunk with the image.

Example::

    detector = AnomalyDetector.fit(model, tiles_of_normal_parts)   # 128x128
    tiled = TiledDetector(detector, tile=128, overlap=32)
    scores, maps = tiled.scores_and_maps(parts)        # maps at 1024x1024
"""

import numpy as np

from keras_ae.anomaly.metrics import evaluate_scores
from keras_ae.errors import InputError
from keras_ae.runtime import tiles


class TiledDetector:
    """Scores whole images through a detector of tiles.

    Args:
        detector: an ``AnomalyDetector`` (or ``OnnxAnomalyDetector``) whose
            model takes ``tile`` x ``tile`` images.
        tile, overlap: the tiles' side and how much neighbours share, in
            pixels, as the model's training tiles were cut.
        image_shape: ``(H, W, C)`` of the whole images, when they share one
            (what ``input_shape`` says; e.g. to read a defect folder).

    Attributes:
        threshold, rule: the detector's (a tile's score above it flags the
            image).
    """

    def __init__(self, detector, tile, overlap=0, image_shape=None):
        self.detector = detector
        self.tile, self.overlap = tiles.check_tiling(tile, overlap)
        side = tuple(detector.input_shape[:2])
        if side != (self.tile, self.tile):
            raise InputError(f"the detector's model takes {side[0]}x{side[1]} images; "
                             f"tiles of {self.tile} pixels do not fit it.")
        self.image_shape = None if image_shape is None else tuple(image_shape)

    @property
    def threshold(self):
        return self.detector.threshold

    @property
    def rule(self):
        return self.detector.rule

    @property
    def scoring(self):
        return self.detector.scoring

    @property
    def input_shape(self):
        """The whole images' shape (``image_shape``), else the tile's."""
        return self.image_shape or tuple(self.detector.input_shape)

    def scores_and_maps(self, images, batch_size=64):
        """``(scores (N,), maps)`` of whole images (an ``(N, H, W, C)`` array,
        or a list of ``(H, W, C)`` arrays of any sizes of at least a tile):
        maps an ``(N, H, W)`` array when the images share a size, else a
        list."""
        images = list(images) if not isinstance(images, np.ndarray) else images
        if not len(images):
            raise InputError("no images to score: got none.")
        scores, maps = [], []
        for image in images:
            image = np.asarray(image)
            if image.ndim == 2:
                image = image[..., np.newaxis]
            cut, origins = tiles.cut_tiles(image, self.tile, self.overlap)
            tile_scores, tile_maps = self.detector.scores_and_maps(cut, batch_size)
            scores.append(float(np.max(tile_scores)))
            maps.append(tiles.stitch(tile_maps, origins, image.shape))
        shapes = {m.shape for m in maps}
        return (np.array(scores, np.float32),
                np.stack(maps) if len(shapes) == 1 else maps)

    def scores(self, images, batch_size=64):
        """Each whole image's score: its highest tile's."""
        return self.scores_and_maps(images, batch_size)[0]

    def maps(self, images, batch_size=64):
        """Each whole image's map, stitched from its tiles'."""
        return self.scores_and_maps(images, batch_size)[1]

    def is_anomaly(self, images, batch_size=64):
        """``True`` for each image with a tile scoring above the threshold."""
        return self.scores(images, batch_size) > self.threshold

    def evaluate(self, images, anomalous, batch_size=64):
        """As ``AnomalyDetector.evaluate``, on whole images."""
        return evaluate_scores(self.scores(images, batch_size), anomalous, self.threshold,
                               {"rule": self.rule, "score": self.scoring.score})

    def describe(self):
        """The detector's description, and the tiling."""
        return {**self.detector.describe(), "tile": self.tile, "tile_overlap": self.overlap}

    def __repr__(self):
        return f"TiledDetector({self.detector!r}, tile={self.tile}, overlap={self.overlap})"
