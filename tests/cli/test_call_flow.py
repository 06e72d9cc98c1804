"""The command line parses, calls the library once and prints: followed call
by call (``sys.setprofile``) through the commands."""

import sys

import pytest

from keras_ae.cli import commands as cli


def _side(module):
    if module.startswith("keras_ae.cli"):
        return "cli"
    return "library" if module.startswith("keras_ae") else None


def _crossings(argv):
    """The exit code of ``keras-ae ARGV`` and ``(from, to, function)`` of
    every call between the command line and the library while it ran."""
    crossings = []

    def watch(frame, event, arg):
        if event != "call" or frame.f_back is None:
            return
        callee = _side(frame.f_globals.get("__name__", ""))
        caller = _side(frame.f_back.f_globals.get("__name__", ""))
        if callee and caller and callee != caller:
            crossings.append((caller, callee, frame.f_code.co_qualname))

    sys.setprofile(watch)
    try:
        code = cli.main(argv)
    finally:
        sys.setprofile(None)
    return code, crossings


def _assert_one_call(crossings, function):
    # never a call from the library up into the command line (no callback)
    assert [c for c in crossings if c[1] == "cli"] == []
    work = [name for _, _, name in crossings
            if not name.endswith(("__init__", "__getattr__"))]  # values and names
    # the library is entered once, for the whole command, and not after it:
    # what follows is printing the result
    assert work == [function]
    assert crossings[-1][2] == function


@pytest.mark.slow
def test_train_enters_the_library_once_and_the_library_never_calls_back(
        small_idx_dir, tmp_path):
    code, crossings = _crossings(
        ["train", "--data-dir", str(small_idx_dir), "--output", str(tmp_path / "run"),
         "--epochs", "1", "--filters", "4,2", "--convs-per-stage", "1", "--batch-size", "64"])
    assert code == 0
    _assert_one_call(crossings, "run_training")


@pytest.mark.slow
@pytest.mark.parametrize("command, function", [
    (["export", "--formats", "onnx"], "export_trained"),
    (["features", "--train-images", "100"], "run_features"),
    (["cluster", "--max-images", "100"], "run_cluster"),
])
def test_the_other_commands_enter_the_library_once(trained_run, idx_dir, tmp_path, command,
                                                   function):
    name, *flags = command
    data = [] if name == "export" else ["--data-dir", str(idx_dir)]
    code, crossings = _crossings([name, str(trained_run / "model.keras"), *data, *flags,
                                  "--output", str(tmp_path / name)])
    assert code == 0
    _assert_one_call(crossings, function)
