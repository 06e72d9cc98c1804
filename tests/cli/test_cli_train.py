"""`keras-ae train` end to end on small IDX files, a kill -9 included."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import keras
from keras_ae.cli import commands as cli
from keras_ae.training import evaluation
from keras_ae.models.loading import as_float32
from keras_ae.training import loop as training
from keras_ae.data import sources as data_lib


def train_args(idx_dir, out, epochs=2, *extra):
    return ["train", "--data-dir", str(idx_dir), "--filters", "8,4",
            "--decoder", "upsample", "--epochs", str(epochs), "--batch-size", "32",
            "--learning-rate", "0.01", "--output", str(out), *extra]


@pytest.mark.slow  # the whole command, end to end
def test_train_writes_model_history_metrics_and_pictures(idx_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_args(idx_dir, out)) == 0
    for name in ["model.keras", "history.csv", "metrics.json", "reconstructions.png",
                 "loss_curves.png", "run.json"]:
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["code_floats"] == 196 and metrics["epochs_run"] == 2
    assert metrics["train_images_per_second"] > 0
    assert metrics["settings"]["model_options"] == {
        "decoder": "upsample", "filters": [8, 4]}
    # the reported test MSE is that of the saved model on the test split,
    # computing in float32 as its export will
    model = as_float32(keras.models.load_model(out / "model.keras"))
    data = data_lib.from_idx(idx_dir, batch_size=64)
    assert metrics["test"]["mse"] == pytest.approx(
        evaluation.evaluate(model, data.test)["mse"], rel=1e-5)
    assert metrics["parameters"] == model.count_params()
    # the policy that ran, as configure_devices chose it for this machine
    policy = training.configure_devices().policy
    assert metrics["precision_policy"] == policy
    assert json.loads((out / "run.json").read_text())["precision_policy"] == policy
    printed = capsys.readouterr().out
    assert "test: MSE" in printed and "Epoch 2/2" in printed
    assert f"devices: CPU, {policy}" in printed or "GPU" in printed

    # the same command again measures the finished model again; its
    # training figures stay those of the training
    assert cli.main(train_args(idx_dir, out)) == 0
    assert "holds this run, finished: measured its model again" in \
        capsys.readouterr().out
    again = json.loads((out / "metrics.json").read_text())
    assert (again["seconds"], again["train_images_per_second"]) == (
        metrics["seconds"], metrics["train_images_per_second"])
    assert again["test"] == metrics["test"]


@pytest.mark.slow  # the whole command, end to end
def test_mixed_precision_flag_takes_a_policy_by_name(idx_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(train_args(idx_dir, out, 1, "--mixed-precision", "off")) == 0
    assert json.loads((out / "metrics.json").read_text())["precision_policy"] == "float32"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(train_args(idx_dir, tmp_path / "x", 1, "--mixed-precision", "bfloat16"))
    assert exit_info.value.code == 2
    assert "invalid choice: 'bfloat16'" in capsys.readouterr().err


@pytest.mark.slow  # the whole command, end to end
def test_denoising_run(idx_dir, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(idx_dir), "--model", "dense",
                     "--code-size", "16", "--epochs", "1", "--noise-factor", "0.3",
                     "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["noise_factor"] == 0.3
    assert metrics["code_floats"] == 16


def run_cli(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "keras_ae.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
                            **kwargs)


def finished_epochs(out):
    """Epochs the backup holds; None before the first one is saved."""
    try:
        return json.loads((out / "backup" / "training_metadata.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.slow  # a kill -9 of a training process
def test_kill_9_then_the_same_command_resumes(idx_dir, tmp_path):
    out = tmp_path / "run"
    first = run_cli(train_args(idx_dir, out, 30))  # far more than it will get to
    try:
        deadline = time.monotonic() + 180
        while not finished_epochs(out) and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()[0]
            time.sleep(0.05)
        assert finished_epochs(out), "no epoch finished in time"
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.communicate()
    done = finished_epochs(out)
    assert not (out / "model.keras").exists()  # killed mid-run

    # the same command, asking for fewer epochs so the test stays short
    epochs = done + 2
    second = run_cli(train_args(idx_dir, out, epochs))
    printed = second.communicate(timeout=300)[0]
    assert second.returncode == 0, printed
    assert "resumed an interrupted run" in printed
    assert f"Epoch {done + 1}/{epochs}" in printed
    assert "Epoch 1/" not in printed or done == 0
    history = [line.split(",")[0] for line in
               (out / "history.csv").read_text().splitlines()[1:]]
    assert history == [str(e) for e in range(epochs)]  # each epoch once, from 0
    assert (out / "model.keras").exists() and not (out / "backup").exists()


def test_output_folder_of_something_else_is_refused(idx_dir, tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("precious")
    assert cli.main(train_args(idx_dir, tmp_path, 1)) == 2
    assert "holds thesis.tex, not written by keras-ae train" in capsys.readouterr().err
    assert (tmp_path / "thesis.tex").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["thesis.tex"]


def test_options_of_the_other_model_kind_are_refused(idx_dir, tmp_path, capsys):
    args = ["train", "--data-dir", str(idx_dir), "--model", "dense",
            "--decoder", "unpool", "--output", str(tmp_path / "run")]
    assert cli.main(args) == 2
    assert "--decoder do not apply to --model dense" in capsys.readouterr().err


def test_missing_idx_files_are_named(tmp_path, capsys):
    args = ["train", "--data-dir", str(tmp_path), "--output", str(tmp_path / "run")]
    assert cli.main(args) == 2
    assert "train-images-idx3-ubyte" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing written for a bad start


def test_zero_learning_rate_is_refused_not_replaced(idx_dir, tmp_path, capsys):
    args = train_args(idx_dir, tmp_path / "run", 1)
    args[args.index("--learning-rate") + 1] = "0"
    assert cli.main(args) == 2
    assert "learning_rate must be a positive finite number, got 0.0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything is written
