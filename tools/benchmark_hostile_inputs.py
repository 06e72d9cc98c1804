"""Peak memory of keras-ae on hostile image files: tiny files that decode to
gigabytes (a 12000x12000 PNG, a 30000x30000 decompression bomb) and thin
strips (1x20000, 1x100000) that a padded resize would blow up.

Each case runs ``keras-ae predict`` (onnxruntime, a model trained on padded
28x28 images) or ``keras-ae train --images`` (TensorFlow) in its own
process; its peak RSS is the kernel's (``os.wait4``). With ``--before DIR``,
a checkout of an earlier commit runs the same cases in the same run, side by
side, each under an address-space ceiling (``--ceiling-gb``) so that a
runaway one fails instead of taking the machine.

Writes its section of docs/benchmarks.md. About 3 minutes here::

    git worktree add /tmp/before 8f4bd4b
    python3 tools/benchmark_hostile_inputs.py --before /tmp/before
"""

import argparse
import datetime
import os
import resource
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark_report  # noqa: E402

START = "<!-- benchmark_hostile_inputs:start -->"
END = "<!-- benchmark_hostile_inputs:end -->"


def write_png(path, width, height):
    """A real grey PNG of zeros, compressed as it streams (a 30000x30000
    one is under 1 MB on disk)."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    rows_per_block = max(1, 2 ** 24 // len(row))
    parts, done = [], 0
    while done < height:
        count = min(rows_per_block, height - done)
        parts.append(compressor.compress(row * count))
        done += count
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                           + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


FILES = {"12000x12000 PNG": (12000, 12000), "1x20000 strip": (20000, 1),
         "1x100000 strip": (100000, 1), "30000x30000 PNG (bomb)": (30000, 30000)}


def run_measured(command, pythonpath, ceiling_bytes, cwd):
    """``(exit code, peak RSS in MB, last stderr line)`` of one process.

    This process stays small (no TensorFlow here): a child's peak counts
    what it shared with its parent before ``exec``. ``cwd`` is outside the
    checkout, so that ``python -m`` finds keras_ae on ``PYTHONPATH`` (or
    installed), not in the current folder.
    """
    env = dict(os.environ, PYTHONPATH=pythonpath or "", TF_CPP_MIN_LOG_LEVEL="3")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ceiling_bytes, ceiling_bytes))
    process = subprocess.Popen([sys.executable, "-m", "keras_ae.cli", *command],
                               env=env, preexec_fn=limit, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, cwd=cwd)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in stderr.splitlines() if line.strip()
             and not line.startswith(("I0000", "W0000", "WARNING: All log"))]
    return process.returncode, usage.ru_maxrss / 1024, (lines[-1] if lines else "")


def outcome(code, last, done="served"):
    if code == 0:
        return done
    if code == 2:
        return "refused in one line"
    kind = last.split(":")[0] if last else f"exit {code}"
    return f"crashed ({kind[:40]})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=None, metavar="DIR",
                        help="a checkout of an earlier commit to measure beside")
    parser.add_argument("--ceiling-gb", type=float, default=8.0,
                        help="address-space ceiling of every process (default 8)")
    parser.add_argument("--output", default="docs/benchmarks.md")
    args = parser.parse_args(argv)

    ceiling = int(args.ceiling_gb * 2 ** 30)
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    folder = work / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(30):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(
            folder / f"{index:02d}.png")
    paths = {}
    for name, (width, height) in FILES.items():
        paths[name] = write_png(folder / f"{name.split()[0]}.png", width, height)
        print(f"wrote {name}: {paths[name].stat().st_size:,} bytes")
    model = work / "pad" / "model.onnx"
    model.parent.mkdir()
    subprocess.run([sys.executable, "-c", (
        "import keras_ae; from keras_ae import export; "
        "export.export_onnx(keras_ae.build_conv_autoencoder((28, 28, 1)), "
        f"{str(model)!r}, preprocessing={{'image_size': [28, 28], "
        "'resize': 'pad', 'color_mode': 'grayscale'})")],
        check=True, cwd=work, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    versions = {"this commit": None}
    if args.before:
        commit = subprocess.run(["git", "-C", args.before, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        versions[f"before ({commit or Path(args.before).name})"] = str(
            Path(args.before).resolve())

    rows = []
    for name, path in paths.items():
        cells = [f"predict, {name} ({path.stat().st_size:,} bytes)"]
        for label, pythonpath in versions.items():
            out = work / f"out-{len(rows)}-{label[:4]}"
            code, peak, last = run_measured(
                ["predict", str(model), str(path), "--out", str(out), "--resize"],
                pythonpath, ceiling, work)
            cells.append(f"{peak:,.0f} MB, {outcome(code, last)}")
            print(cells[0], label, code, f"{peak:.0f} MB", last[:100])
        rows.append(cells)
    for skip in (False, True):
        cells = ["train --images, the folder of 30 PNGs and the four above"
                 + (", --skip-bad-images" if skip else "")]
        for label, pythonpath in versions.items():
            out = work / f"run-{skip}-{label[:4]}"
            command = ["train", "--images", str(folder), "--image-size", "28x28",
                       "--resize", "pad", "--epochs", "1", "--batch-size", "8",
                       "--output", str(out)] + (["--skip-bad-images"] if skip else [])
            code, peak, last = run_measured(command, pythonpath, ceiling, work)
            cells.append(f"{peak:,.0f} MB, {outcome(code, last, 'trained')}")
            print(cells[0], label, code, f"{peak:.0f} MB", last[:100])
        rows.append(cells)

    header = ["case", *versions]
    table = ["| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    table += ["| " + " | ".join(cells) + " |" for cells in rows]
    command = "python3 tools/benchmark_hostile_inputs.py" + (
        f" --before {args.before}" if args.before else "")
    intro = (
        f"{datetime.date.today()}, {benchmark_report.machine()}; "
        f"`{command}`. Peak RSS of each command in its own process (the "
        f"kernel's figure, `os.wait4`), under a {args.ceiling_gb:g} GB "
        f"address-space ceiling; the model was trained on images padded to "
        f"28x28 (`--resize pad`), so the strips take the padded route. "
        f"keras_ae reads each file's size from its header and refuses more "
        f"than `keras_ae.runtime.MAX_IMAGE_PIXELS` (89,478,485, Pillow's "
        f"decompression-bomb limit) before decoding, and pads a thin strip "
        f"without building the padded image. A crashed process's peak is "
        f"what it reached before it failed (the ceiling stops a runaway one).")
    benchmark_report.publish_table(args.output, START, END,
                                   "Hostile image files: peak memory", intro, table)


if __name__ == "__main__":
    main()
