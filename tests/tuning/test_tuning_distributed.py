"""`keras-ae tune` in KerasTuner's distributed mode: one chief and two
workers on 127.0.0.1, run once per module as three subprocesses.

The issue asks for: "the search finishes, the chief exits, and no trial runs
twice". Each process runs the same command; KERASTUNER_TUNER_ID tells them
apart. The chief serves the oracle over gRPC and runs no trial; each worker
prints one ``[tunerN] trial ID ...`` line per trial it ran.
"""

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keras_ae import tuning

# slow: a chief and two workers, each a process (`pytest -m "not slow"` leaves them out)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MAX_TRIALS = 4
WORKERS = ("tuner0", "tuner1")
ROLES = ("chief", *WORKERS)
# The whole cluster: ~1 min idle (TensorFlow starts three times, and the
# chief polls every 20 s for the workers to leave), longer on busy cores.
TIMEOUT_S = 300
AFTER_CHIEF_S = 60  # how long the workers may take to exit after the chief
BIND_FAILED = "Failed to bind to address"  # grpc's error when the port is taken
# A worker's progress line: "[tuner0] trial 2  conv upsample 8-4 x1  ...".
# Matched from the start of a line: KerasTuner 1.4.8 prints stray lines too
# ("conv", "2", ...: a leftover print in conditions.Parent.to_proto, run on
# every gRPC message carrying the space's conditions).
TRIAL_LINE = re.compile(r"^\[(?P<tuner>[^\]]+)\] trial (?P<trial>\S+)  ")
RESULT_LINE = re.compile(r"^\[(?P<tuner>tuner\d+)\] trial (?P<trial>\S+)  "
                         r"(?P<model>.+?)  lr .*  val MSE (?P<val_mse>[0-9.]+)  ")


@pytest.fixture(scope="module")
def idx_dir(small_idx_dir):
    return small_idx_dir


def _free_port():
    """A port free on 127.0.0.1 right now (the OS picks it, then we let go)."""
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(idx_dir, out):
    return [sys.executable, "-m", "keras_ae.cli", "tune", "--data-dir",
            str(idx_dir), "--tuner", "random", "--max-trials", str(MAX_TRIALS),
            "--max-epochs", "1", "--code-size", "196", "--filters", "8",
            "--batch-sizes", "64", "--output", str(out)]


def _run_cluster(idx_dir, folder, port):
    """Runs the chief and the workers; returns their exit codes by role
    (None: killed after the timeout, or because another process failed)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("KERASTUNER_")}
    base.update(
        CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0",
        PYTHONUNBUFFERED="1", KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    command = _command(idx_dir, folder / "search")
    processes = {}
    with contextlib.ExitStack() as stack:
        try:
            for role in ROLES:  # the chief first; workers wait for it anyway
                stdout = stack.enter_context(open(folder / f"{role}.out", "w"))
                stderr = stack.enter_context(open(folder / f"{role}.err", "w"))
                processes[role] = subprocess.Popen(
                    command, env=dict(base, KERASTUNER_TUNER_ID=role), cwd=ROOT,
                    stdout=stdout, stderr=stderr)
            deadline = time.monotonic() + TIMEOUT_S
            # Stop early when one fails: a worker whose chief died waits for
            # it (KerasTuner's gRPC calls wait up to an hour), and the chief
            # waits for every worker that asked it for a trial.
            while (any(p.poll() is None for p in processes.values())
                   and not any(p.poll() for p in processes.values())
                   and time.monotonic() < deadline):
                if processes["chief"].poll() == 0:
                    # The chief leaves once every worker it knows was told
                    # to stop; those have only to exit. A worker still
                    # running long after would wait for a chief that is gone.
                    deadline = min(deadline, time.monotonic() + AFTER_CHIEF_S)
                time.sleep(0.5)
            return {role: p.poll() for role, p in processes.items()}
        finally:
            for p in processes.values():
                if p.poll() is None:
                    p.kill()
            for p in processes.values():
                p.wait(timeout=30)


def _log_tails(folder):
    tails = []
    for role in ROLES:
        for suffix in ("out", "err"):
            log = folder / f"{role}.{suffix}"
            if not log.exists():
                continue
            lines = [line for line in log.read_text().splitlines()
                     if not line.startswith(("I0000", "W0000", "WARNING: All"))]
            tails.append(f"--- {log.name}:\n" + "\n".join(lines[-25:]))
    return "\n".join(tails)


@pytest.fixture(scope="module")
def cluster(idx_dir, tmp_path_factory):
    """Runs the search once on three processes; returns the results folder,
    each role's stdout and exit code, and the seconds it took."""
    for attempt in range(2):  # a second try if another process took the port
        folder = tmp_path_factory.mktemp(f"tune_cluster{attempt}")
        try:
            port = _free_port()
        except OSError as error:
            pytest.skip(f"cannot bind a socket on 127.0.0.1: {error}")
        started = time.monotonic()
        codes = _run_cluster(idx_dir, folder, port)
        seconds = time.monotonic() - started
        if BIND_FAILED not in (folder / "chief.err").read_text():
            break
    else:
        pytest.skip(f"the chief could not bind a port on 127.0.0.1:\n"
                    f"{_log_tails(folder)}")
    if list(codes.values()) != [0] * len(ROLES):
        status = {role: "killed" if code is None else f"exit {code}"
                  for role, code in codes.items()}
        pytest.fail(f"after {seconds:.0f} s the processes ended with {status}:\n"
                    f"{_log_tails(folder)}")
    return {"out": folder / "search", "codes": codes, "seconds": seconds,
            "stdout": {role: (folder / f"{role}.out").read_text()
                       for role in ROLES},
            "logs": _log_tails(folder)}


def _trial_lines(text):
    return [m.groupdict() for m in map(TRIAL_LINE.match, text.splitlines()) if m]


def _trials_by_worker(cluster):
    return {role: [line["trial"] for line in _trial_lines(cluster["stdout"][role])]
            for role in WORKERS}


def test_every_process_exits_cleanly(cluster):
    # The fixture fails unless all three exited with status 0 in TIMEOUT_S.
    assert cluster["codes"] == {role: 0 for role in ROLES}
    assert cluster["seconds"] < TIMEOUT_S
    for role in WORKERS:
        assert f"worker {role}: no trials left" in cluster["stdout"][role], \
            cluster["logs"]


def test_the_chief_writes_every_trial_completed(cluster):
    out = cluster["out"]
    rows = tuning.read_trials_csv(out / tuning.TRIALS_FILE)
    ids = [row["trial_id"] for row in rows]
    assert len(rows) == MAX_TRIALS
    assert len(set(ids)) == MAX_TRIALS
    assert [row["status"] for row in rows] == ["COMPLETED"] * MAX_TRIALS
    assert all(float(row["val_mse"]) > 0 for row in rows)
    for name in (tuning.BEST_MODEL_FILE, tuning.BEST_HYPERPARAMETERS_FILE,
                 "metrics.json"):
        assert (out / name).is_file(), name


def test_no_trial_runs_twice(cluster):
    by_worker = _trials_by_worker(cluster)
    ran = [trial for trials in by_worker.values() for trial in trials]
    rows = tuning.read_trials_csv(cluster["out"] / tuning.TRIALS_FILE)
    # Each worker tags its own lines, and only its own.
    for role in WORKERS:
        assert {line["tuner"] for line in
                _trial_lines(cluster["stdout"][role])} <= {role}
    assert len(ran) == len(set(ran)) == MAX_TRIALS, by_worker
    assert set(ran) == {row["trial_id"] for row in rows}, by_worker


def test_each_workers_result_reached_the_chief(cluster):
    rows = {row["trial_id"]: row for row in
            tuning.read_trials_csv(cluster["out"] / tuning.TRIALS_FILE)}
    for role in WORKERS:
        for line in cluster["stdout"][role].splitlines():
            match = RESULT_LINE.match(line)
            if TRIAL_LINE.match(line):
                assert match, line  # a finished trial, with its val MSE
                row = rows[match["trial"]]
                assert match["model"] == row["model"], (line, row)
                assert match["val_mse"] == f"{float(row['val_mse']):.5f}", (line, row)


def test_both_workers_ran_trials(cluster):
    # KerasTuner hands a trial to whichever worker asks first. Both workers
    # start together and load the same data, so each asks for its first
    # trial within a second or two of the other, while the four trials take
    # ~4 s each: both get some (two each in the runs checked). A worker that
    # lagged by the whole search would not get zero trials but hang: the
    # chief, not knowing it, leaves, and KerasTuner's client waits up to an
    # hour for it (the fixture then fails after AFTER_CHIEF_S). So this is no
    # more flaky than the fixture itself; should it ever be, the issue's
    # claim (no trial twice) stays with test_no_trial_runs_twice.
    by_worker = _trials_by_worker(cluster)
    assert all(by_worker[role] for role in WORKERS), by_worker


def test_the_chief_runs_no_trial_and_reports_each_and_the_summary(cluster):
    stdout = cluster["stdout"]["chief"]
    # no line of a trial run here: only the oracle's report of each trial a
    # worker ended, numbered as they ended
    reported = _trial_lines(stdout)
    assert [line["tuner"] for line in reported] == [
        f"{n}/{MAX_TRIALS}" for n in range(1, MAX_TRIALS + 1)]
    rows = tuning.read_trials_csv(cluster["out"] / tuning.TRIALS_FILE)
    assert sorted(line["trial"] for line in reported) == sorted(
        row["trial_id"] for row in rows)
    # KerasTuner 1.4.8's stray print of conditional values is silenced
    assert not {"conv", "dense"} & set(stdout.split("\n"))
    assert "serving the oracle to workers" in stdout
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines)
                  if line.split()[:3] == ["rank", "trial", "val"])
    ranked = [line.split() for line in lines[header + 1:header + 1 + MAX_TRIALS]]
    assert [row[0] for row in ranked] == [str(r) for r in range(1, MAX_TRIALS + 1)]
    assert {row[1] for row in ranked} == {row["trial_id"] for row in rows}
    assert "best: trial" in stdout
