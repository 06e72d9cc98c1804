"""The command line on your own images: --images for train, tune, features,
cluster, anomaly and generate; export, and predict --resize on a big photo."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_ae.cli import commands as cli
from keras_ae.cli import quiet

# slow: whole commands on folders of photos (`pytest -m "not slow"` leaves them out)
pytestmark = pytest.mark.slow

TINY = ["--filters", "4,2", "--convs-per-stage", "1"]


def big_photo():
    """scikit-learn's china.jpg: 427x640 RGB."""
    import sklearn.datasets

    return str(Path(sklearn.datasets.__file__).parent / "images" / "china.jpg")


@pytest.fixture(scope="module")
def run(photo_folder, tmp_path_factory):
    """`keras-ae train --images ... --image-size 32x32 --color rgb`, 1 epoch."""
    out = tmp_path_factory.mktemp("runs") / "photos"
    assert cli.main(["train", "--images", str(photo_folder), "--image-size", "32x32",
                     "--color", "rgb", "--epochs", "1", "--batch-size", "8", *TINY,
                     "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def exported(run):
    folder = run.parent / "exported"
    assert cli.main(["export", str(run / "model.keras"), "--output", str(folder),
                     "--formats", "onnx"]) == 0
    return folder


def test_train_on_a_folder_of_mixed_size_jpegs(run, photo_folder):
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"mse", "psnr", "ssim"}
    assert metrics["data"]["source"] == f"images:{photo_folder}"
    assert metrics["data"]["class_names"] == ["china", "flower"]
    assert metrics["data"]["images"] == {"train": 16, "validation": 2, "test": 6}
    assert metrics["preprocessing"] == {"image_size": [32, 32], "resize": "stretch",
                                        "color_mode": "rgb"}
    settings = json.loads((run / "run.json").read_text())
    assert settings["data"]["images"] == str(photo_folder)
    assert settings["data"]["image_size"] == [32, 32]
    assert settings["data"]["color_mode"] == "rgb"  # resolved from "auto"
    with Image.open(run / "reconstructions.png") as picture:
        pixels = np.asarray(picture.convert("RGB")).astype(int)
    assert np.abs(pixels[..., 0] - pixels[..., 2]).max() > 40  # drawn in colour


def test_a_resumed_run_must_read_the_images_the_same_way(run, photo_folder, capsys):
    assert cli.main(["train", "--images", str(photo_folder), "--image-size", "24x24",
                     "--color", "rgb", "--epochs", "1", *TINY,
                     "--output", str(run)]) == 2
    error = capsys.readouterr().err
    assert "holds a different run" in error and "images" in error


def test_export_and_predict_a_big_photo(exported, tmp_path, capsys):
    card = json.loads((exported / "model_card.json").read_text())
    assert card["preprocessing"]["resize"] == "stretch"
    assert card["data"]["class_names"] == ["china", "flower"]
    assert cli.main(["predict", str(exported / "model.onnx"), big_photo(),
                     "--resize", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "resized to 32x32 by 'stretch' (as the model's training images were)" in printed
    with Image.open(tmp_path / "china_reconstruction.png") as written:
        assert written.size == (32, 32) and written.mode == "RGB"
    assert cli.main(["predict", str(exported / "model.onnx"), big_photo(),
                     "--output", str(tmp_path / "again")]) == 2
    assert "is 427x640 (height x width); the model takes 32x32" in capsys.readouterr().err


def test_features_cluster_and_anomaly_on_class_folders(run, exported, photo_folder,
                                                       tmp_path, capsys):
    images = ["--images", str(photo_folder)]  # read as the model takes images
    assert cli.main(["features", str(run / "model.keras"), *images,
                     "--train-images", "16", "--output", str(tmp_path)]) == 0
    features = json.loads((tmp_path / "features.json").read_text())
    assert features["codes"]["train_images"] == 16
    assert cli.main(["cluster", str(exported / "model.onnx"), *images,
                     "--output", str(tmp_path / "cluster")]) == 0
    assert json.loads((tmp_path / "cluster" / "cluster.json").read_text())[
        "codes"]["clusters"] == 2
    assert cli.main(["anomaly", str(run / "model.keras"), *images, "--validation-split",
                     "0.5", "--anomaly-classes", "flower", "--output",
                     str(tmp_path / "anomaly")]) == 0
    anomaly = json.loads((tmp_path / "anomaly" / "anomaly.json").read_text())
    assert anomaly["normal_classes"] == ["china"] and set(anomaly["per_class"]) == {"flower"}
    assert anomaly["anomalies"] == 3 and anomaly["images"] == 6
    assert anomaly["detector"]["neighbors"] == 3  # every reference image: fewer than 5
    assert cli.main(["generate", str(exported / "model.onnx"), *images,
                     "--output", str(tmp_path / "generate")]) == 0
    assert (tmp_path / "generate" / "samples.png").exists()
    capsys.readouterr()
    assert cli.main(["anomaly", str(run / "model.keras"), *images,
                     "--anomaly-classes", "tiger", "--output", str(tmp_path / "tiger")]) == 2
    assert "'tiger' is not a class of images:" in capsys.readouterr().err


def test_a_tiny_search_on_a_folder(photo_folder, tmp_path):
    out = tmp_path / "search"
    assert cli.main(["tune", "--images", str(photo_folder), "--image-size", "16x16",
                     "--tuner", "random", "--max-trials", "1", "--max-epochs", "1",
                     "--families", "conv", "--filters", "4", "--stages", "2",
                     "--output", str(out), "--verbose", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["preprocessing"]["image_size"] == [16, 16]
    assert metrics["data"]["image_shape"] == [16, 16, 3]
    assert (out / "best_model.keras").exists()


@pytest.fixture
def folder_with_a_corrupt_jpeg(photo_folder, tmp_path):
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(photo_folder, folder)
    victim = sorted((folder / "train" / "china").glob("*.jpg"))[0]
    payload = victim.read_bytes()
    victim.write_bytes(payload[:len(payload) // 3])
    return folder, victim


def test_a_corrupt_jpeg_is_named_in_one_line(folder_with_a_corrupt_jpeg, tmp_path, capfd):
    # capfd, not capsys: TensorFlow's JPEG decoder logs from C++ to
    # descriptor 2, and that line ("Premature end of JPEG data") must not show
    folder, victim = folder_with_a_corrupt_jpeg
    out = tmp_path / "run"
    args = ["train", "--images", str(folder), "--image-size", "16x16", "--epochs", "1",
            *TINY, "--output", str(out)]
    assert cli.main(args) == 2
    # (TensorFlow's start-up lines, which this process printed once, are
    # quiet's other job, tested in test_cli_quiet)
    lines = [line for line in capfd.readouterr().err.splitlines()
             if line.strip() and not quiet.is_start_up_noise(line)]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    error = lines[0]
    assert error.startswith("keras-ae train: error: 1 of 24 images in")
    assert str(victim) in error and "--skip-bad-images" in error
    assert not out.exists()  # nothing claimed, nothing written
    assert cli.main([*args, "--skip-bad-images"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["skipped_images"] == 1
    assert metrics["data"]["skipped_files"][0]["path"] == str(victim)
    assert "skipped 1 unreadable files" in capfd.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--image-size", "8x8"], "--image-size applies to --images only"),
    (["--images", "X", "--data-dir", "Y"], "leave out --dataset and --data-dir"),
    (["--images", "X", "--resize", "crop"], "give --image-size HxW too"),
    (["--images", "X", "--image-size", "3x3"], "too small for 2 pooling stages"),
])
def test_bad_image_options(args, message, tmp_path, capsys):
    assert cli.main(["train", *args, "--output", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_image_size_must_read_as_height_by_width(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--images", "X", "--image-size", "big", "--output", "x"])
    assert "expected an image size HxW" in capsys.readouterr().err
