"""A full disk while a command writes: one line naming the output folder,
exit 2, no torn or leftover file beside what was there before, and the
same command succeeds once space is freed.

The output folder is a small tmpfs, nearly filled by a file of the user's
(``filler``), so each command runs out of space part way through its
writing. Mounting needs root; elsewhere these tests skip.
"""

import contextlib
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import checksums, one_line_error

from keras_ae import files
from keras_ae.cli import commands as cli

pytestmark = pytest.mark.slow  # five commands, each run twice


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs at ``tmp_path/disk``, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def filled(disk, leave):
    """Fills ``disk`` with the user's ``filler`` file but ``leave`` bytes."""
    statistics = os.statvfs(disk)
    free = statistics.f_bavail * statistics.f_frsize
    (disk / "filler").write_bytes(os.urandom(max(0, free - leave)))
    return disk / "filler"


@contextlib.contextmanager
def then_freed(disk, command, args, capsys, leave):
    """Runs ``args`` on a nearly full ``disk``: exit 2, one line naming the
    output, nothing but the filler left; then, the filler removed, the same
    command succeeds. Yields the output folder afterwards."""
    filler = filled(disk, leave)
    before = checksums(disk)
    assert cli.main(args) == 2
    line = one_line_error(capsys, command)
    assert "no space left" in line.lower() and str(disk / "out") in line, line
    after = checksums(disk)
    assert after == before or set(after) - set(before) <= _resumable(command, disk), after
    leftovers = [path for path in disk.rglob("*") if files.is_keras_ae_own(path.name)
                 and path.name != files.MANIFEST_FILE]
    assert not leftovers, leftovers
    filler.unlink()
    assert cli.main(args) == 0, capsys.readouterr().err
    yield disk / "out"


def _resumable(command, disk):
    """What a run may leave to be resumed by the same command: its settings
    and manifest, TensorBoard's logs and whole checkpoints, never a torn one."""
    out = disk / "out"
    kept = {p for p in checksums(disk) if p.startswith("out/")}
    for path in kept:
        if path.endswith(".keras"):
            import zipfile
            assert zipfile.is_zipfile(disk / path), f"torn: {path}"
    return kept if command in ("train", "tune") and out.exists() else set()


def test_train(small_disk, small_idx_dir, capsys):
    args = ["train", "--data-dir", str(small_idx_dir), "--filters", "32,16",
            "--epochs", "2", "--batch-size", "32", "--output", str(small_disk / "out")]
    with then_freed(small_disk, "train", args, capsys, leave=200_000) as out:
        assert (out / "model.keras").is_file() and (out / "metrics.json").is_file()


def test_tune(small_disk, small_idx_dir, capsys):
    args = ["tune", "--data-dir", str(small_idx_dir), "--tuner", "random",
            "--max-trials", "1", "--max-epochs", "1", "--code-size", "196",
            "--filters", "32,16", "--batch-sizes", "32", "--output", str(small_disk / "out")]
    with then_freed(small_disk, "tune", args, capsys, leave=200_000) as out:
        assert (out / "best_model.keras").is_file()


def test_export(small_disk, trained_run, capsys):
    args = ["export", str(trained_run / "model.keras"), "--output",
            str(small_disk / "out"), "--formats", "onnx"]
    with then_freed(small_disk, "export", args, capsys, leave=30_000) as out:
        assert (out / "model.onnx").is_file() and (out / "model_card.json").is_file()


def test_predict(small_disk, trained_export, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(40):
        Image.fromarray(rng.integers(0, 255, (28, 28), np.uint8)).save(images / f"{index}.png")
    args = ["predict", str(trained_export / "model.onnx"),
            *sorted(map(str, images.iterdir())), "--output", str(small_disk / "out")]
    with then_freed(small_disk, "predict", args, capsys, leave=12_000) as out:
        assert len(list(out.glob("*_reconstruction.png"))) == 40


def test_anomaly(small_disk, trained_run, small_idx_dir, capsys):
    args = ["anomaly", str(trained_run / "model.keras"), "--data-dir", str(small_idx_dir),
            "--output", str(small_disk / "out"), "--anomaly-classes", "9"]
    with then_freed(small_disk, "anomaly", args, capsys, leave=30_000) as out:
        assert (out / "anomaly.json").is_file()
