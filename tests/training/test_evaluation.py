"""keras_ae.training.evaluation: scores against hand-worked values, data forms, PNGs,
loss curves, atomic writes and errors."""

import doctest
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras
import keras_ae
from conftest import png_pixels
from keras_ae.training import evaluation
from keras_ae.training.evaluation import (
    evaluate,
    reconstruction_errors,
    save_loss_curves,
    save_reconstruction_grid,
)

SHAPE = (16, 16, 1)


def images(n=6, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype("float32")


def identity(shape=SHAPE):
    return keras.Sequential([keras.Input(shape), keras.layers.Identity()])


def constant(value, shape=SHAPE):
    return keras.Sequential([keras.Input(shape),
                             keras.layers.Lambda(lambda x: 0 * x + value)])


@pytest.fixture(scope="module")
def conv_model():
    return keras_ae.build_conv_autoencoder(SHAPE, filters=(4, 2))


def test_docstring_examples():
    result = doctest.testmod(evaluation, extraglobs={"np": np})
    assert result.attempted > 0
    assert result.failed == 0


# --- scores ----------------------------------------------------------------

def test_perfect_reconstruction_scores_mse_0_ssim_1_psnr_inf():
    scores = evaluate(identity(), images())
    assert scores["mse"] == 0.0
    assert scores["psnr"] == math.inf  # documented: no finite cap
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert scores["images"] == 6
    assert set(scores) == {"mse", "psnr", "ssim", "images"}
    assert all(type(scores[k]) is float for k in ("mse", "psnr", "ssim"))


def test_constant_half_gives_hand_computed_mse_and_psnr():
    # constant 0.25 images: error 0.25^2; constant 1.0 images: error 0.5^2
    data = np.concatenate([np.full((2, 4, 4, 1), 0.25), np.ones((1, 4, 4, 1))])
    scores = evaluate(constant(0.5, (4, 4, 1)), data)
    per_image = [0.0625, 0.0625, 0.25]
    assert scores["mse"] == pytest.approx(np.mean(per_image), rel=1e-12)
    psnr = np.mean([10 * math.log10(1 / mse) for mse in per_image])
    assert scores["psnr"] == pytest.approx(psnr, rel=1e-5)
    assert reconstruction_errors(constant(0.5, (4, 4, 1)), data).tolist() == per_image


def test_reconstruction_errors_match_numpy_in_order_with_a_partial_batch(conv_model):
    x = images(10)
    expected = np.mean((conv_model.predict(x, verbose=0) - x) ** 2, axis=(1, 2, 3))
    errors = reconstruction_errors(conv_model, x, batch_size=4)  # 4 + 4 + 2
    assert errors.dtype == np.float64 and errors.shape == (10,)
    np.testing.assert_allclose(errors, expected, rtol=1e-5)
    np.testing.assert_allclose(
        reconstruction_errors(conv_model, x[::-1], batch_size=3), expected[::-1],
        rtol=1e-5)
    dataset = tf.data.Dataset.from_tensor_slices((x, x)).batch(4)
    np.testing.assert_allclose(reconstruction_errors(conv_model, dataset),
                               expected, rtol=1e-5)


def test_dataset_tuple_and_array_give_the_same_scores(conv_model):
    x = images(5)
    from_array = evaluate(conv_model, x, batch_size=2)
    from_tuple = evaluate(conv_model, (x, x))
    slices = tf.data.Dataset.from_tensor_slices
    from_dataset = evaluate(conv_model, slices((x, x)).batch(3))
    images_only = evaluate(conv_model, slices(x).batch(3))
    for other in (from_tuple, from_dataset, images_only):
        assert other == pytest.approx(from_array, rel=1e-5)
    # mse over all pixels = mean of the per-image errors (same batches, so the
    # same float32 predictions: oneDNN may pick other kernels per batch size)
    assert from_array["mse"] == pytest.approx(
        reconstruction_errors(conv_model, x, batch_size=2).mean(), rel=1e-9)


def test_denoising_scores_compare_with_the_clean_target():
    clean = images(4)
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 0.2, clean.shape),
                    0, 1).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((noisy, clean)).batch(3)
    scores = evaluate(identity(), dataset)  # reconstructs the noisy input
    assert scores["mse"] == pytest.approx(np.mean((noisy - clean) ** 2), rel=1e-6)
    assert scores["mse"] > 0.01 and scores["ssim"] < 0.99
    np.testing.assert_allclose(
        reconstruction_errors(identity(), (noisy, clean)),
        np.mean((noisy - clean) ** 2, axis=(1, 2, 3)), rtol=1e-6)


@pytest.mark.parametrize("size", [8, 28])
def test_ssim_on_small_and_mnist_sized_images(size):
    shape = (size, size, 1)
    x = images(3, shape)
    assert evaluate(identity(shape), x)["ssim"] == pytest.approx(1.0, abs=1e-6)
    blurred = evaluate(constant(0.5, shape), x)["ssim"]
    window = min(11, size) - (min(11, size) % 2 == 0)  # 7 for 8x8, 11 for 28x28
    expected = tf.image.ssim(np.full_like(x, 0.5), x, 1.0, filter_size=window)
    assert blurred == pytest.approx(float(np.mean(expected)), rel=1e-5)
    assert -1 < blurred < 0.5


def test_colour_images_and_the_unpool_model():
    shape = (16, 16, 3)
    model = keras_ae.build_conv_autoencoder(shape, filters=(4, 2), decoder="unpool")
    scores = evaluate(model, images(3, shape))
    assert scores["images"] == 3
    assert 0 < scores["mse"] < 1 and np.isfinite(scores["psnr"])


def test_mixed_precision_model():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras_ae.build_conv_autoencoder(SHAPE, filters=(4, 2))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    x = images(3)
    scores = evaluate(model, x)
    expected = np.mean((np.asarray(model(x), "float64") - x) ** 2)
    assert scores["mse"] == pytest.approx(expected, rel=1e-6)
    assert np.isfinite(scores["psnr"]) and np.isfinite(scores["ssim"])


def test_predicts_each_batch_once(conv_model, monkeypatch):
    calls = []
    predict = conv_model.predict_on_batch
    monkeypatch.setattr(conv_model, "predict_on_batch",
                        lambda x: calls.append(len(x)) or predict(x))
    evaluate(conv_model, images(5), batch_size=2)
    assert calls == [2, 2, 1]


# --- pictures --------------------------------------------------------------

def png_size(path):
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        picture.verify()
    with Image.open(path) as picture:
        return picture.size


def test_grid_png_has_a_noisy_row_only_in_denoising_mode(conv_model, tmp_path):
    clean = images(5)
    noisy = np.clip(clean + 0.1, 0, 1)
    plain = save_reconstruction_grid(conv_model, clean, tmp_path / "a" / "plain.png",
                                     n=4)
    denoising = save_reconstruction_grid(conv_model, (noisy, clean),
                                         str(tmp_path / "noisy.png"), n=4)
    assert plain == str(tmp_path / "a" / "plain.png")  # folder created
    plain_w, plain_h = png_size(plain)
    noisy_w, noisy_h = png_size(denoising)
    assert plain_w == noisy_w and noisy_h > plain_h + 100  # one more 1.2" row
    assert 4 * 100 < plain_w < 4 * 150  # about 1.2 inch (at 100 dpi) per image
    titled = save_reconstruction_grid(conv_model, clean, tmp_path / "t.png", n=4,
                                      title="conv autoencoder")
    assert png_size(titled)[1] > plain_h


def test_grid_caps_n_and_shows_colour(tmp_path):
    shape = (8, 8, 3)
    wide = save_reconstruction_grid(identity(shape), images(3, shape),
                                    tmp_path / "all.png", n=50)
    narrow = save_reconstruction_grid(identity(shape), images(3, shape),
                                      tmp_path / "one.png", n=1)
    assert png_size(wide)[0] > png_size(narrow)[0]


def test_grid_predicts_only_what_it_shows(conv_model, monkeypatch, tmp_path):
    calls = []
    predict = conv_model.predict_on_batch
    monkeypatch.setattr(conv_model, "predict_on_batch",
                        lambda x: calls.append(len(x)) or predict(x))
    dataset = tf.data.Dataset.from_tensor_slices(images(12)).batch(2)
    save_reconstruction_grid(conv_model, dataset, tmp_path / "g.png", n=3)
    assert calls == [2, 2]


def test_overwrite_and_failed_save_keeps_the_old_file(conv_model, tmp_path,
                                                      monkeypatch):
    path = tmp_path / "grid.png"
    save_reconstruction_grid(conv_model, images(2), path)
    save_reconstruction_grid(conv_model, images(4), path)  # overwrites
    good = path.read_bytes()
    assert png_size(path)[0] > 0

    def broken(self, filename, **kwargs):
        with open(filename, "wb") as file:
            file.write(b"half a PNG")
        raise OSError("disk full")

    from matplotlib.figure import Figure
    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        save_reconstruction_grid(conv_model, images(3), path)
    with pytest.raises(OSError, match="disk full"):
        save_loss_curves({"loss": [1.0, 0.5]}, path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["grid.png"]


# --- loss curves -----------------------------------------------------------

def test_loss_curves_from_dict(tmp_path):
    history = {"loss": [0.3, 0.1, 0.05], "val_loss": [0.35, 0.15, 0.08],
               "mae": [0.4, 0.2, 0.1], "val_mae": [0.5, 0.3, 0.2]}
    one_panel = save_loss_curves({"loss": [0.3, 0.1]}, tmp_path / "one.png")
    two_panels = save_loss_curves(history, tmp_path / "c" / "two.png", title="fit")
    assert two_panels == str(tmp_path / "c" / "two.png")
    assert png_size(two_panels)[0] > png_size(one_panel)[0]
    # zero or negative values cannot go on a log axis; drawn linear instead
    png_size(save_loss_curves({"loss": [1.0, 0.0, -1.0]}, tmp_path / "lin.png"))


def test_loss_curves_from_history_and_csv_logger(tmp_path):
    model = keras_ae.build_dense_autoencoder((4, 4, 1), code_size=2)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    x = images(8, (4, 4, 1))
    log = tmp_path / "log.csv"
    history = model.fit(x, x, validation_data=(x, x), epochs=2, batch_size=4,
                        verbose=0, callbacks=[keras.callbacks.CSVLogger(str(log))])
    # the same epochs from the History, the CSV file and its path: one picture
    drawn = [png_pixels(save_loss_curves(source, tmp_path / f"{i}.png"))
             for i, source in enumerate((history, log, str(log)))]
    assert np.array_equal(drawn[0], drawn[1]) and np.array_equal(drawn[1], drawn[2])
    other = png_pixels(save_loss_curves({"loss": [0.9, 0.01]}, tmp_path / "o.png"))
    assert not np.array_equal(other, drawn[0])
    epochs, logs = evaluation._history_logs(log)
    assert epochs.tolist() == [1.0, 2.0]  # CSVLogger's epochs are 0-based
    np.testing.assert_allclose(logs["val_loss"], history.history["val_loss"],
                               rtol=1e-5)


def test_loss_curves_errors(tmp_path):
    with pytest.raises(ValueError, match=r"'loss'.*\['mae', 'val_mae'\]"):
        save_loss_curves({"mae": [1.0], "val_mae": [2.0]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one epoch"):
        save_loss_curves({"loss": []}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="list of numbers"):
        save_loss_curves({"loss": ["low", "high"]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="History, a dict"):
        save_loss_curves([0.1, 0.2], tmp_path / "x.png")
    missing = tmp_path / "nowhere" / "log.csv"
    with pytest.raises(FileNotFoundError, match="log.csv") as raised:
        save_loss_curves(missing, tmp_path / "x.png")
    assert raised.value.filename == str(missing)
    assert not (tmp_path / "x.png").exists()


# --- data and model errors -------------------------------------------------

def test_model_for_other_images_fails_before_predicting(monkeypatch):
    model = keras_ae.build_conv_autoencoder((28, 28, 1), filters=(4, 2))
    monkeypatch.setattr(model, "predict_on_batch", lambda x: pytest.fail("predicted"))
    for function in (evaluate, reconstruction_errors):
        with pytest.raises(ValueError, match=r"\(28, 28, 1\).*\(32, 32, 1\)"):
            function(model, images(3, (32, 32, 1)))


def test_callable_with_wrong_output_shape_is_caught():
    with pytest.raises(ValueError, match=r"\(8, 8, 1\).*\(16, 16, 1\)"):
        evaluate(lambda x: x[:, :8, :8], images(2))


@pytest.mark.parametrize("data", [
    np.zeros((0, *SHAPE), "float32"),
    tf.data.Dataset.from_tensor_slices(np.zeros((0, *SHAPE), "float32")).batch(4),
], ids=["array", "dataset"])
def test_empty_data(data, tmp_path):
    with pytest.raises(ValueError, match="at least one image"):
        evaluate(identity(), data)
    with pytest.raises(ValueError, match="at least one image"):
        save_reconstruction_grid(identity(), data, tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("bad, found", [
    (images(2) * 255, "values from"),
    (np.where(np.eye(16)[None, :, :, None] > 0, np.nan, images(2)), "NaN"),
], ids=["0-255", "nan"])
def test_images_outside_0_1(bad, found):
    expected = rf"targets must have values in \[0, 1\], got {found}"
    with pytest.raises(ValueError, match=expected):
        evaluate(identity(), bad)
    with pytest.raises(ValueError, match=r"inputs must have values in \[0, 1\]"):
        reconstruction_errors(identity(), (bad, images(2)))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"shaped \(batch, height, width, channels\)"):
        evaluate(identity(), images(2)[..., 0])
    with pytest.raises(ValueError, match="2 inputs and 3 targets"):
        evaluate(identity(), (images(2), images(3)))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        evaluate(identity(), images(2), batch_size=0)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        save_reconstruction_grid(identity(), images(2), tmp_path / "g.png", n=0)
    with pytest.raises(ValueError, match="got str"):
        evaluate(identity(), "images.npy")
    with pytest.raises(ValueError, match="2 channels"):
        save_reconstruction_grid(identity((8, 8, 2)), images(2, (8, 8, 2)),
                                 tmp_path / "g.png")


def test_loss_curves_leave_out_columns_without_a_validation_twin(tmp_path):
    from PIL import Image
    plain = {"loss": [0.3, 0.2, 0.1], "val_loss": [0.35, 0.25, 0.2]}
    with_seconds = {**plain, "train_seconds": [2.0, 1.0, 1.0]}
    a = evaluation.save_loss_curves(plain, tmp_path / "a.png")
    b = evaluation.save_loss_curves(with_seconds, tmp_path / "b.png")
    assert Image.open(a).size == Image.open(b).size  # no extra panel
