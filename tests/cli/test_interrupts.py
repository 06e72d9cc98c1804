"""SIGINT and SIGTERM end a command in one line, with the lock released and
nothing torn, and the same command resumes."""

import json
import os
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


def _interrupt_after(process, checkpoint, number, timeout=120):
    started = time.monotonic()
    while not checkpoint.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() - started < timeout
        time.sleep(0.1)
    process.send_signal(number)
    _, err = process.communicate(timeout=60)
    return process.returncode, [line for line in err.splitlines() if line.strip()]


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
