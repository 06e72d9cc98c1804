"""TensorFlow's start-up log, kept off the command line's terminal.

Importing TensorFlow 2.21 writes lines such as ``I0000 ... port.cc:153]
oneDNN custom operations are on`` and, on a machine without a GPU, ``E0000
... failed call to cuInit: ... UNKNOWN ERROR (303)`` straight to file
descriptor 2, from C++, before ``TF_CPP_MIN_LOG_LEVEL`` takes effect (absl
logs everything until it is initialised). The cuInit line reads like a
failure and is not one. ``start_tensorflow`` imports TensorFlow and lists
its devices (where cuInit is called) with descriptor 2 pointed at a
pipe, through which every line that is not known start-up noise passes on
to the terminal as it comes, so real errors still show, when they happen.

Reading a folder, TensorFlow's image decoders also log every file they
cannot decode (``E0000 ... jpeg_mem.cc:331] Premature end of JPEG data``),
from C++ threads; keras_ae names those files itself, in one line, so
``image_decoder_log_dropped`` keeps those lines off the terminal too.
"""

import contextlib
import os
import re
import sys
import threading

# absl's prefix: level, date, time, thread, file:line]
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+ +\d+ ([\w.]+):\d+\] (.*)")
_NOISE_TEXT = (
    "All log messages before absl::InitializeLog() is called",
    "To enable the following instructions:",  # cpu_feature_guard's second line
)
# E lines that mean only "no GPU here"
_NO_GPU = ("failed call to cuInit", "Could not find cuda drivers")
# TensorFlow's image decoders, which log each bad file they meet
_DECODERS = ("jpeg_mem.cc", "png_io.cc", "gif_io.cc", "decode_image_op.cc")


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
    with _descriptor_2_filtered(is_start_up_noise):
        import tensorflow as tf
        tf.config.list_physical_devices()
    return tf


@contextlib.contextmanager
def image_decoder_log_dropped(verbose=False):
    """Within it, lines TensorFlow's image decoders log are dropped from
    descriptor 2 (unless ``verbose``); every other line still shows."""
    if verbose:
        yield
        return
    with _descriptor_2_filtered(is_image_decoder_line):
        yield


def is_image_decoder_line(line):
    """Whether a line of TensorFlow's C++ log comes from an image decoder."""
    match = _ABSL_LINE.match(line)
    return bool(match) and match.group(2) in _DECODERS


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
def _descriptor_2_filtered(is_noise):
    """Points file descriptor 2 at a pipe whose lines a thread passes on to
    the terminal as they come, but those that are ``is_noise``: warnings
    show when they happen and none is held back (or lost to a kill)."""
    sys.stderr.flush()
    terminal = os.dup(2)
    reading, writing = os.pipe()
    forwarder = threading.Thread(target=_forward, args=(reading, terminal, is_noise),
                                 name="keras-ae stderr filter", daemon=True)
    forwarder.start()
    os.dup2(writing, 2)
    os.close(writing)
    try:
        yield
    finally:
        sys.stderr.flush()
        original = os.dup(terminal)
        os.dup2(original, 2)  # the pipe's last writer here: the thread sees its end
        os.close(original)
        # a child process still holding the pipe keeps it open: not waited for
        forwarder.join(timeout=2)


def _forward(reading, terminal, is_noise):
    """Copies the lines of ``reading`` to ``terminal`` but noise, then
    closes both."""
    with os.fdopen(reading, "rb") as lines, os.fdopen(terminal, "wb", buffering=0) as out:
        for line in lines:
            if not is_noise(line.decode(errors="replace")):
                out.write(line)
