"""Serving images of any size and colour: OnnxAutoencoder.prepare and resize=True,
recorded preprocessing in the export, parity with the training pipeline."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import keras_ae
from keras_ae.data import sources as data
from keras_ae.export import exporter as export
from keras_ae.runtime import images
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

REPO = Path(__file__).resolve().parents[2]
SHAPE = (16, 12, 3)
RECIPE = {"image_size": [16, 12], "resize": "crop", "color_mode": "rgb"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A conv autoencoder for 16x12 RGB images, trained (as far as its
    export knows) on centre-cropped folder images."""
    folder = tmp_path_factory.mktemp("exported")
    model = keras_ae.build_conv_autoencoder(SHAPE, filters=(4, 2), convs_per_stage=1)
    card = export.export_model(model, folder, saved_model=False, verbose=False,
                               preprocessing=RECIPE)
    assert card["preprocessing"] == RECIPE
    return folder


@pytest.fixture(scope="module")
def photos(photo_folder):
    return sorted((photo_folder / "test").rglob("*.jpg"))


def test_the_export_records_how_images_were_made(exported):
    proto = onnx.load(str(exported / "model.onnx"))
    metadata = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert metadata["keras_ae.preprocessing"] == RECIPE
    model = OnnxAutoencoder(exported)
    assert model.preprocessing == RECIPE and model.resize_mode == "crop"
    assert json.loads((exported / "model_card.json").read_text())["preprocessing"] == RECIPE


def test_a_bad_recipe_is_refused_before_anything_is_written(tmp_path):
    model = keras_ae.build_dense_autoencoder((4, 4, 1), code_size=2)
    with pytest.raises(ValueError, match="resize must be one of"):
        export.export_model(model, tmp_path / "out", preprocessing={"resize": "squash"})
    assert not (tmp_path / "out").exists()


def test_prepare_reads_files_pillow_images_and_arrays(exported, photos):
    model = OnnxAutoencoder(exported)
    batch = model.prepare([str(p) for p in photos], resize=True)
    assert batch.shape == (len(photos), *SHAPE) and batch.dtype == np.uint8
    expected = np.stack([images.read_image(p, SHAPE, "crop") for p in photos])
    np.testing.assert_array_equal(batch, expected)
    one = model.prepare(photos[0], resize=True)
    np.testing.assert_array_equal(one, expected[0])
    with Image.open(photos[0]) as picture:
        np.testing.assert_array_equal(model.prepare(picture, resize=True), expected[0])
    grey = np.zeros((40, 30), np.uint8)  # grey arrays become RGB
    assert model.prepare(grey, resize="pad").shape == SHAPE
    assert model.prepare(np.zeros((16, 12))).shape == SHAPE  # no resize needed


def test_images_of_another_size_need_resize(exported, photos):
    model = OnnxAutoencoder(exported)
    with pytest.raises(ValueError, match=rf"{photos[0].name} is \d+x\d+ \(height x "
                                         r"width\); the model takes 16x12.*--resize"):
        model.reconstruct(str(photos[0]))
    with pytest.raises(ValueError, match="at least one image"):
        model.prepare([])


def test_running_on_files_is_running_on_their_prepared_images(exported, photos):
    model = OnnxAutoencoder(exported)
    prepared = model.prepare(photos, resize=True)
    np.testing.assert_array_equal(model.reconstruct(photos, resize=True),
                                  model.reconstruct(prepared))
    np.testing.assert_array_equal(model.encode(photos, resize=True),
                                  model.encode(prepared))
    error = model.reconstruction_error(str(photos[0]), resize=True)
    assert error.shape == () and error == model.reconstruction_error(prepared[0])


def test_serving_prepares_what_training_read(exported, photo_folder, photos):
    """The folder pipeline (TensorFlow) and serving (Pillow) agree, pixel for
    pixel but for float rounding ties."""
    folder = data.from_directory(photo_folder, image_size=(16, 12), resize="crop",
                                 color_mode="rgb", verbose=False)
    trained_on = np.round(np.concatenate(
        [y for _, y in folder.test.as_numpy_iterator()]) * 255).astype(int)
    served = OnnxAutoencoder(exported).prepare(photos, resize=True).astype(int)
    difference = np.abs(trained_on - served)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


def test_without_a_recorded_recipe_resize_stretches(tmp_path):
    model = keras_ae.build_dense_autoencoder((6, 6, 1), code_size=2)
    export.export_onnx(model, tmp_path / "model.onnx")
    served = OnnxAutoencoder(tmp_path)
    assert served.preprocessing is None and served.resize_mode == "stretch"
    wide = np.arange(72, dtype=np.uint8).reshape(6, 12)
    np.testing.assert_array_equal(served.prepare(wide, resize=True),
                                  images.read_image(wide, (6, 6, 1), "stretch"))


def test_resize_runs_where_tensorflow_cannot_be_imported(exported, photos):
    code = f"""
import sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError(f"{{name}} is blocked in this test")
sys.meta_path.insert(0, NoTensorFlow())
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder
model = OnnxAutoencoder({str(exported)!r})
print(model.reconstruct({str(photos[0])!r}, resize=True).shape)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(16, 12, 3)"
