"""keras_ae.anomaly.defects: synthetic defects and the MVTec-style folder layout."""

import json

import numpy as np
import pytest
from PIL import Image

import keras_ae
from keras_ae.anomaly import defects
from keras_ae.training import loop as training
from keras_ae.data.sources import from_directory
from keras_ae.anomaly.detector import AnomalyDetector

from conftest import smooth_images


def objects(count=6, size=28):
    """Grey squares on black: an object to paint on, and background."""
    images = np.zeros((count, size, size, 1), "float32")
    images[:, 6:22, 6:22] = np.linspace(0.4, 0.8, count)[:, None, None, None]
    return images


def test_synthetic_defects_mark_exactly_what_they_changed():
    good = objects()
    bad, masks, kinds = defects.synthetic_defects(good, seed=3)
    assert kinds == ["patch", "scratch", "hole"] * 2
    assert bad.shape == good.shape and masks.shape == good.shape[:3]
    changed = np.abs(bad - good).max(-1)
    assert masks.any(axis=(1, 2)).all()  # every image got a visible defect
    np.testing.assert_array_equal(masks, changed > defects.CHANGED)
    again, again_masks, _ = defects.synthetic_defects(good, seed=3)
    np.testing.assert_array_equal(again, bad)
    assert not np.array_equal(defects.synthetic_defects(good, seed=4)[1], masks)


def test_holes_are_black_and_on_the_object():
    good = objects()
    bad, masks, _ = defects.synthetic_defects(good, seed=0, kinds=("hole",))
    assert (bad[masks] == 0).all()
    assert (good[masks] > 0).all()  # a hole in the background would show nothing


def test_synthetic_defects_refuse_bad_inputs():
    with pytest.raises(ValueError, match="at least 2 images of at least 8x8"):
        defects.synthetic_defects(objects(1))
    with pytest.raises(ValueError, match="kinds must be some of patch, scratch, hole"):
        defects.synthetic_defects(objects(), kinds=("dent",))


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.squeeze(array) * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory):
    """train/good, test/good, test/stain (masks), test/scratch (no masks)."""
    root = tmp_path_factory.mktemp("bottle")
    good = smooth_images(80, size=16, seed=5)
    for i, image in enumerate(good[:60]):
        write_png(root / "train" / "good" / f"{i:03d}.png", image)
    for i, image in enumerate(good[60:70]):
        write_png(root / "test" / "good" / f"{i:03d}.png", image)
    stained = good[70:].copy()
    square = stained[:, 4:9, 4:9]
    stained[:, 4:9, 4:9] = np.where(square > 0.5, 0.0, 1.0)  # against the grain
    for i, image in enumerate(stained):
        write_png(root / "test" / "stain" / f"{i:03d}.png", image)
        mask = np.zeros((16, 16))
        mask[4:9, 4:9] = 1.0
        write_png(root / "ground_truth" / "stain" / f"{i:03d}_mask.png", mask)
    scratched = good[70:75].copy()
    scratched[:, 10:12, 2:14] = 1.0
    for i, image in enumerate(scratched):
        write_png(root / "test" / "scratch" / f"{i:03d}.png", image)
    return root


def test_read_defect_folder_reads_kinds_and_masks(mvtec):
    found = defects.read_defect_folder(mvtec, (16, 16, 1))
    assert found["images"].shape == (25, 16, 16, 1) and found["images"].dtype == np.uint8
    assert found["kinds"] == ["good"] * 10 + ["scratch"] * 5 + ["stain"] * 10
    assert found["has_mask"].tolist() == [False] * 15 + [True] * 10
    assert found["masks"][15:, 4:9, 4:9].all() and found["masks"][15:].sum() == 250
    assert not found["masks"][:15].any()


def test_training_on_the_folder_sees_good_images_only(mvtec):
    data = from_directory(mvtec, validation_split=0.2, verbose=False)
    assert data.num_train + data.num_validation == 60 and data.num_test == 25
    assert data.class_names == ("good", "scratch", "stain")


def test_evaluate_defect_folder_per_kind(mvtec):
    data = from_directory(mvtec, validation_split=0.2, verbose=False)
    train = np.concatenate([y for _, y in data.train.as_numpy_iterator()])
    model = training.compile_autoencoder(
        keras_ae.build_conv_autoencoder((16, 16, 1), filters=(8, 4)))
    model.fit(train, train, batch_size=16, epochs=30, verbose=0)
    detector = AnomalyDetector.fit(model, train, held_out_share=0.2, score="mse")
    result = defects.evaluate_defect_folder(detector, mvtec)
    assert set(result["kinds"]) == {"stain", "scratch"}
    stain, scratch = result["kinds"]["stain"], result["kinds"]["scratch"]
    assert stain["images"] == 10 and scratch["images"] == 5
    assert stain["roc_auc"] > 0.95 and scratch["roc_auc"] > 0.95  # 0.5 by chance
    assert stain["pixel"]["pixel_roc_auc"] > 0.9 and scratch["pixel"] is None
    assert 0.5 < stain["pixel"]["aupro"] <= 1 and stain["pixel"]["pixel_f1_max"] > 0
    assert result["all"]["images"] == 15 and result["good"]["images"] == 10
    # labelled images move the threshold to the best F1 on them: here all
    # defects score above all good images, so every one is caught
    labelled = defects.read_defect_folder(mvtec / "test", (16, 16, 1))  # a folder of kinds
    assert not labelled["has_mask"].any() and len(labelled["kinds"]) == 25
    flags = np.array(labelled["kinds"]) != "good"
    scores = detector.scores(labelled["images"])
    detector.fit_threshold(labelled["images"], flags)
    assert detector.rule == "best F1 (1.000) on 25 labelled images (15 anomalies)"
    assert scores[~flags].max() < detector.threshold < scores[flags].min()
    np.testing.assert_array_equal(detector.is_anomaly(labelled["images"]), flags)


def test_a_mask_of_another_size_is_named_with_its_image(mvtec, tmp_path):
    import shutil

    folder = tmp_path / "bottle"
    shutil.copytree(mvtec, folder)
    write_png(folder / "ground_truth" / "stain" / "003_mask.png", np.zeros((20, 16)))
    with pytest.raises(ValueError, match=r"003_mask.png is 16x20 \(width x height\) "
                                         r"but its image .*003.png is 16x16"):
        defects.read_defect_folder(folder, (16, 16, 1))


def test_a_folder_without_good_test_images_is_refused(tmp_path):
    write_png(tmp_path / "test" / "hole" / "0.png", np.zeros((16, 16)))
    with pytest.raises(ValueError, match="must hold a good/ folder and at least one "
                                         "defect kind's folder, found"):
        defects.read_defect_folder(tmp_path, (16, 16, 1))
    with pytest.raises(FileNotFoundError, match="no test/ folder"):
        defects.read_defect_folder(tmp_path / "test", (16, 16, 1))


@pytest.mark.slow  # train and anomaly end to end
def test_the_command_line_reports_each_defect_kind(mvtec, tmp_path, capsys):
    from keras_ae.cli import commands as cli

    run_dir, out = tmp_path / "run", tmp_path / "anomaly"
    assert cli.main(["train", "--images", str(mvtec), "--epochs", "30",
                     "--batch-size", "16", "--filters", "8,4", "--output",
                     str(run_dir)]) == 0
    assert cli.main(["anomaly", str(run_dir / "model.keras"), "--images", str(mvtec),
                     "--score", "mse", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "normal: classes ['good']" in printed
    stain_lines = [line for line in printed.splitlines() if "stain" in line]
    assert len(stain_lines) == 1  # each defect kind once
    assert "pixel ROC AUC" in stain_lines[0] and "AUPRO" in stain_lines[0]
    result = json.loads((out / "anomaly.json").read_text())
    assert result["normal_classes"] == ["good"]
    kinds = result["defect_folder"]["kinds"]
    assert kinds["stain"]["images"] == 10 and kinds["scratch"]["pixel"] is None
    assert kinds["stain"]["pixel"]["pixel_roc_auc"] > 0.9
    # the threshold from labelled images; the card says which rule set it
    assert cli.main(["anomaly", str(run_dir / "model.keras"), "--images", str(mvtec),
                     "--score", "mse", "--threshold-from", str(mvtec / "test"),
                     "--output", str(tmp_path / "f1")]) == 0
    card = json.loads((tmp_path / "f1" / "detector_card.json").read_text())
    assert card["detector"]["rule"].startswith("best F1 (")
    assert card["detector"]["rule"].endswith("on 25 labelled images (15 anomalies)")
