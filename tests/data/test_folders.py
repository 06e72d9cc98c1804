"""keras_ae.data.sources.from_directory: layouts, formats, sizes, colour, bad files, order."""

import os
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import keras_ae
from keras_ae.data import sources as data
from keras_ae.training import evaluation
from keras_ae.runtime import images
from conftest import load_tool, write_blob_idx


def write_pngs(folder, names, size=(8, 8), mode="L", seed=0):
    """PNGs of seeded noise at ``folder/name`` for each name; returns the paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for name in names:
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        channels = {"L": 1, "RGB": 3}[mode]
        pixels = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(path)
        paths.append(path)
    return paths


def read(folder, **options):
    return data.from_directory(folder, verbose=False, **options)


def all_images(dataset):
    """Every target image of an ``(input, target)`` pipeline, as uint8."""
    return np.round(np.concatenate(
        [y for _, y in dataset.as_numpy_iterator()]) * 255).astype(np.uint8)


def all_labels(data_, split):
    return np.concatenate([y for _, y in data_.labeled(split).as_numpy_iterator()])


# --- layouts ------------------------------------------------------------------

def test_class_folders_give_labels_in_sorted_order(tmp_path):
    write_pngs(tmp_path, [f"b/{i}.png" for i in range(6)]
               + [f"a/nested/{i}.png" for i in range(4)] + ["c/x.png"])
    found = read(tmp_path, validation_split=0, test_split=0.5, seed=3)
    assert found.class_names == ("a", "b", "c")
    assert found.source == f"images:{tmp_path}"
    assert found.num_train + found.num_test == 11 and found.num_test == 6
    labels = np.concatenate([all_labels(found, "train"), all_labels(found, "test")])
    assert sorted(labels.tolist()) == [0] * 4 + [1] * 6 + [2]


def test_a_flat_folder_has_no_labels_and_a_drawn_test_split(tmp_path):
    write_pngs(tmp_path, [f"{i:02d}.png" for i in range(20)])
    (tmp_path / "sub").mkdir()
    write_pngs(tmp_path / "sub", ["deeper.png"])  # images at any depth count
    found = read(tmp_path, test_split=0.2)
    assert (found.num_train, found.num_validation, found.num_test) == (15, 2, 4)
    assert found.class_names is None
    with pytest.raises(ValueError, match="no labels for the 'test' split.*class folders"):
        found.labeled("test")


def test_train_and_test_folders_are_used_as_given(tmp_path, capsys):
    train = write_pngs(tmp_path / "train", [f"good/{i}.png" for i in range(10)])
    test = write_pngs(tmp_path / "test", ["good/a.png", "crack/b.png", "crack/c.png"],
                      seed=1)
    write_pngs(tmp_path / "ground_truth", ["crack/b_mask.png"])
    found = data.from_directory(tmp_path, validation_split=0.2, test_split=0.5)
    assert (found.num_train, found.num_validation, found.num_test) == (8, 2, 3)
    assert found.class_names == ("crack", "good")
    expected = np.stack([np.asarray(Image.open(p)) for p in sorted(test)])[..., None]
    np.testing.assert_array_equal(all_images(found.test), expected)
    assert all_labels(found, "test").tolist() == [0, 0, 1]
    assert sorted(all_labels(found, "train").tolist()) == [1] * 8
    assert len(train) == 10
    printed = capsys.readouterr().out
    assert "train/ and test/ as given" in printed
    assert "ignored beside train/ and test/: ground_truth" in printed


def test_hidden_and_other_files_are_left_out(tmp_path, capsys):
    write_pngs(tmp_path, ["a.png", "b.png", ".hidden.png", ".cache/c.png"])
    (tmp_path / "notes.txt").write_text("x")
    found = data.from_directory(tmp_path, validation_split=0, test_split=0.5)
    assert found.num_train + found.num_test == 2
    assert "ignored 1 non-image file, e.g." in capsys.readouterr().out


# --- formats, sizes, colour ---------------------------------------------------

def test_every_format_decodes_as_pillow_reads_it(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    for name in ("a.png", "b.bmp", "c.webp", "d.jpg", "e.gif"):
        Image.fromarray(pixels).save(tmp_path / name, lossless=True, quality=95)
    frames = [Image.new("RGB", (10, 6), (30, 60, 90)), Image.new("RGB", (10, 6), "white")]
    frames[0].save(tmp_path / "f.gif", save_all=True, append_images=frames[1:])
    found = read(tmp_path, validation_split=0, test_split=0.5, color_mode="rgb")
    got = np.concatenate([all_images(found.train), all_images(found.test)])
    # The test split is drawn, so compare the images as a set.
    expected = [images.read_image(p, (6, 10, 3), None) for p in tmp_path.iterdir()]
    assert sorted(map(bytes, got)) == sorted(map(bytes, expected))
    gif = images.read_image(tmp_path / "f.gif", (6, 10, 3), None)
    assert gif.reshape(-1, 3).tolist()[0] == [30, 60, 90]  # the first frame


@pytest.mark.parametrize("resize", images.RESIZE_MODES)
@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
def test_the_pipeline_prepares_images_as_the_pillow_recipe_does(photo_folder, resize,
                                                               color_mode):
    shape = (24, 16, 3 if color_mode == "rgb" else 1)
    found = read(photo_folder, image_size=shape[:2], resize=resize,
                 color_mode=color_mode)
    assert found.image_shape == shape
    assert found.preprocessing == {"image_size": [24, 16], "resize": resize,
                                   "color_mode": color_mode}
    test_files = sorted((photo_folder / "test").rglob("*.jpg"))
    expected = np.stack([images.read_image(p, shape, resize) for p in test_files])
    difference = np.abs(all_images(found.test).astype(int) - expected)
    # At most one level, where the exact value is a half (upscaling makes
    # many) and float error decides the rounding.
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


def test_mixed_sizes_need_an_image_size(photo_folder):
    with pytest.raises(ValueError) as error:
        read(photo_folder)
    message = str(error.value)
    assert "differ in size (height x width)" in message
    assert message.count(", e.g. ") == 3 and "more sizes" in message
    assert "image_size=(H, W) (--image-size HxW)" in message


def test_images_of_one_size_keep_it(tmp_path):
    write_pngs(tmp_path, [f"{i}.png" for i in range(10)], size=(5, 7))
    found = read(tmp_path)
    assert found.image_shape == (5, 7, 1)
    assert found.preprocessing["image_size"] is None


def test_colour_auto_is_grey_only_when_every_image_is(tmp_path):
    write_pngs(tmp_path, [f"{i}.png" for i in range(9)])
    grey_rgb = np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8, 1), 3, axis=2)
    Image.fromarray(grey_rgb).save(tmp_path / "grey_as_rgb.png")
    assert read(tmp_path).image_shape == (8, 8, 1)
    write_pngs(tmp_path, ["colour.png"], mode="RGB")
    assert read(tmp_path).image_shape == (8, 8, 3)
    assert read(tmp_path, color_mode="grayscale").image_shape == (8, 8, 1)
    rgb = read(tmp_path, color_mode="rgb", validation_split=0, test_split=0.5)
    assert rgb.preprocessing["color_mode"] == "rgb"


# --- bad input ------------------------------------------------------------------

@pytest.fixture
def folder_with_bad_files(tmp_path):
    write_pngs(tmp_path, [f"ok/{i}.png" for i in range(12)])
    noise = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "ok" / "whole.jpg", quality=95)
    payload = (tmp_path / "ok" / "whole.jpg").read_bytes()
    (tmp_path / "ok" / "whole.jpg").unlink()
    (tmp_path / "ok" / "cut.jpg").write_bytes(payload[:len(payload) // 2])
    (tmp_path / "ok" / "text.png").write_text("no pixels here")
    return tmp_path


def test_unreadable_files_are_named(folder_with_bad_files):
    with pytest.raises(ValueError) as error:
        read(folder_with_bad_files)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"2 of 14 images in {folder_with_bad_files} cannot be read")
    assert "ok/cut.jpg (is not an image Pillow can read: Truncated" in message
    assert ("ok/text.png (is not a PNG, JPEG, BMP, GIF or WebP file (it starts "
            "with b'no pixel')") in message
    assert "skip_bad_images=True (--skip-bad-images)" in message


def test_unreadable_files_can_be_skipped_and_counted(folder_with_bad_files):
    found = read(folder_with_bad_files, skip_bad_images=True, validation_split=0,
                 test_split=0.25)
    assert found.num_train + found.num_test == 12
    assert sorted(Path(path).name for path, _ in found.skipped) == ["cut.jpg", "text.png"]
    assert all(reason for _, reason in found.skipped)


def test_folders_without_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder at"):
        read(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no files; expected images"):
        read(tmp_path)
    for name in ("a.tif", "b.tif", "c.txt"):
        (tmp_path / name).write_text("x")
    with pytest.raises(ValueError, match=r"holds no images .*3 other files "
                                         r"\(2 \.tif, 1 \.txt\)"):
        read(tmp_path)
    with pytest.raises(ValueError, match="is a file; expected a folder"):
        read(tmp_path / "a.tif")
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    write_pngs(tmp_path / "train", ["a.png"])
    with pytest.raises(ValueError, match="test holds no images"):
        read(tmp_path)


def test_splits_that_would_be_empty(tmp_path):
    write_pngs(tmp_path, ["a.png", "b.png", "c.png"])
    with pytest.raises(ValueError, match="test_split=0.1 of 3 images leaves 0 test"):
        read(tmp_path)


@pytest.mark.parametrize("option, message", [
    ({"color_mode": "cmyk"}, "color_mode must be one of 'auto', 'grayscale', 'rgb'"),
    ({"resize": "fit"}, "resize must be one of 'stretch', 'crop', 'pad'"),
    ({"image_size": (0, 4)}, "image_size must be"),
    ({"test_split": 0}, r"test_split must be a number in \(0, 1\)"),
    ({"cache": 3}, "cache must be 'auto', 'memory', 'none'"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
])
def test_options_are_checked_before_any_file_is_read(tmp_path, option, message):
    with pytest.raises(ValueError, match=message):
        read(tmp_path / "not even there", **option)


# --- order and caching --------------------------------------------------------

def first_epochs(found, epochs=2):
    return [all_images(found.train) for _ in range(epochs)]


@pytest.mark.parametrize("cache", ["memory", "none", "file"])
def test_order_is_seeded_and_new_each_epoch(photo_folder, tmp_path, cache):
    options = dict(image_size=(8, 8), batch_size=4,
                   cache=str(tmp_path / "cache") if cache == "file" else cache)
    one, two = first_epochs(read(photo_folder, seed=5, **options))
    again = first_epochs(read(photo_folder, seed=5, **options))
    other = first_epochs(read(photo_folder, seed=6, **options))
    np.testing.assert_array_equal(one, again[0])
    np.testing.assert_array_equal(two, again[1])
    assert not np.array_equal(one, two)  # reshuffled each epoch
    assert not np.array_equal(one, other[0])
    assert sorted(map(bytes, one)) == sorted(map(bytes, two))  # the same images


def test_streaming_reads_the_files_every_epoch(tmp_path):
    paths = write_pngs(tmp_path / "images", [f"{i}.png" for i in range(10)])
    streamed = read(tmp_path / "images", cache="none", validation_split=0, test_split=0.2)
    in_memory = read(tmp_path / "images", cache="memory", validation_split=0,
                     test_split=0.2)
    for path in paths:
        path.unlink()
    assert len(all_images(in_memory.train)) == 8
    with pytest.raises(Exception, match="No such file"):
        all_images(streamed.train)


def test_file_cache_is_named_by_content_and_survives_a_kill(photo_folder, tmp_path):
    prefix = tmp_path / "cache" / "photos"
    found = read(photo_folder, image_size=(8, 8), cache=str(prefix))
    written = sorted(p.name for p in prefix.parent.iterdir())
    assert len([n for n in written if n.endswith(".index")]) == 3  # one per split
    assert all(n.startswith("photos-") for n in written)
    # A run killed while filling a cache leaves a lock file behind.
    train_index = next(n for n in written
                       if n.startswith("photos-train-") and n.endswith(".index"))
    stem = train_index[:-len(".index")]
    for name in (f"{stem}.index", *[n for n in written if n.startswith(stem + ".data")]):
        (prefix.parent / name).unlink()
    (prefix.parent / f"{stem}_0.lockfile").write_text("")
    again = read(photo_folder, image_size=(8, 8), cache=str(prefix))
    np.testing.assert_array_equal(all_images(found.test), all_images(again.test))
    assert not (prefix.parent / f"{stem}_0.lockfile").exists()
    read(photo_folder, image_size=(12, 12), cache=str(prefix))  # other sizes, other files
    assert len(list(prefix.parent.glob("*.index"))) == 6


def test_noise_on_folder_images(tmp_path):
    write_pngs(tmp_path, [f"{i}.png" for i in range(10)])
    found = read(tmp_path, noise_factor=0.3, test_split=0.2, validation_split=0)
    noisy, clean = next(iter(found.test))
    assert not np.allclose(noisy.numpy(), clean.numpy())


# --- the folder route against the IDX route -----------------------------------

def test_png_tree_and_idx_files_give_the_same_test_mse(tmp_path):
    (tmp_path / "idx").mkdir()
    idx = write_blob_idx(tmp_path / "idx", 120, 40)
    tree = tmp_path / "tree"
    counts = load_tool("make_image_folders").write_fashion_tree(idx, tree)
    assert counts == {"train": 120, "test": 40}
    assert sorted(os.listdir(tree / "test"))[0] == "0_t-shirt_top"
    keras.utils.set_random_seed(0)
    model = keras_ae.build_conv_autoencoder(filters=(4, 2), convs_per_stage=1)
    from_files, from_idx = read(tree), data.from_idx(idx)
    assert from_files.image_shape == from_idx.image_shape == (28, 28, 1)
    assert evaluation.evaluate(model, from_files.test)["mse"] == pytest.approx(
        evaluation.evaluate(model, from_idx.test)["mse"], rel=1e-6)
    labels = data.load_idx_folder(idx)["test"][1]
    assert sorted(all_labels(from_files, "test").tolist()) == sorted(labels.tolist())
