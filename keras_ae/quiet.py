"""TensorFlow's start-up log, kept off the command line's terminal.

Importing TensorFlow 2.21 writes lines such as ``I0000 ... port.cc:153]
oneDNN custom operations are on`` and, on a machine without a GPU, ``E0000
... failed call to cuInit: ... UNKNOWN ERROR (303)`` straight to file
descriptor 2, from C++, before ``TF_CPP_MIN_LOG_LEVEL`` takes effect (absl
logs everything until it is initialised). The cuInit line reads like a
failure and is not one. ``start_tensorflow`` imports TensorFlow and lists
its devices (where cuInit is called) with descriptor 2 pointed at a
temporary file, then puts back every captured line that is not known
start-up noise, so real errors still show.
"""

import contextlib
import os
import re
import sys
import tempfile

# absl's prefix: level, date, time, thread, file:line]
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ ([\w.]+):\d+\] (.*)")
_NOISE_TEXT = (
    "All log messages before absl::InitializeLog() is called",
    "To enable the following instructions:",  # cpu_feature_guard's second line
)
# E lines that mean only "no GPU here"
_NO_GPU = ("failed call to cuInit", "Could not find cuda drivers")


def start_tensorflow(verbose=False):
    """Imports TensorFlow and finds its devices, quietly unless ``verbose``.

    Call it before anything else imports TensorFlow; later calls do
    nothing. With ``verbose`` the log is left as TensorFlow writes it.

    Returns:
        The ``tensorflow`` module.
    """
    if verbose or "tensorflow" in sys.modules:
        import tensorflow as tf
        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # after absl starts
    with _descriptor_2_captured() as captured:
        import tensorflow as tf
        tf.config.list_physical_devices()
    kept = [line for line in captured if not is_start_up_noise(line)]
    if kept:
        sys.stderr.write("".join(kept))
    return tf


def is_start_up_noise(line):
    """Whether a line of TensorFlow's C++ log is start-up chatter: absl's
    info and warning lines, its preamble, and the "no GPU" errors."""
    if any(text in line for text in _NOISE_TEXT):
        return True
    match = _ABSL_LINE.match(line)
    if not match:
        return False
    level, _, message = match.groups()
    return level in "IW" or any(text in message for text in _NO_GPU)


@contextlib.contextmanager
def _descriptor_2_captured():
    """Points file descriptor 2 at a temporary file and yields a list that,
    on leaving, holds the lines written there. Whatever happens inside,
    descriptor 2 is put back; on an error everything captured is written
    out before the error goes on."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        failed = False
        try:
            yield captured
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured += sink.read().decode(errors="replace").splitlines(
                keepends=True)
            if failed:
                sys.stderr.write("".join(captured))
