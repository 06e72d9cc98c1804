"""A run that diverges stops in one line, and a diverged model is never
exported, fitted or served as if it were fine."""

import re

import numpy as np
import pytest

import keras_ae
from keras_ae.anomaly import AnomalyDetector
from keras_ae.cli import commands as cli
from keras_ae.errors import InputError


def one_line_error(capsys, command):
    err = capsys.readouterr().err
    # TensorFlow's C++ log of its first device use in this test process
    # (the command line drops it where it starts TensorFlow itself)
    lines = [line for line in err.splitlines()
             if line.strip() and not re.match(r"[EWI]\d{4} ", line)]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"keras-ae {command}: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
    """A saved dense autoencoder whose weights are NaN: what a diverged run
    would have saved."""
    model = keras_ae.build_dense_autoencoder((28, 28, 1), code_size=4, hidden_units=(8,))
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    path = tmp_path_factory.mktemp("nan") / "model.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("rate", ["inf", "nan", "-1", "0"])
def test_learning_rates_that_are_not_positive_and_finite_are_refused_first(
        small_idx_dir, tmp_path, capsys, rate):
    out = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(small_idx_dir), "--learning-rate", rate,
                     "--output", str(out)]) == 2
    line = one_line_error(capsys, "train")
    assert f"learning_rate must be a positive finite number, got {float(rate)!r}" in line
    assert "data:" not in capsys.readouterr().out  # refused before reading
    assert not out.exists()


def test_a_diverging_run_stops_in_one_line_and_saves_no_model(small_idx_dir, tmp_path,
                                                              capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(small_idx_dir), "--filters", "8,4",
                     "--epochs", "3", "--batch-size", "32", "--learning-rate", "1e30",
                     "--output", str(out)]) == 2
    line = one_line_error(capsys, "train")
    assert "training diverged in epoch 1 of 3" in line and "1e+30" in line
    assert "smaller --learning-rate" in line
    assert not (out / "model.keras").exists()
    assert not list(out.glob("checkpoints/*.keras"))  # nothing of the diverged epoch


def test_export_refuses_a_model_with_non_finite_outputs(nan_model, tmp_path, capsys):
    out = tmp_path / "exported"
    assert cli.main(["export", str(nan_model), "--output", str(out),
                     "--formats", "onnx"]) == 2
    line = one_line_error(capsys, "export")
    assert "gives NaN or infinite outputs (5,488 of 5,488 values)" in line
    assert not out.exists()


def test_a_detector_is_never_fitted_on_a_diverged_model(nan_model):
    import keras

    model = keras.models.load_model(nan_model)
    normal = np.random.default_rng(0).random((40, 28, 28, 1), "float32")
    with pytest.raises(InputError, match="gives NaN or infinite outputs"):
        AnomalyDetector.fit(model, normal, score="mse")
