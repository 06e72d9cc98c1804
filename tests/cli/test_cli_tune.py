"""`keras-ae tune` end to end on small IDX files, and its best model into
`keras-ae export`."""

import contextlib
import io
import json

import keras
import pytest

from keras_ae.cli import commands as cli
from keras_ae.training import evaluation
from keras_ae.data import sources as data_lib

# slow: searches through the command line (`pytest -m "not slow"` leaves them out)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def idx_dir(small_idx_dir):
    return small_idx_dir


def tune_args(idx_dir, out, *extra):
    return ["tune", "--data-dir", str(idx_dir), "--tuner", "random",
            "--max-trials", "2", "--max-epochs", "1", "--code-size", "196",
            "--filters", "4,8", "--batch-sizes", "32", "--output", str(out), *extra]


@pytest.fixture(scope="module")
def tuned(idx_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "tune1"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(tune_args(idx_dir, out))
    return code, out, stdout.getvalue()


def test_tune_writes_results_pictures_and_metrics(tuned, idx_dir):
    code, out, stdout = tuned
    assert code == 0, stdout
    for name in ("best_model.keras", "best_hyperparameters.json", "trials.csv",
                 "metrics.json", "trials.png", "reconstructions.png", "search.json"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert metrics["best_trial"] == best and metrics["code_floats"] == 196
    # the reported test MSE is the saved best model's on the test split
    model = keras.saving.load_model(out / "best_model.keras")
    test = data_lib.from_idx(idx_dir).test
    assert metrics["test"]["mse"] == pytest.approx(
        evaluation.evaluate(model, test)["mse"], rel=1e-5)


def test_tune_prints_a_line_per_trial_and_a_summary_table(tuned):
    _, out, stdout = tuned
    lines = stdout.splitlines()
    assert [line.split()[:3] for line in lines if "] trial " in line] == [
        ["[1/2]", "trial", "0"], ["[2/2]", "trial", "1"]]
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "trial"])
    assert [lines[header + 1].split()[0], lines[header + 2].split()[0]] == ["1", "2"]
    assert f"keras-ae export {out}/best_model.keras" in stdout


def test_the_best_model_goes_straight_into_export(tuned, tmp_path, capsys):
    _, out, _ = tuned
    exported = tmp_path / "exported"
    assert cli.main(["export", str(out / "best_model.keras"), "--output",
                     str(exported), "--formats", "onnx"]) == 0
    card = json.loads((exported / "model_card.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert (exported / "model.onnx").exists()
    assert card["test"] == metrics["test"]
    assert card["training"]["epochs_run"] == metrics["epochs_run"]


def test_the_same_command_again_resumes_and_runs_nothing(tuned, idx_dir, capsys):
    _, out, _ = tuned
    before = (out / "trials.csv").read_text()
    assert cli.main(tune_args(idx_dir, out)) == 0
    stdout = capsys.readouterr().out
    assert "resuming a RandomSearch search" in stdout and "] trial " not in stdout
    assert (out / "trials.csv").read_text() == before


@pytest.mark.parametrize("extra, message", [
    (["--code-size", "1000"], "code_size 1000 cannot build an autoencoder for "
                              "images of shape (28, 28, 1)"),
    (["--decoders", "transpose,deconv"],
     "decoders must be chosen from ['transpose', 'upsample', 'unpool'], got 'deconv'"),
    (["--stages", "2,6"], "at most 4 fit"),
    (["--validation-split", "0"], "(--validation-split) must be above 0"),
])
def test_a_space_that_cannot_build_fails_before_any_trial(
        extra, message, idx_dir, tmp_path, capsys):
    out = tmp_path / "tune"
    assert cli.main(tune_args(idx_dir, out, *extra)) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "trial" not in captured.out
    assert not out.exists()


def test_a_folder_of_something_else_is_refused_and_kept(idx_dir, tmp_path, capsys):
    out = tmp_path / "tune"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli.main(tune_args(idx_dir, out)) == 2
    assert "holds notes.txt, not written by keras-ae tune" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_different_search_in_the_folder_is_refused(tuned, idx_dir, capsys):
    _, out, _ = tuned
    before = (out / "trials.csv").read_text()
    assert cli.main(tune_args(idx_dir, out, "--tuner", "bayesian")) == 2
    err = capsys.readouterr().err
    assert "holds a different search" in err and "'random' before, 'bayesian' now" in err
    assert (out / "trials.csv").read_text() == before
