"""Training: MSE, the run folder, resuming, refusing to overwrite."""

import json

import numpy as np
import pytest

import keras
import keras_ae
from keras_ae.data import sources as data_lib
from keras_ae.training import precision
from keras_ae.training import loop as training
from keras_ae.models import as_float32
from keras_ae.training.evaluation import evaluate


def blobs(n, size=16, seed=0):
    """Smooth random blobs in [0, 1]: structure an autoencoder can learn."""
    yy, xx = np.mgrid[0:size, 0:size]
    centres = np.random.default_rng(seed).uniform(3, size - 3, size=(n, 2))
    images = np.exp(-((yy - centres[:, :1, None]) ** 2
                      + (xx - centres[:, 1:, None]) ** 2) / 8)
    return images[..., None].astype("float32")


@pytest.fixture
def small_data():
    return data_lib.from_arrays(blobs(96), blobs(32, seed=1), batch_size=16,
                                validation_split=0.25, seed=0)


def _train(*args, **kwargs):
    """``training.train`` without the run record at the end (its own test
    below measures that)."""
    return training.train(*args, measure=False, **kwargs)


def small_model():
    return keras_ae.build_conv_autoencoder((16, 16, 1), filters=(8, 4),
                                           decoder="upsample")


class StopAtEpoch(keras.callbacks.Callback):
    """Simulates a crash: raises as epoch ``epoch`` (0-based) begins."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("simulated crash")


class EpochsSeen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_compile_uses_adam_and_mse():
    model = training.compile_autoencoder(small_model(), learning_rate=3e-3)
    assert model.loss == "mse"
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(3e-3)
    with pytest.raises(ValueError, match="learning_rate must be a positive finite number, got 0"):
        training.compile_autoencoder(small_model(), learning_rate=0)


def test_train_writes_the_run_folder(small_data, tmp_path):
    out = tmp_path / "run"
    result = training.train(small_model, small_data, out, epochs=3,
                            learning_rate=1e-2, settings={"note": "test"},
                            verbose=0)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "epoch_001.keras", "epoch_002.keras", "epoch_003.keras"]
    assert (out / "model.keras").exists() and (out / "logs").is_dir()
    assert not (out / "backup").exists()  # removed once the run finishes
    run = json.loads((out / "run.json").read_text())
    recorded = {"note": "test", "epochs": 3, "learning_rate": 1e-2,
                "precision_policy": result.devices.policy, "batch_size": 16,
                "noise_factor": 0.0, "image_shape": [16, 16, 1], "preprocessing": None,
                "source": "arrays"}
    assert {key: run[key] for key in recorded} == recorded
    assert run["data"]["in_memory"] is True  # the data's source, as plain fields
    # the run record, measured on the test split in float32
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == result.metrics and metrics["epochs_run"] == 3
    assert metrics["test"]["images"] == 32
    assert metrics["test"]["mse"] == pytest.approx(
        evaluate(as_float32(result.model), small_data.test)["mse"], rel=1e-5)
    assert metrics["settings"]["note"] == "test"
    assert (out / "reconstructions.png").is_file() and (out / "loss_curves.png").is_file()
    history = training.read_history(out / "history.csv")
    assert [row["epoch"] for row in history] == [0, 1, 2]  # as CSVLogger numbers them
    assert {"loss", "val_loss", "train_seconds"} <= set(history[0])
    assert history[-1]["loss"] < history[0]["loss"]
    assert result.history == history and not result.resumed
    assert result.train_images_per_second > 0
    # the saved model is the trained one
    loaded = keras.models.load_model(out / "model.keras")
    x = blobs(4, seed=3)
    np.testing.assert_allclose(loaded(x), result.model(x), rtol=1e-6)


def test_interrupted_run_resumes_where_it_stopped(small_data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(small_model, small_data, out, epochs=4, verbose=0,
                       callbacks=[StopAtEpoch(2)])
    assert [r["epoch"] for r in training.read_history(out / "history.csv")] == [0, 1]
    assert (out / "backup").exists()

    seen = EpochsSeen()
    result = _train(small_model, small_data, out, epochs=4, verbose=0,
                            callbacks=[seen])
    assert result.resumed
    assert seen.epochs == [2, 3]  # epochs 0 and 1 are not run again
    assert [r["epoch"] for r in result.history] == [0, 1, 2, 3]


def test_history_rows_from_the_resumed_epoch_on_are_replaced(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,0.5\n1,0.4\n2,0.3\n")  # 2 written, backup at 2
    callback = training.HistoryCsv(path)
    callback.on_epoch_begin(2)
    callback.on_epoch_end(2, {"loss": 0.25})
    assert training.read_history(path) == [
        {"epoch": 0, "loss": 0.5}, {"epoch": 1, "loss": 0.4},
        {"epoch": 2, "loss": 0.25, "train_seconds": 0.0}]


def test_finished_run_is_loaded_not_trained_again(small_data, tmp_path):
    out = tmp_path / "run"
    first = _train(small_model, small_data, out, epochs=2, verbose=0)
    stamp = (out / "model.keras").stat().st_mtime_ns
    seen = EpochsSeen()
    again = _train(small_model, small_data, out, epochs=2, verbose=0,
                           callbacks=[seen])
    assert again.finished_before and seen.epochs == []
    assert (out / "model.keras").stat().st_mtime_ns == stamp
    x = blobs(2, seed=4)
    np.testing.assert_allclose(again.model(x), first.model(x), rtol=1e-6)


def test_folder_of_another_run_is_refused_and_kept(small_data, tmp_path):
    out = tmp_path / "run"
    _train(small_model, small_data, out, epochs=1, verbose=0,
                   settings={"decoder": "upsample"})
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"holds a different run \(decoder: "
                                         r"'upsample' before, 'unpool' now\)"):
        _train(small_model, small_data, out, epochs=1, verbose=0,
                       settings={"decoder": "unpool"})
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_unrelated_folder_is_refused(small_data, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds notes.txt, not written by keras-ae train"):
        _train(small_model, small_data, tmp_path, epochs=1, verbose=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="exists and is not a folder"):
        _train(small_model, small_data, tmp_path / "notes.txt",
                       epochs=1, verbose=0)


def test_images_of_the_wrong_shape_are_refused(small_data, tmp_path):
    def wrong():
        return keras_ae.build_conv_autoencoder((28, 28, 1))
    with pytest.raises(ValueError, match=r"takes images of shape \(28, 28, 1\), "
                                         r"but the data holds .* \(16, 16, 1\)"):
        _train(wrong, small_data, tmp_path / "run", epochs=1, verbose=0)


@pytest.mark.parametrize("epochs", [0, -1, 2.5, True])
def test_bad_epochs(small_data, tmp_path, epochs):
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        _train(small_model, small_data, tmp_path / "run", epochs=epochs)


@pytest.mark.slow  # XLA compiles the train step
def test_xla_training_with_the_unpool_decoder(small_data, tmp_path):
    def model():
        return keras_ae.build_conv_autoencoder((16, 16, 1), filters=(8, 4),
                                               decoder="unpool")
    result = _train(model, small_data, tmp_path / "run", epochs=2,
                            learning_rate=1e-2, jit_compile=True, verbose=0)
    assert result.model.jit_compile
    losses = [row["loss"] for row in result.history]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_mixed_precision_trains_with_a_float32_output(small_data, tmp_path):
    # float16 runs on CPU too (slowly); on a GPU "auto" chooses it
    result = _train(small_model, small_data, tmp_path / "run", epochs=1,
                            mixed_precision="mixed_float16", verbose=0)
    assert result.devices.mixed_precision
    assert result.devices.policy == "mixed_float16"
    assert result.model.get_layer("encoder").outputs[0].dtype == "float16"
    assert result.model.output.dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    run = json.loads((tmp_path / "run" / training.RUN_FILE).read_text())
    assert run["precision_policy"] == "mixed_float16"


def test_auto_trains_in_bfloat16_on_a_cpu_that_has_it(small_data, tmp_path,
                                                      monkeypatch):
    monkeypatch.setattr(precision, "cpu_bfloat16_flags", lambda: ("amx_bf16",))
    result = _train(small_model, small_data, tmp_path / "bf16", epochs=2,
                            learning_rate=1e-2, verbose=0)
    if result.devices.gpus:
        pytest.skip("a GPU chooses mixed_float16")
    assert result.devices.policy == "mixed_bfloat16"
    assert result.devices.description == "CPU, mixed_bfloat16"
    assert result.model.get_layer("encoder").outputs[0].dtype == "bfloat16"
    assert result.model.output.dtype == "float32"  # the loss is float32
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0]
    run = json.loads((tmp_path / "bf16" / training.RUN_FILE).read_text())
    assert run["precision_policy"] == "mixed_bfloat16"

    monkeypatch.setattr(precision, "cpu_bfloat16_flags", lambda: ())
    result = _train(small_model, small_data, tmp_path / "f32", epochs=1,
                            verbose=0)
    assert result.devices.policy == "float32"
    assert result.model.get_layer("encoder").outputs[0].dtype == "float32"


def test_cpu_setup_and_bad_precision(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bfloat16_flags", lambda: ())
    setup = training.configure_devices()
    if setup.gpus == 0:
        assert setup.description == "CPU, float32" and not setup.mixed_precision
    with pytest.raises(ValueError, match=r"mixed_precision must be one of "
                       r"\['auto', 'on', 'off', 'float32', 'mixed_float16', "
                       r"'mixed_bfloat16'\] \(or True, False\), got 'yes'"):
        training.configure_devices("yes")
