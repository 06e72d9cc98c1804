"""The command line parses, calls the library once and prints: followed call
by call (``sys.setprofile``) through ``keras-ae train``."""

import sys

import pytest

from keras_ae.cli import commands as cli


def _side(module):
    if module.startswith("keras_ae.cli"):
        return "cli"
    return "library" if module.startswith("keras_ae") else None


@pytest.mark.slow
def test_train_enters_the_library_once_and_the_library_never_calls_back(
        small_idx_dir, tmp_path):
    crossings = []  # (from, to, function) for every call between the two sides

    def watch(frame, event, arg):
        if event != "call" or frame.f_back is None:
            return
        callee = _side(frame.f_globals.get("__name__", ""))
        caller = _side(frame.f_back.f_globals.get("__name__", ""))
        if callee and caller and callee != caller:
            crossings.append((caller, callee, frame.f_code.co_qualname))

    sys.setprofile(watch)
    try:
        code = cli.main(["train", "--data-dir", str(small_idx_dir), "--output",
                         str(tmp_path / "run"), "--epochs", "1", "--filters", "4,2",
                         "--convs-per-stage", "1", "--batch-size", "64"])
    finally:
        sys.setprofile(None)
    assert code == 0
    # never a call from the library up into the command line (no callback)
    assert [c for c in crossings if c[1] == "cli"] == []
    work = [name for _, _, name in crossings
            if not name.endswith(("__init__", "__getattr__"))]  # values and names
    # the library is entered once, for the whole run, and not again after it:
    # what follows is printing the result's fields
    assert work == ["run_training"]
    assert crossings[-1][2] == "run_training"
