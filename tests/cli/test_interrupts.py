"""SIGINT and SIGTERM end a command in one line, with the lock released and
nothing torn, and the same command resumes."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from keras_ae.training.run_files import read_history


def _train(idx_dir, output):
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen(
        [sys.executable, "-m", "keras_ae.cli", "train", "--data-dir", str(idx_dir),
         "--filters", "8,4", "--epochs", "40", "--batch-size", "16", "--output",
         str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=environment)


def _lines(err):
    """stderr's lines but TensorFlow's C++ log ("E0000 00:00:... oneDNN")."""
    return [line for line in err.splitlines()
            if line.strip() and not re.match(r"[EWI]\d{4} ", line)]


def _interrupt_after(process, checkpoint, number, timeout=120):
    started = time.monotonic()
    while not checkpoint.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() - started < timeout
        time.sleep(0.1)
    process.send_signal(number)
    _, err = process.communicate(timeout=60)
    return process.returncode, _lines(err)


@pytest.mark.slow
def test_sigint_and_sigterm_end_in_one_line_and_the_same_command_resumes(
        small_idx_dir, tmp_path):
    run = tmp_path / "run"
    code, lines = _interrupt_after(_train(small_idx_dir, run),
                                   run / "checkpoints" / "epoch_001.keras", signal.SIGINT)
    assert code == 130, lines
    assert len(lines) == 1 and lines[0].startswith("keras-ae train: interrupted during "
                                                   "epoch "), lines
    assert lines[0].endswith("(SIGINT); the same command resumes")
    assert not (run / ".keras-ae.lock").exists()
    assert not [p for p in run.rglob("*") if p.name.startswith(".keras-ae-")]
    first = read_history(run / "history.csv")

    code, lines = _interrupt_after(_train(small_idx_dir, run),
                                   run / "checkpoints" / f"epoch_{len(first) + 2:03d}.keras",
                                   signal.SIGTERM)
    # (a resumed run may first warn of Keras' own restoring of its backup)
    ours = [line for line in lines if line.startswith("keras-ae")]
    assert code == 143 and len(ours) == 1 and "(SIGTERM)" in ours[0], lines
    assert ours == lines[-1:] and not any("Traceback" in line for line in lines)
    assert not (run / ".keras-ae.lock").exists()
    rows = read_history(run / "history.csv")
    assert [row["epoch"] for row in rows] == list(range(len(rows)))  # resumed, no gap
    # the signal may land between the checkpoint and the history row
    assert len(rows) >= len(first) + 1
    assert json.loads((run / "run.json").read_text())["epochs"] == 40


def _tune(idx_dir, output):
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    return subprocess.Popen(
        [sys.executable, "-m", "keras_ae.cli", "tune", "--data-dir", str(idx_dir),
         "--tuner", "random", "--max-trials", "30", "--max-epochs", "2",
         "--code-size", "196", "--filters", "4,8", "--batch-sizes", "16",
         "--output", str(output)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=environment)


def _completed(search):
    import csv

    path = search / "trials.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return [row["trial_id"] for row in csv.DictReader(f) if row["status"] == "COMPLETED"]


def _interrupt_tune_after(process, search, trials, number, timeout=180):
    started = time.monotonic()
    while len(_completed(search)) < trials:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() - started < timeout
        time.sleep(0.1)
    process.send_signal(number)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, _lines(err)


@pytest.mark.slow
def test_a_search_interrupted_by_either_signal_resumes_its_finished_trials(
        small_idx_dir, tmp_path):
    search = tmp_path / "search"
    code, _, lines = _interrupt_tune_after(_tune(small_idx_dir, search), search, 1,
                                           signal.SIGINT)
    assert code == 130 and len(lines) == 1, lines
    assert lines[0].startswith("keras-ae tune: interrupted during trial "), lines
    assert lines[0].endswith("of at most 30 (SIGINT); the same command resumes")
    assert not (search / ".keras-ae.lock").exists()
    first = _completed(search)

    code, out, lines = _interrupt_tune_after(_tune(small_idx_dir, search), search,
                                             len(first) + 1, signal.SIGTERM)
    assert code == 143 and len(lines) == 1 and "(SIGTERM)" in lines[0], lines
    assert f"resuming a RandomSearch search in {search}" in out
    assert not (search / ".keras-ae.lock").exists()
    done = _completed(search)
    assert done[:len(first)] == first and len(set(done)) == len(done) > len(first)
