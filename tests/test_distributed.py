"""keras_ae.distributed: TF_CONFIG checks and the training loop in this
process (default strategy), then a real two-worker cluster on 127.0.0.1.

No MultiWorkerMirroredStrategy is ever created in the pytest process: it
would start a server and collective state that outlive the test. The cluster
runs as two subprocesses (tests/distributed_worker.py), once per module.
"""

import contextlib
import doctest
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import keras_ae
from keras_ae import distributed

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
TIMEOUT_S = 180  # for the whole cluster: ~15 s idle, ~40 s on 2 busy cores
DECODERS = ("upsample", "unpool")


# --- TF_CONFIG -------------------------------------------------------------

@pytest.fixture
def no_strategy(monkeypatch):
    """Makes creating the real strategy fail the test instead of happening."""
    def refuse():
        pytest.fail("validation let a bad TF_CONFIG through")
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", refuse)


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
    with pytest.raises(ValueError, match=message):
        distributed.multi_worker_strategy()


def test_multi_worker_strategy_accepts_a_good_tf_config(monkeypatch):
    made = []
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy",
                        lambda: made.append("strategy") or "strategy")
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"chief": ["host0:2222"], "worker": ["host1:2222"]},
        "task": {"type": "worker", "index": 0}}))
    assert distributed.multi_worker_strategy() == "strategy"
    assert made == ["strategy"]


# --- the training loop, in this process ------------------------------------

def _make_dataset(context):
    images = worker.smooth_images(count=16)
    batch = context.get_per_replica_batch_size(8)
    return tf.data.Dataset.from_tensor_slices((images, images)).batch(batch)


def _build_unpool():
    return keras_ae.build_conv_autoencoder((16, 16, 1), filters=(4, 2),
                                           decoder="unpool")


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
    ({"steps_per_epoch": 0}, "steps_per_epoch must be None or a positive"),
    ({"verbose": 2}, "verbose must be 0 or 1, got 2"),
    ({"strategy": "mirrored"}, "strategy must be a tf.distribute.Strategy"),
    ({"build_model": lambda: "model"},
     "build_model must return a keras.Model, got 'model'"),
    ({"make_dataset": lambda context: tf.data.Dataset.range(3)},
     "make_dataset must return a dataset of .input, target. pairs"),
])
def test_fit_distributed_rejects_bad_arguments(changes, message):
    arguments = {"build_model": _build_unpool, "make_dataset": _make_dataset,
                 "strategy": tf.distribute.get_strategy(), "epochs": 1,
                 **changes}
    build_model = arguments.pop("build_model")
    make_dataset = arguments.pop("make_dataset")
    with pytest.raises(ValueError, match=message):
        distributed.fit_distributed(build_model, make_dataset, **arguments)


def test_fit_distributed_resumes_from_its_checkpoint(tmp_path, capsys):
    run = lambda epochs: distributed.fit_distributed(  # noqa: E731
        _build_unpool, _make_dataset, strategy=tf.distribute.get_strategy(),
        epochs=epochs, checkpoint_dir=str(tmp_path))
    first = run(1)
    again = run(1)  # already at epoch 1: restores and trains nothing
    resumed = run(2)

    assert first["epochs"] == [1] and first["steps"] == [2]
    assert first["images"] == [16]
    assert again["epochs"] == again["loss"] == []
    for saved, restored in zip(first["model"].get_weights(),
                               again["model"].get_weights()):
        np.testing.assert_array_equal(restored, saved)
    assert resumed["epochs"] == [2]
    assert resumed["loss"][0] < first["loss"][0]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/1",
                                                      "epoch 2/2"]
    assert "images/s" in lines[0]


def test_docstring_examples():
    result = doctest.testmod(distributed)
    assert result.attempted > 0
    assert result.failed == 0


# --- two workers on 127.0.0.1 ----------------------------------------------

def _free_ports(count):
    """Ports free on 127.0.0.1 right now (the OS picks them, then we let go)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _run_cluster(out, ports):
    """Runs one worker per port; returns their exit codes (None: killed)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    temp = out / "tmp"  # where non-chief workers put their checkpoints
    temp.mkdir()
    processes = []
    with contextlib.ExitStack() as stack:
        try:
            for index in range(len(ports)):
                env = dict(
                    os.environ, CUDA_VISIBLE_DEVICES="", TMPDIR=str(temp),
                    TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="0",
                    PYTHONPATH=os.pathsep.join(
                        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                    TF_CONFIG=json.dumps({"cluster": cluster, "task": {
                        "type": "worker", "index": index}}))
                log = stack.enter_context(open(out / f"worker{index}.log", "w"))
                processes.append(subprocess.Popen(
                    [sys.executable, str(Path(worker.__file__)), "--out",
                     str(out), "--decoders", ",".join(DECODERS)],
                    env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
            deadline = time.monotonic() + TIMEOUT_S
            # Stop early when one fails: the others would wait for it forever.
            while (any(p.poll() is None for p in processes)
                   and not any(p.poll() for p in processes)
                   and time.monotonic() < deadline):
                time.sleep(0.2)
            return [p.poll() for p in processes]
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                p.wait(timeout=30)


def _log_tails(out):
    tails = []
    for log in sorted(out.glob("worker*.log")):
        lines = [line for line in log.read_text().splitlines()
                 if not line.startswith(("I0000", "W0000", "WARNING: All"))]
        tails.append(f"--- {log.name}:\n" + "\n".join(lines[-25:]))
    return "\n".join(tails)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Runs the two workers once; returns their results, worker 0 first."""
    for attempt in range(2):  # a second try if another process took a port
        out = tmp_path_factory.mktemp(f"cluster{attempt}")
        try:
            ports = _free_ports(WORKERS)
        except OSError as error:
            pytest.skip(f"cannot bind a socket on 127.0.0.1: {error}")
        codes = _run_cluster(out, ports)
        if worker.BIND_FAILED not in codes:
            break
    else:
        pytest.skip("the workers could not bind ports on 127.0.0.1:\n"
                    + _log_tails(out))
    if codes != [0] * WORKERS:
        status = ["killed after timeout" if c is None else f"exit {c}"
                  for c in codes]
        pytest.fail(f"workers ended with {status}:\n{_log_tails(out)}")
    results = []
    for index in range(WORKERS):
        with np.load(out / f"worker{index}.npz") as weights:
            weights = dict(weights)
        summary = json.loads((out / f"worker{index}.json").read_text())
        log = (out / f"worker{index}.log").read_text()
        results.append({"weights": weights, "log": log, "out": out, **summary})
    return results


def _weights(result, decoder, stage):
    prefix = f"{decoder}/{stage}/"
    keys = sorted((k for k in result["weights"] if k.startswith(prefix)),
                  key=lambda k: int(k[len(prefix):]))
    return [result["weights"][k] for k in keys]


def test_two_workers_form_one_cluster(cluster):
    assert [r["index"] for r in cluster] == [0, 1]
    assert [r["replicas"] for r in cluster] == [WORKERS] * WORKERS


@pytest.mark.parametrize("decoder", DECODERS)
def test_workers_end_with_the_same_weights(cluster, decoder):
    chief, other = cluster
    for stage in ("initial", "epoch1", "final"):
        chief_weights = _weights(chief, decoder, stage)
        other_weights = _weights(other, decoder, stage)
        assert len(chief_weights) == len(other_weights) > 0
        for a, b in zip(chief_weights, other_weights):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-6,
                                       err_msg=f"{decoder}, {stage}")


@pytest.mark.parametrize("decoder", DECODERS)
def test_training_changed_the_weights_and_lowered_the_loss(cluster, decoder):
    chief, other = cluster
    initial = _weights(chief, decoder, "initial")
    final = _weights(chief, decoder, "final")
    assert max(np.abs(f - i).max() for f, i in zip(final, initial)) > 1e-3
    # MSE on all 64 images: at the start, after epoch 1, after the resumed
    # epoch 2. It must fall at each step (epoch 2 started from epoch 1).
    mse = chief["mse"][decoder]
    assert all(np.isfinite(mse))
    assert mse[0] > mse[1] > mse[2]
    np.testing.assert_allclose(other["mse"][decoder], mse, rtol=1e-5)
    # The reported loss is all-reduced, so it is the same on both workers.
    assert chief["history"][decoder] == other["history"][decoder]
    first, resumed = chief["history"][decoder]
    assert first["loss"][0] > resumed["loss"][0]


@pytest.mark.parametrize("decoder", DECODERS)
def test_each_worker_trained_on_its_half_of_the_data(cluster, decoder):
    steps = worker.IMAGES // worker.GLOBAL_BATCH
    for result in cluster:
        for run in result["history"][decoder]:
            # Unsharded, each worker would take twice as many steps.
            assert run["steps"] == [steps]
            assert run["steps"][0] * worker.GLOBAL_BATCH == worker.IMAGES
            assert run["images"] == [worker.IMAGES]


@pytest.mark.parametrize("decoder", DECODERS)
def test_only_the_chief_keeps_checkpoints_and_resumed_from_them(cluster,
                                                                decoder):
    chief = cluster[0]
    for result in cluster:
        assert [run["epochs"] for run in result["history"][decoder]] == [
            [1], [2]]
    checkpoints = chief["out"] / f"checkpoints_{decoder}"
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-2")
    # Worker 1 saved into a temporary folder of its own and deleted it.
    assert list((chief["out"] / "tmp").iterdir()) == []


def test_only_the_chief_prints_progress(cluster):
    chief, other = cluster
    progress = [line for line in chief["log"].splitlines()
                if line.startswith("epoch ")]
    assert len(progress) == 2 * len(DECODERS)
    assert all("images/s" in line for line in progress)
    assert "epoch " not in other["log"]
