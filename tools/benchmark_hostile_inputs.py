"""Peak memory and time of keras-ae on hostile input: image files that
decode to gigabytes (a 12000x12000 PNG, a 30000x30000 decompression bomb),
thin strips (1x20000, 1x100000) that a padded resize would blow up, and
what else a user can hand in by mistake: a link to /dev/zero, a FIFO, a
PNG with a 6 GB sparse tail and an animated WebP among the training
images, a gzip bomb as an IDX file, a .keras holding a 2 GiB config.json,
an ONNX whose metadata claims 100000x100000 images, and
``--image-size 100000x100000``.

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
import gzip
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
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


def run_measured(command, pythonpath, ceiling_bytes, cwd, timeout=120):
    """``(exit code, peak RSS in MB, last stderr line, seconds)`` of one
    process; one still running after ``timeout`` seconds is killed (exit
    ``"hung"``).

    This process stays small (no TensorFlow here): a child's peak counts
    what it shared with its parent before ``exec``. ``cwd`` is outside the
    checkout, so that ``python -m`` finds keras_ae on ``PYTHONPATH`` (or
    installed), not in the current folder.
    """
    env = dict(os.environ, PYTHONPATH=pythonpath or "", TF_CPP_MIN_LOG_LEVEL="3")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ceiling_bytes, ceiling_bytes))
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "keras_ae.cli", *command],
                                   env=env, preexec_fn=limit, stdout=subprocess.DEVNULL,
                                   stderr=stderr, text=True, cwd=cwd)
        hung = False
        while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() - started > timeout:
                process.kill()
                hung = True
            time.sleep(0.05)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
        stderr.seek(0)
        lines = [line for line in stderr.read().splitlines() if line.strip()
                 and not line.startswith(("I0000", "W0000", "E0000", "WARNING: All log"))]
    code = "hung" if hung else os.waitstatus_to_exitcode(status)
    return code, usage.ru_maxrss / 1024, (lines[-1] if lines else ""), seconds


def outcome(code, last, done="served"):
    if code == "hung":
        return "hung (killed)"
    if code == 0:
        return done
    if code == 2:
        return "refused in one line"
    kind = last.split(":")[0] if last else f"exit {code}"
    return f"crashed ({kind[:40]})"


def _training_folder(work, name, images):
    """A new folder ``work/name`` holding a copy of the 30 training PNGs
    (the caller adds one hostile entry)."""
    folder = work / name
    folder.mkdir()
    for image in sorted(images.glob("[0-9]*.png")):
        (folder / image.name).write_bytes(image.read_bytes())
    return folder


def other_cases(work, images, model):
    """``(case, command)`` for the rest of the hostile inputs (``{OUT}`` is
    replaced by a fresh output folder)."""
    train = ["train", "--image-size", "28x28", "--resize", "pad", "--epochs", "1",
             "--batch-size", "8", "--skip-bad-images", "--output", "{OUT}", "--images"]
    zero = _training_folder(work, "dev_zero", images)
    os.symlink("/dev/zero", zero / "zero.png")
    fifo = _training_folder(work, "fifo", images)
    os.mkfifo(fifo / "fifo.png")
    sparse = _training_folder(work, "sparse", images)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(sparse / "sparse.png")
    os.truncate(sparse / "sparse.png", 6 * 10 ** 9)  # a 6 GB tail of holes
    webp = _training_folder(work, "webp", images)
    frames = [Image.fromarray(np.full((28, 28, 3), level, np.uint8)) for level in (0, 255)]
    frames[0].save(webp / "animated.webp", save_all=True, append_images=frames[1:])

    bomb, huge = work / "idx_bomb", work / "huge" / "model.onnx"
    bomb.mkdir()
    huge.parent.mkdir()
    # In a child, as every import of TensorFlow here: this process stays small
    # (a child's peak RSS counts what it shared with its parent before exec).
    subprocess.run([sys.executable, "-c", f"""
import numpy as np, onnx, keras_ae, keras_ae.data
keras_ae.build_dense_autoencoder((8, 8, 1), code_size=2,
                                 hidden_units=(4,)).save({str(work / 'small.keras')!r})
keras_ae.data.write_idx({str(bomb / 't10k-images-idx3-ubyte.gz')!r},
                        np.zeros((10, 28, 28), np.uint8))
for prefix, count in (("train", 60000), ("t10k", 10)):
    keras_ae.data.write_idx({str(bomb)!r} + f"/{{prefix}}-labels-idx1-ubyte.gz",
                            np.zeros(count, np.uint8))
claims = onnx.load({str(model)!r})
for prop in claims.metadata_props:
    if prop.key == "keras_ae.input_shape":
        prop.value = "[100000, 100000, 1]"
onnx.save(claims, {str(huge)!r})
"""], check=True, cwd=work, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    with gzip.open(bomb / "train-images-idx3-ubyte.gz", "wb", compresslevel=9) as f:
        f.write(b"\0\0\x08\x03" + np.array([60000, 28, 28], ">u4").tobytes())
        for _ in range(256):
            f.write(bytes(2 ** 24))  # 4 GiB of zeros after a 47 MB array
    config_bomb = work / "config_bomb.keras"
    with zipfile.ZipFile(work / "small.keras") as small, zipfile.ZipFile(
            config_bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for name in small.namelist():
            if name == "config.json":
                with out.open(name, "w", force_zip64=True) as f:
                    for _ in range(128):
                        f.write(b" " * 2 ** 24)  # 2 GiB
            else:
                out.writestr(name, small.read(name))

    mb = lambda path: f"{path.stat().st_size / 2 ** 20:.0f} MB"  # noqa: E731
    return [
        ("train --images, 30 PNGs and x.png -> /dev/zero", train + [str(zero)]),
        ("train --images, 30 PNGs and a FIFO named fifo.png", train + [str(fifo)]),
        ("train --images, 30 PNGs and a 28x28 PNG with a 6 GB sparse tail",
         train + [str(sparse)]),
        ("train --images, 30 PNGs and an animated WebP", train + [str(webp)]),
        (f"train --data-dir, a {mb(bomb / 'train-images-idx3-ubyte.gz')} gzip bomb "
         "(4 GiB inflated) as the IDX images",
         ["train", "--data-dir", str(bomb), "--epochs", "1", "--output", "{OUT}"]),
        (f"export, a {mb(config_bomb)} .keras holding a 2 GiB config.json",
         ["export", str(config_bomb), "--output", "{OUT}", "--formats", "onnx"]),
        ("predict --resize, ONNX metadata claiming [100000, 100000, 1]",
         ["predict", str(huge), str(images / "00.png"), "--resize", "--out", "{OUT}"]),
        ("train --image-size 100000x100000",
         ["train", "--images", str(images), "--image-size", "100000x100000",
          "--epochs", "1", "--output", "{OUT}"]),
    ]


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
            code, peak, last, _ = run_measured(
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
            code, peak, last, _ = run_measured(command, pythonpath, ceiling, work)
            cells.append(f"{peak:,.0f} MB, {outcome(code, last, 'trained')}")
            print(cells[0], label, code, f"{peak:.0f} MB", last[:100])
        rows.append(cells)
    for name, command in other_cases(work, folder, model):
        cells = [name]
        for label, pythonpath in versions.items():
            run = [part.replace("{OUT}", str(work / f"other-{len(rows)}-{label[:4]}"))
                   for part in command]
            code, peak, last, seconds = run_measured(run, pythonpath, ceiling, work)
            cells.append(f"{peak:,.0f} MB, {seconds:.0f} s, {outcome(code, last, 'ran')}")
            print(cells[0], label, code, f"{peak:.0f} MB {seconds:.1f} s", last[:100])
        rows.append(cells)

    header = ["case", *versions]
    table = ["| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    table += ["| " + " | ".join(cells) + " |" for cells in rows]
    command = "python3 tools/benchmark_hostile_inputs.py" + (
        f" --before {args.before}" if args.before else "")
    intro = (
        f"{datetime.date.today()}, {benchmark_report.machine()}; "
        f"`{command}`. Peak RSS (and, for the other inputs, wall time) of each "
        f"command in its own process (the "
        f"kernel's figure, `os.wait4`), under a {args.ceiling_gb:g} GB "
        f"address-space ceiling; the model was trained on images padded to "
        f"28x28 (`--resize pad`), so the strips take the padded route. "
        f"keras_ae reads each file's size from its header and refuses more "
        f"than `keras_ae.runtime.MAX_IMAGE_PIXELS` (89,478,485, Pillow's "
        f"decompression-bomb limit) before decoding, and pads a thin strip "
        f"without building the padded image. A crashed process's peak is "
        f"what it reached before it failed (the ceiling stops a runaway one); "
        f"one still running after 120 s is killed. Every process starts "
        f"TensorFlow (about 700 MB of the figures) but predict.")
    benchmark_report.publish_table(args.output, START, END,
                                   "Hostile image files: peak memory", intro, table)


if __name__ == "__main__":
    main()
