"""A quiet, honest command line: TensorFlow's start-up log hidden (shown
with --verbose), bad input in one line with exit code 2, bugs with their
traceback."""

import subprocess
import sys

import pytest

from keras_ae.models import builders
from keras_ae.cli import commands as cli
from keras_ae.cli import quiet
from keras_ae.errors import InputError

# slow: whole commands in fresh processes (`pytest -m "not slow"` leaves them out)
pytestmark = pytest.mark.slow


def keras_ae_command(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "keras_ae.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_one_epoch_run_and_help_print_no_start_up_log(small_idx_dir, tmp_path):
    done = keras_ae_command("train", "--data-dir", small_idx_dir, "--filters",
                            "4,2", "--convs-per-stage", "1", "--epochs", "1",
                            "--output", tmp_path / "run")
    assert done.returncode == 0, done.stderr[-2000:]
    printed = done.stdout + done.stderr
    assert "cuInit" not in printed and "I0000" not in printed
    assert "absl::InitializeLog" not in printed
    assert "test: MSE" in done.stdout and done.stderr == ""
    helped = keras_ae_command("train", "--help")
    assert helped.returncode == 0 and "cuInit" not in helped.stdout + helped.stderr


def test_verbose_shows_what_tensorflow_writes(tmp_path):
    quiet_run = keras_ae_command("summary", "--brief")
    loud_run = keras_ae_command("summary", "--brief", "--verbose")
    assert quiet_run.returncode == loud_run.returncode == 0
    assert quiet_run.stderr.strip() == ""
    assert "oneDNN" in loud_run.stderr or "cuda" in loud_run.stderr.lower()


@pytest.mark.parametrize("line, noise", [
    ("WARNING: All log messages before absl::InitializeLog() is called are "
     "written to STDERR", True),
    ("I0000 00:00:1795582653.678338   23892 port.cc:153] oneDNN custom "
     "operations are on.", True),
    ("E0000 00:00:1795582777.490743   24808 cuda_platform.cc:52] failed call "
     "to cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303)", True),
    ("E0000 00:00:1795582777.490743   24808 op_kernel.cc:12] OOM when "
     "allocating tensor", False),
    ("Traceback (most recent call last):", False),
])
def test_only_known_start_up_lines_are_noise(line, noise):
    assert quiet.is_start_up_noise(line) is noise


def test_bad_input_is_one_line_and_exit_code_2(monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise InputError("input_shape (1, 1, 1) is too small")
    monkeypatch.setattr(builders, "build_dense_autoencoder", refuse)
    assert cli.main(["summary", "--brief"]) == 2
    err = capsys.readouterr().err
    assert err == "keras-ae summary: error: input_shape (1, 1, 1) is too small\n"


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("a bug, not bad input")
    monkeypatch.setattr(builders, "build_dense_autoencoder", broken)
    with pytest.raises(ValueError, match="a bug, not bad input"):
        cli.main(["summary", "--brief"])


@pytest.mark.parametrize("line, decoder", [
    ("E0000 00:00:1796043198.255019    6272 jpeg_mem.cc:331] Premature end of "
     "JPEG data. Stopped at line 0/32\n", True),
    ("E0000 00:00:1796043198.255019    6272 png_io.cc:92] PNG warning\n", True),
    ("E0000 00:00:1796043198.255019    6272 cuda_platform.cc:52] failed call "
     "to cuInit\n", False),
    ("Premature end of JPEG data\n", False),  # not TensorFlow's log format
])
def test_image_decoder_lines_are_told_apart(line, decoder):
    assert quiet.is_image_decoder_line(line) is decoder
