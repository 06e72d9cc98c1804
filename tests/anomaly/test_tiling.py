"""Tiles of large images: the grid, the stitching, a detector tile by tile,
and a 1024x1024 part through the command line keeping a 4-pixel line."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

import keras_ae
from keras_ae.anomaly.detector import AnomalyDetector
from keras_ae.anomaly.tiling import TiledDetector
from keras_ae.errors import InputError
from keras_ae.runtime import tiles

from conftest import smooth_images


def test_tiles_cover_every_pixel_and_the_last_is_flush_with_the_edge():
    # 96 apart; 864 + 128 = 992 leaves 32 pixels, so a last tile at 1024 - 128
    assert tiles.tile_origins(1024, 128, 32) == [0, 96, 192, 288, 384, 480, 576, 672,
                                                 768, 864, 896]
    assert tiles.tile_origins(128, 128, 32) == [0]
    assert tiles.tile_origins(12, 4, 0) == [0, 4, 8]
    with pytest.raises(InputError, match="an image side of 100 pixels is shorter than "
                                         r"the tile \(128\)"):
        tiles.tile_origins(100, 128, 0)
    with pytest.raises(InputError, match=r"tile_overlap must be an int in \[0, 8\)"):
        tiles.check_tiling(8, 8)


def test_cut_then_stitch_gives_the_image_back_and_overlaps_average():
    image = np.arange(7 * 9, dtype=np.float32).reshape(7, 9, 1)
    cut, origins = tiles.cut_tiles(image, 4, 2)
    assert cut.shape == (3 * 4, 4, 4, 1) and origins[:3] == [(0, 0), (0, 2), (0, 4)]
    np.testing.assert_array_equal(tiles.stitch(cut[..., 0], origins, image.shape),
                                  image[..., 0])
    ones = np.ones((len(cut), 4, 4))
    ones[0] = 3.0  # the first tile says 3 where it alone covers, 2 where it meets another
    stitched = tiles.stitch(ones, origins, image.shape)
    assert stitched[0, 0] == 3.0 and stitched[0, 2] == 2.0 and stitched[6, 8] == 1.0


def test_a_tiled_detector_scores_whole_images_and_maps_them_at_their_size():
    keras.utils.set_random_seed(0)
    model = keras_ae.build_conv_autoencoder((32, 32, 1), filters=(8, 4), intensity="sqrt")
    normal = smooth_images(200, size=32, seed=0)
    detector = AnomalyDetector.fit(model, normal, score="patch_gaussian", smoothing=0)
    tiled = TiledDetector(detector, tile=32, overlap=8, image_shape=(80, 96, 1))
    wholes = np.full((4, 80, 96, 1), 0.5, np.float32)
    wholes[:, :, :, 0] += 0.3 * np.sin(np.linspace(0, 3, 96))[None, None]
    wholes[2:, 50:54, 60:64] = 0.0  # a dark 4x4 spot on the last two
    scores, maps = tiled.scores_and_maps(wholes)
    assert maps.shape == (4, 80, 96) and scores.shape == (4,)
    assert scores[2:].min() > scores[:2].max()
    assert np.unravel_index(maps[3].argmax(), (80, 96)) in {
        (row, column) for row in range(48, 56) for column in range(58, 66)}
    assert tiled.input_shape == (80, 96, 1) and tiled.describe()["tile_overlap"] == 8
    # images of several sizes: a list of maps
    scores, maps = tiled.scores_and_maps([wholes[0], wholes[0, :40, :64]])
    assert [m.shape for m in maps] == [(80, 96), (40, 64)]
    with pytest.raises(InputError, match="the detector's model takes 32x32 images; tiles "
                                         "of 64 pixels do not fit it"):
        TiledDetector(detector, tile=64)


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.squeeze(array) * 255).astype(np.uint8)).save(path)


@pytest.mark.slow  # train on tiles and detect on 1024x1024 images end to end
def test_a_4_pixel_line_on_a_1024_pixel_part_stays_visible_through_tiling(tmp_path, capsys):
    from keras_ae.cli import commands as cli

    root = tmp_path / "parts"
    rng = np.random.default_rng(0)
    parts = smooth_images(9, size=1024, seed=4) * 0.6 + 0.2
    parts += rng.normal(0, 0.02, parts.shape).astype(np.float32)  # a little grain
    for index in range(5):
        write_png(root / "train" / "good" / f"{index}.png", parts[index])
    for index in range(5, 7):
        write_png(root / "test" / "good" / f"{index}.png", parts[index])
    mask = np.zeros((1024, 1024))
    mask[600:604, 200:800] = 1.0  # 4 pixels wide, 600 long
    for index in range(7, 9):
        write_png(root / "test" / "line" / f"{index}.png",
                  np.where(mask[..., None] > 0, 0.05, parts[index]))
        write_png(root / "ground_truth" / "line" / f"{index}_mask.png", mask)
    run_dir, out = tmp_path / "run", tmp_path / "anomaly"
    assert cli.main(["train", "--images", str(root), "--tile", "128", "--tile-overlap",
                     "32", "--validation-split", "0.2", "--filters", "8,4",
                     "--epochs", "2", "--batch-size", "32", "--output", str(run_dir)]) == 0
    assert "tiles: 128x128, overlap 32: 121 per image, 484 for training" in (
        capsys.readouterr().out)
    # the run recorded the tiling: anomaly tiles the whole test images alike
    assert cli.main(["anomaly", str(run_dir / "model.keras"), "--images", str(root),
                     "--validation-split", "0.2", "--output", str(out), "--no-export"]) == 0
    assert "detector.onnx not written: not asked for" in capsys.readouterr().out
    result = json.loads((out / "anomaly.json").read_text())
    assert not (out / "detector.onnx").exists() and "skipped" in result["export"]
    assert result["detector"]["tile"] == 128 and result["detector"]["score"] == "patch_gaussian+knn"
    assert result["roc_auc"] == 1.0
    line = result["defect_folder"]["kinds"]["line"]["pixel"]
    assert line["pixel_roc_auc"] > 0.95, line  # the line itself, at 1024x1024
    with Image.open(out / "anomaly_maps.png") as picture:
        assert picture.size[0] > 0
