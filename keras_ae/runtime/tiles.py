"""Overlapping tiles of a large image, and maps stitched back from them.

A 1024x1024 part shrunk to a 128x128 model loses a defect of a few pixels;
cut into 128x128 tiles it keeps every pixel. ``tile_origins`` places tiles
``tile - overlap`` apart, the last flush with the far edge, so every pixel is
covered and no tile hangs over; ``cut_tiles`` cuts them; ``stitch`` puts
per-tile maps back, averaging where tiles overlap. NumPy only: training
(``keras_ae.data``), the detector (``keras_ae.anomaly.tiling``) and serving
cut alike.

Example:

>>> tile_origins(10, 4, 1)     # starts of 4-pixel tiles, 3 apart, last at 6
[0, 3, 6]
"""

import numpy as np

from keras_ae.errors import InputError, positive_int


def check_tiling(tile, overlap):
    """``(tile, overlap)`` as ints; a one-line error unless ``tile >= 1``
    and ``0 <= overlap < tile``."""
    tile = positive_int("tile", tile)
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) \
            or not 0 <= overlap < tile:
        raise InputError(f"tile_overlap must be an int in [0, {tile}) (under the tile's "
                         f"side), got {overlap!r}.")
    return tile, int(overlap)


def tile_origins(length, tile, overlap):
    """Where tiles of ``tile`` pixels start along a side of ``length``.

    Raises:
        ValueError: for a side shorter than the tile.
    """
    tile, overlap = check_tiling(tile, overlap)
    if length < tile:
        raise InputError(f"an image side of {length} pixels is shorter than the tile "
                         f"({tile}); give images at least the tile's size, or a "
                         f"smaller tile.")
    stride = tile - overlap
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)  # flush with the far edge
    return starts


def grid_of(shape, tile, overlap):
    """``[(top, left), ...]`` of the tiles of an image of ``shape`` (H, W, ...),
    row by row."""
    return [(top, left) for top in tile_origins(shape[0], tile, overlap)
            for left in tile_origins(shape[1], tile, overlap)]


def cut_tiles(image, tile, overlap):
    """``(tiles (T, tile, tile, C), origins)`` of one ``(H, W, C)`` image."""
    image = np.asarray(image)
    origins = grid_of(image.shape, tile, overlap)
    return (np.stack([image[top:top + tile, left:left + tile] for top, left in origins]),
            origins)


def stitch(maps, origins, shape):
    """One ``shape[:2]`` float32 map from per-tile ``(T, tile, tile)`` maps at
    ``origins``: where tiles overlap, their values' mean.

    Example: two 1x2 tiles over a 1x3 row overlap in the middle pixel.

    >>> stitch(np.array([[[1.0, 3.0]], [[5.0, 7.0]]]), [(0, 0), (0, 1)], (1, 3)).tolist()
    [[1.0, 4.0, 7.0]]
    """
    maps = np.asarray(maps, np.float32)
    height, width = maps.shape[1:3]
    total = np.zeros(shape[:2], np.float64)
    count = np.zeros(shape[:2], np.float64)
    for tile_map, (top, left) in zip(maps, origins):
        total[top:top + height, left:left + width] += tile_map
        count[top:top + height, left:left + width] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)
