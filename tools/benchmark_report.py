"""What every benchmark in tools/ shares: the machine line and its section of
docs/benchmarks.md (between the benchmark's own markers, other sections left
alone, written atomically)."""

import os
import platform
from pathlib import Path

from keras_ae import files


def machine():
    """One line: CPU cores and model, GPUs, and the library versions."""
    import keras
    import tensorflow as tf

    import keras_ae

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{os.cpu_count()} CPU cores ({cpu}), "
            f"{'%d GPU(s)' % len(gpus) if gpus else 'no GPU'}; "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"keras_ae {keras_ae.__version__}")


def write_section(path, start, end, text):
    """Puts ``text`` (which begins with ``start`` and ends with ``end``) into
    the file at ``path``, replacing the old section or appending a new one."""
    path = Path(path)
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + text.rstrip("\n") + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    files.write_atomically(path, lambda tmp: Path(tmp).write_text(new))


def publish_section(path, start, end, text):
    """``write_section``, then the section and where it went on the terminal."""
    write_section(path, start, end, text)
    print("\n" + text)
    print(f"wrote {path}")


def publish_table(path, start, end, title, intro, table):
    """``publish_section`` of a section made of a title, one paragraph
    (``intro``: date, machine, command, what was measured) and a table
    (its Markdown lines)."""
    text = "\n".join([start, f"## {title}", "", intro, "", *table, "", end])
    publish_section(path, start, end, text)


def float32_peak(size=4096, repeats=5):
    """The machine's float32 peak as one process sees it: the best GFLOP/s
    of a large matrix product (``size`` squared) in TensorFlow and in
    NumPy, each timed ``repeats`` times after a warm-up.

    Returns:
        ``(gflops, how)``: the best figure and which library reached it.
    """
    import numpy as np
    import tensorflow as tf

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    b = np.random.default_rng(1).random((size, size), dtype=np.float32)
    ta, tb = tf.constant(a), tf.constant(b)
    best = {"TensorFlow matmul": matmul_gflops(lambda: tf.linalg.matmul(ta, tb).numpy(),
                                               size, repeats),
            "NumPy matmul": matmul_gflops(lambda: a @ b, size, repeats)}
    how = max(best, key=best.get)
    return best[how], f"{how} {size}x{size} float32, best of {repeats}"


def bfloat16_peak(size=4096, repeats=5):
    """TensorFlow's bfloat16 matrix-product peak, as ``float32_peak``."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_uniform((size, size), (0, 1)), tf.bfloat16)
    b = tf.cast(tf.random.stateless_uniform((size, size), (1, 2)), tf.bfloat16)
    gflops = matmul_gflops(lambda: tf.linalg.matmul(a, b).numpy(), size, repeats)
    return gflops, f"TensorFlow matmul {size}x{size} bfloat16, best of {repeats}"


def matmul_gflops(run, size, repeats):
    """Best GFLOP/s of ``run``, a ``size``-squared matrix product, timed
    ``repeats`` times after a warm-up."""
    import time

    run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return 2 * size ** 3 / min(seconds) / 1e9


def forward_flops(model):
    """Floating-point operations of one image's forward pass through the
    convolutions, transposed convolutions and dense layers of ``model``
    (two per multiply-add; activations, pooling and biases left out)."""
    import math

    import keras

    def layers(model):
        for layer in model.layers:
            if isinstance(layer, keras.Model):
                yield from layers(layer)
            else:
                yield layer

    total = 0
    for layer in layers(model):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            kernel = layer.kernel.shape  # (kh, kw, out, in)
            total += 2 * math.prod(layer.input.shape[1:3]) * math.prod(kernel)
        elif isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel.shape  # (kh, kw, in, out)
            total += 2 * math.prod(layer.output.shape[1:3]) * math.prod(kernel)
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * math.prod(layer.kernel.shape)
    return total


def peak_rss_mb():
    """This program's peak resident memory in MB: VmHWM. Not getrusage's
    ru_maxrss: Linux keeps that across exec, so a child process would
    report the peak of the benchmark it was started from."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status
                    if line.startswith("VmHWM:")) / 1024
