"""The map over its image that predict --anomaly draws with Pillow alone."""

import numpy as np
import pytest
from PIL import Image

from keras_ae.runtime import save_overlay
from keras_ae.runtime.overlays import MIN_HEIGHT, TITLE_HEIGHT


def test_the_hot_spot_is_yellow_where_the_map_peaks_and_the_image_is_beside_it(tmp_path):
    image = np.zeros((28, 28), np.uint8)
    image[:, 14:] = 200  # right half bright
    heat = np.zeros((28, 28))
    heat[5, 20] = 1.0  # one hot pixel
    path = save_overlay(image, heat, tmp_path / "map.png", score=0.3, threshold=0.2)
    with Image.open(path) as picture:
        pixels = np.asarray(picture.convert("RGB")).astype(int)
    scale = -(-MIN_HEIGHT // 28)
    assert pixels.shape == (28 * scale + TITLE_HEIGHT, 2 * 28 * scale + 4, 3)
    panel = lambda column, row, x: pixels[TITLE_HEIGHT + row * scale + scale // 2,  # noqa: E731
                                          x + column * scale + scale // 2]
    assert tuple(panel(3, 3, 0)) == (0, 0, 0) and tuple(panel(20, 3, 0)) == (200, 200, 200)
    right = 28 * scale + 4
    assert tuple(panel(20, 5, right)) == (255, 255, 0)  # the peak: yellow, opaque
    cold = panel(20, 20, right)  # no anomaly: the dimmed image shows through
    assert cold[0] == cold[1] == cold[2] and 80 < cold[0] < 130
    assert pixels[:TITLE_HEIGHT].min() < 100  # the title is written


def test_a_map_of_another_size_is_a_bug_not_a_picture(tmp_path):
    with pytest.raises(ValueError, match=r"the map is \(4, 4\), its image \(8, 8\)"):
        save_overlay(np.zeros((8, 8)), np.zeros((4, 4)), tmp_path / "x.png", score=0)
