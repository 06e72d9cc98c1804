"""Training on a cluster: TF_CONFIG checks and the custom loop in this process
(default strategy), then two workers on 127.0.0.1 through ``keras-ae train``.

No MultiWorkerMirroredStrategy is ever created in the pytest process: it
would start a server and collective state that outlive the test. The cluster
runs as two ``keras-ae train`` subprocesses, the same command with each its
own TF_CONFIG, as the README tells users to run it.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import smooth_images, write_blob_idx

import keras_ae
from keras_ae.training import multi_worker as cluster
from keras_ae.training import loop as training
from keras_ae.errors import InputError

# slow: a cluster of training processes (`pytest -m "not slow"` leaves them out)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
TIMEOUT_S = 240  # for the whole cluster: ~30 s idle, longer on 2 busy cores


# --- TF_CONFIG -------------------------------------------------------------

@pytest.fixture
def no_strategy(monkeypatch):
    """Makes creating the real strategy fail the test instead of happening."""
    def refuse():
        pytest.fail("validation let a bad TF_CONFIG through")
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", refuse)
    monkeypatch.setattr(cluster, "_strategy", None)


@pytest.mark.parametrize("tf_config, message", [
    (None, r"TF_CONFIG must be set .*\"cluster\": \{\"worker\".*got None"),
    ("", "TF_CONFIG must be set"),
    ("{cluster: [", r"must be JSON like .*got '\{cluster: \['"),
    ("[]", "must have a 'cluster' and a 'task'"),
    ('{"cluster": {"worker": ["a:1"]}}', "must have a 'cluster' and a 'task'"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
     "must list 'worker'"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", '
     '"index": 0}}', r"'host:port' strings, got \['localhost'\]"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
     "non-empty list"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     r"one of the cluster's jobs \['worker'\]"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", '
     '"index": 2}}', r"in \[0, 2\).*got task"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
     '"index": "0"}}', "task index must be an integer"),
])
def test_multi_worker_strategy_rejects_bad_tf_config(monkeypatch, no_strategy,
                                                     tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(InputError, match=message):
        cluster.multi_worker_strategy()


def test_multi_worker_strategy_is_made_once(monkeypatch):
    made = []
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy",
                        lambda: made.append("strategy") or "strategy")
    monkeypatch.setattr(cluster, "_strategy", None)
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"chief": ["host0:2222"], "worker": ["host1:2222"]},
        "task": {"type": "worker", "index": 0}}))
    assert cluster.multi_worker_strategy() == "strategy"
    assert cluster.multi_worker_strategy() == "strategy"
    assert made == ["strategy"]


def test_a_cluster_asked_for_too_late_says_what_to_do(monkeypatch):
    def too_late():  # what TensorFlow raises once it has run anything
        raise RuntimeError("Collective ops must be configured at program startup")
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", too_late)
    monkeypatch.setattr(cluster, "_strategy", None)
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["a:1", "b:2"]},
        "task": {"type": "worker", "index": 1}}))
    with pytest.raises(InputError,
                       match=r"call keras_ae.training.loop.configure_devices\(\) first"):
        training.configure_devices()


# --- the loop, in this process ---------------------------------------------

def _pairs(images, batch):
    return tf.data.Dataset.from_tensor_slices((images, images)).batch(batch)


def _compiled_unpool():
    return training.compile_autoencoder(keras_ae.build_conv_autoencoder(
        (16, 16, 1), filters=(4, 2), decoder="unpool"))


class _Killed(Exception):
    pass


class _KillAtEpoch(keras.callbacks.Callback):
    """Stops the process's training the way a kill would: mid-run, no cleanup."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Killed


def test_fit_on_cluster_reports_what_evaluate_measures():
    images = smooth_images(40)
    model = _compiled_unpool()
    history = cluster.fit_on_cluster(
        model, _pairs(images[:32], 8), _pairs(images[32:], 8),
        strategy=tf.distribute.get_strategy(), epochs=3,
        backup_dir=None, verbose=0)
    assert history.epoch == [0, 1, 2]
    losses = history.history["loss"]
    assert losses[0] > losses[1] > losses[2]
    # val_loss is the mean over the validation images of the final model
    assert history.history["val_loss"][-1] == pytest.approx(
        model.evaluate(_pairs(images[32:], 8), verbose=0), rel=1e-5)


def test_fit_on_cluster_resumes_from_the_epoch_it_saved(tmp_path):
    images = smooth_images(32)
    backup = tmp_path / "backup" / "worker_0"
    strategy = tf.distribute.get_strategy()
    killed = _compiled_unpool()
    with pytest.raises(_Killed):
        cluster.fit_on_cluster(killed, _pairs(images, 8), strategy=strategy,
                               epochs=4, backup_dir=backup,
                               callbacks=[_KillAtEpoch(2)], verbose=0)
    assert backup.is_dir()  # left behind, as a kill leaves it

    class FirstWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = self.model.get_weights()

    restarted, seen = _compiled_unpool(), FirstWeights()
    history = cluster.fit_on_cluster(restarted, _pairs(images, 8),
                                     strategy=strategy, epochs=4,
                                     backup_dir=backup, callbacks=[seen],
                                     verbose=0)
    assert history.epoch == [2, 3]  # epochs 0 and 1 were saved
    for restored, saved in zip(seen.weights, killed.get_weights()):
        np.testing.assert_array_equal(restored, saved)
    assert not backup.exists()  # finished: the backup is gone


# --- two workers through keras-ae train ------------------------------------

def _free_ports(count):
    """Ports free on 127.0.0.1 right now (the OS picks them, then we let go)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _train_args(data_dir, output, epochs):
    # float32: the runs are compared to 1e-5, finer than bfloat16 rounds
    return ["train", "--data-dir", str(data_dir), "--filters", "8,4",
            "--batch-size", "16", "--epochs", str(epochs),
            "--mixed-precision", "off", "--output", str(output)]


def _start_cluster(args, logs, ports):
    cluster_spec = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(len(ports)):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0",
                   TF_CONFIG=json.dumps({"cluster": cluster_spec, "task": {
                       "type": "worker", "index": index}}))
        with open(logs / f"worker{index}.log", "a") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "keras_ae.cli", *args], env=env,
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    return processes


def _wait(processes, until=lambda: False):
    """Waits for all to end, one to fail, or ``until()``; returns exit codes."""
    deadline = time.monotonic() + TIMEOUT_S
    while (any(p.poll() is None for p in processes)
           and not any(p.poll() for p in processes)
           and not until() and time.monotonic() < deadline):
        time.sleep(0.1)
    return [p.poll() for p in processes]


def _stop(processes):
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)


def _log_tails(logs):
    return "\n".join(f"--- {log.name}:\n" + "\n".join(
        log.read_text().splitlines()[-25:]) for log in sorted(logs.glob("*.log")))


def _history_rows(output):
    return training.read_history(output / training.HISTORY_FILE)


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    """Two workers, killed with -9 after their first epoch and started again
    with the same command; then the same run on one machine, to compare."""
    folder = tmp_path_factory.mktemp("cluster")
    (folder / "idx").mkdir()
    data_dir = write_blob_idx(folder / "idx", 160, 32)
    output, logs = folder / "run", folder / "logs"
    logs.mkdir()
    args = _train_args(data_dir, output, epochs=3)
    ports = _free_ports(WORKERS)
    first = _start_cluster(args, logs, ports)
    try:
        codes = _wait(first, until=lambda: len(_history_rows(output)) >= 1)
    finally:
        _stop(first)
    if any(codes):
        pytest.fail(f"first start ended with {codes}:\n{_log_tails(logs)}")
    killed_after = len(_history_rows(output))
    second = _start_cluster(args, logs, _free_ports(WORKERS))
    try:
        codes = _wait(second)
    finally:
        _stop(second)
    if codes != [0] * WORKERS:
        pytest.fail(f"workers ended with {codes}:\n{_log_tails(logs)}")

    alone = folder / "alone"
    single = subprocess.run(
        [sys.executable, "-m", "keras_ae.cli",
         *_train_args(data_dir, alone, epochs=3)],
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""), cwd=ROOT,
        capture_output=True, text=True, timeout=TIMEOUT_S)
    assert single.returncode == 0, single.stdout + single.stderr
    return {"output": output, "alone": alone, "killed_after": killed_after,
            "logs": [(logs / f"worker{i}.log").read_text()
                     for i in range(WORKERS)]}


def test_workers_end_with_identical_weights(cluster_run):
    printed = [[line.split("weights fingerprint ")[1] for line in
                log.splitlines() if "weights fingerprint" in line]
               for log in cluster_run["logs"]]
    assert all(len(fingerprints) == 1 for fingerprints in printed), printed
    assert printed[0] == printed[1]
    saved = keras.models.load_model(cluster_run["output"] / "model.keras")
    assert cluster.weights_fingerprint(saved) == printed[0][0]


def test_the_chief_writes_one_complete_run_folder(cluster_run):
    output = cluster_run["output"]
    names = {path.name for path in output.iterdir()}
    assert names == {"run.json", "history.csv", "checkpoints", "logs",
                     "model.keras", "metrics.json", "reconstructions.png",
                     "loss_curves.png", "keras-ae.json"}  # and no backup/: finished
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == [
        "epoch_001.keras", "epoch_002.keras", "epoch_003.keras"]
    assert list((output / "logs").rglob("events.out.tfevents.*"))
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["devices"].startswith("worker_0 of 2 workers")
    assert "devices: worker_1 of 2 workers" in cluster_run["logs"][1]
    assert "test: MSE" not in cluster_run["logs"][1]  # the chief measures


def test_a_killed_cluster_resumes_with_the_same_command(cluster_run):
    assert 1 <= cluster_run["killed_after"] < 3
    assert "(resumed an interrupted run)" in cluster_run["logs"][0]
    rows = _history_rows(cluster_run["output"])
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    losses = [row["loss"] for row in rows]
    assert losses[0] > losses[1] > losses[2]


def test_the_cluster_trains_what_one_machine_trains(cluster_run):
    """Each worker takes its half of every global batch: the sum of their
    gradients is the one machine's gradient, so the runs agree up to float
    rounding (and the resume, which restarts the shuffle's sequence)."""
    together = _history_rows(cluster_run["output"])
    alone = _history_rows(cluster_run["alone"])
    # The first epoch ran before the kill, from the same seeds.
    assert together[0]["loss"] == pytest.approx(alone[0]["loss"], rel=1e-5)
    assert together[0]["val_loss"] == pytest.approx(alone[0]["val_loss"],
                                                    rel=1e-5)
