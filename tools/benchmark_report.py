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
