"""Pictures of maps: the colour scale shared by all, or each its own."""

import numpy as np
import pytest
from PIL import Image

from keras_ae.anomaly.pictures import save_map_overlays


def test_maps_drawn_on_one_scale_or_each_on_its_own(tmp_path):
    images = np.full((2, 16, 16, 1), 0.5, np.float32)
    maps = np.zeros((2, 16, 16))
    maps[0, 4:8, 4:8] = 100.0  # a large defect
    maps[1, 10, 2:14] = 1.0    # a faint line
    shared = save_map_overlays(images, maps, [5.0, 1.0], tmp_path / "shared.png")
    each = save_map_overlays(images, maps, [5.0, 1.0], tmp_path / "each.png", scale="each")
    with Image.open(shared) as one, Image.open(each) as other:
        # the shared scale has a colour bar, so the picture is wider
        assert one.size[0] > 0 and other.size[0] > 0
        assert np.asarray(one).shape != np.asarray(other).shape or \
            not np.array_equal(np.asarray(one), np.asarray(other))
    with pytest.raises(ValueError, match="scale must be 'shared' or 'each', got 'log'"):
        save_map_overlays(images, maps, [5.0, 1.0], tmp_path / "bad.png", scale="log")
