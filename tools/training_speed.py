"""``benchmark_training.py --speed``: how fast the default conv model trains
on this CPU, against a PyTorch peer of the same model, data and batch.

Cases (``--sizes``, ``--colours``): 28x28 grey is Fashion-MNIST's 60,000
training images, batch 256; 128x128 and 256x256, grey and RGB, are seeded
crops of scikit-learn's two sample photographs (``china.jpg`` and
``flower.jpg``: random positions and scales, resized with Pillow), batch 64
and 32, the batch sizes the own-images guide trains at. Each configuration
runs in its own process, in rounds whose order rotates, and every case's
table shows each configuration's images/s as shares of the machine's float32
and bfloat16 matrix-product peaks, measured in the same run (TensorFlow,
NumPy and PyTorch; the best of each). keras_ae trains through
``keras_ae.training.train`` (its tf.data pipeline); the peer
(``tools/torch_peer.py``) is fed from memory. The peer's configurations:
float32 and bfloat16 autocast, channels-last (its faster layout on these
CPUs), bfloat16 also with ``torch.compile``.

The section goes to docs/benchmarks.md under markers named by the CPU's
vendor, so figures from an Intel and an AMD machine stay in separate tables.
"""

import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmark_report import (bfloat16_peak, float32_peak, forward_flops, machine,
                              peak_rss_mb, publish_section)

BATCH = {28: 256, 128: 64, 256: 32}
# images per epoch at the photo sizes: 6 to 10 s of keras_ae's training here
CROPS = {128: 768, 256: 192}
KERAS = "keras_ae"
TORCH = "torch"
DEFAULT = "keras_ae, default (mixed_precision='auto')"
# (label, framework, option, sizes it runs at: None for all). The peer's NCHW
# layout is left out: 1.3x to 1.8x slower than channels-last in both
# precisions at 28x28 (the Intel table of docs/benchmarks.md).
CONFIGS = [
    ("keras_ae, float32 (mixed_precision='off')", KERAS, "off", None),
    (DEFAULT, KERAS, "auto", None),
    ("PyTorch, float32, channels-last", TORCH, ["--channels-last"], None),
    ("PyTorch, bfloat16 autocast, channels-last", TORCH,
     ["--precision", "bfloat16", "--channels-last"], None),
    ("PyTorch, bfloat16 autocast, channels-last, torch.compile", TORCH,
     ["--precision", "bfloat16", "--channels-last", "--compile"], None),
]
GOALS = {28: 1.5, 128: 1.3, 256: 1.3}
CPU_FLAGS = ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_vendor():
    """``"amd"``, ``"intel"`` or ``"other"``, from the CPU's model name."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    for vendor in ("amd", "intel"):
        if vendor in text.lower():
            return vendor
    return "other"


def cpu_flags():
    """The CPU's flags that matter for convolutions, as it reports them."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return [flag for flag in CPU_FLAGS if flag in flags]


def markers():
    vendor = cpu_vendor()
    return (f"<!-- benchmark_training_speed_{vendor}:start -->",
            f"<!-- benchmark_training_speed_{vendor}:end -->")


def photo_crops(size, channels, count, seed=0):
    """``count`` seeded ``size``-squared crops of scikit-learn's sample
    photographs, uint8 ``(count, size, size, channels)``."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(p) for p in load_sample_images().images]
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, channels), np.uint8)
    for i in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(min(size, *photo.size) // 2, min(photo.size) + 1))
        left = int(rng.integers(0, photo.size[0] - side + 1))
        top = int(rng.integers(0, photo.size[1] - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize(
            (size, size), Image.Resampling.BILINEAR)
        crop = np.asarray(crop.convert("L" if channels == 1 else "RGB"))
        out[i] = crop.reshape(size, size, channels)
    return out


def cases(args):
    """``(size, channels)`` of every case asked for."""
    found = []
    for size in args.sizes:
        if size == 28:
            found.append((28, 1))
            continue
        found += [(size, {"grey": 1, "rgb": 3}[c]) for c in args.colours]
    return found


def configs_at(size):
    return [c for c in CONFIGS if c[3] is None or size in c[3]]


def keras_worker(args):
    """One keras_ae configuration in this process: trains the default conv
    model with ``keras_ae.training.train`` and prints one JSON line."""
    import keras

    import keras_ae
    from keras_ae import data as data_lib
    from keras_ae import training

    if args.speed_images:
        images = np.load(args.speed_images)
        count = max(1, len(images) // 10)
        data = data_lib.from_arrays(images[count:], images[:count],
                                    batch_size=args.batch_size, validation_split=0.0,
                                    seed=args.seed)
    else:
        data = data_lib.from_idx(args.data_dir, batch_size=args.batch_size,
                                 validation_split=0.0, seed=args.seed)
    keras.utils.set_random_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="keras_ae_speed_") as runs_dir:
        result = training.train(
            lambda: keras_ae.build_conv_autoencoder(data.image_shape), data,
            Path(runs_dir) / "run", epochs=args.epochs,
            mixed_precision=args.speed_worker, measure=False, verbose=0)
    print(json.dumps({
        "images_per_s": [data.num_train / row["train_seconds"] for row in result.history],
        "test_mse": training.evaluate(result.model, data.test)["mse"],
        "peak_rss_mb": peak_rss_mb(),
        "policy": result.devices.policy,
    }))
    return 0


def run_config(framework, option, epochs, batch, images, args):
    """Runs one configuration in a fresh process; its JSON report."""
    common = ["--epochs", str(epochs), "--data-dir", args.data_dir,
              "--batch-size", str(batch), "--seed", str(args.seed)]
    if framework == KERAS:
        command = [sys.executable, str(Path(__file__).with_name("benchmark_training.py")),
                   "--speed-worker", option, *common]
        if images:
            command += ["--speed-images", images]
    else:
        command = [args.torch_python, str(Path(__file__).with_name("torch_peer.py")),
                   *common, *option]
        if images:
            command += ["--images", images]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peaks(args):
    """``{"float32": (gflops, how), "bfloat16": (gflops, how)}``: the best
    large matrix product of TensorFlow, NumPy and PyTorch in each type."""
    found = {"float32": float32_peak(), "bfloat16": bfloat16_peak()}
    size, repeats = 4096, 5  # as torch_peer.py --matmul-peak times them
    done = subprocess.run([args.torch_python, str(Path(__file__).with_name("torch_peer.py")),
                           "--matmul-peak"], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        peer = json.loads(done.stdout.strip().splitlines()[-1])
        for kind in ("float32", "bfloat16"):
            if peer[kind] > found[kind][0]:
                found[kind] = (peer[kind], f"PyTorch matmul {size}x{size} {kind}, "
                                           f"best of {repeats}")
    return found


def measure(args, workdir):
    """Every case's configurations, ``args.rounds`` times in rotating order;
    then the default at 28x28 for ``args.epochs`` epochs, for its test MSE."""
    found_peaks = peaks(args)
    for kind, (gflops, how) in found_peaks.items():
        print(f"{kind} peak: {gflops:.0f} GFLOP/s ({how})", flush=True)
    images = {}
    for size, channels in cases(args):
        if size != 28:
            path = Path(workdir) / f"crops_{size}_{channels}.npy"
            np.save(path, photo_crops(size, channels, CROPS[size], args.seed))
            images[size, channels] = str(path)
    runs = {(case, label): [] for case in cases(args) for label, *_ in configs_at(case[0])}
    for round_ in range(args.rounds):
        for size, channels in cases(args):
            configs = configs_at(size)
            shift = round_ % len(configs)
            for label, framework, option, _ in configs[shift:] + configs[:shift]:
                report = run_config(framework, option, args.speed_epochs, BATCH[size],
                                    images.get((size, channels)), args)
                runs[(size, channels), label].append(report)
                print(f"round {round_ + 1}: {size}x{size}x{channels}: {label}: "
                      f"{steady(report):,.1f} images/s, peak RSS "
                      f"{report['peak_rss_mb']:,.0f} MB", flush=True)
    quality = None
    if (28, 1) in cases(args):
        print(f"\n{DEFAULT}: {args.epochs} epochs at 28x28 for the test MSE", flush=True)
        quality = run_config(KERAS, "auto", args.epochs, BATCH[28], None, args)
        print(f"   test MSE {quality['test_mse']:.5f} ({quality['policy']})", flush=True)
    return runs, quality, found_peaks


def steady(report):
    """images/s of a process: the median of its epochs after the first."""
    return statistics.median(report["images_per_s"][1:] or report["images_per_s"])


def case_rows(case, runs, found_peaks):
    """The table rows of one case, its line of ratios, and a report of the
    peer's fastest configuration."""
    import keras_ae

    def rounds_of(label):
        return runs[case, label]

    size, channels = case
    flops = 3 * forward_flops(keras_ae.build_conv_autoencoder((size, size, channels)))
    speeds = {label: [steady(r) for r in rounds_of(label)] for label, *_ in configs_at(size)}
    peers = [label for label, framework, *_ in configs_at(size) if framework == TORCH]
    best = max(peers, key=lambda label: statistics.median(speeds[label]))
    ratios = [ours / peer for ours, peer in zip(speeds[DEFAULT], speeds[best])]
    colour = "grey" if channels == 1 else "RGB"
    rows = []
    for label, *_ in configs_at(size):
        median = statistics.median(speeds[label])
        each = ", ".join(f"{v:,.0f}" for v in speeds[label])
        rss = max(r["peak_rss_mb"] for r in rounds_of(label))
        policy = rounds_of(label)[0].get("policy")
        name = f"{label} -> {policy}" if policy and "auto" in label else label
        shares = " | ".join(f"{median * flops / (found_peaks[k][0] * 1e9):.0%}"
                            for k in ("float32", "bfloat16"))
        rows.append(f"| {size}x{size} {colour} | {name} | **{median:,.0f}** ({each}) "
                    f"| {shares} | {rss:,.0f} |")
    median = statistics.median(ratios)
    goal = GOALS.get(size)
    verdict = "" if goal is None else (
        f" (goal: at least {goal}x: **met**)" if median >= goal else
        f" (goal: at least {goal}x: **missed by {goal - median:.2f}x**)")
    ratio_line = (f"- {size}x{size} {colour}, batch {BATCH[size]}, "
                  f"{flops / 1e6:,.0f} MFLOP per training image: keras_ae's default "
                  f"against {best}, round by round "
                  f"{', '.join(f'{r:.2f}x' for r in ratios)}; median "
                  f"**{median:.2f}x**{verdict}.")
    return rows, ratio_line, rounds_of(best)[0]


def section(runs, quality, found_peaks, args, command, seconds):
    start, end = markers()
    table, ratio_lines, torch_version = [], [], None
    for case in cases(args):
        rows, ratio_line, peer = case_rows(case, runs, found_peaks)
        table += rows
        ratio_lines.append(ratio_line)
        torch_version = torch_version or f"{peer.get('torch')} ({peer.get('threads')} threads)"
    flags = ", ".join(cpu_flags()) or "none of " + ", ".join(CPU_FLAGS)
    lines = [
        start,
        f"## Training speed on this CPU ({cpu_vendor().upper()}): sizes, precisions "
        "and a PyTorch peer",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}; CPU flags: {flags}; PyTorch {torch_version}",
        f"- command: `{command}` ({seconds / 60:.0f} min)",
        "- model: `build_conv_autoencoder(input_shape)` at each size (two stages, "
        "filters (32, 4), transposed-convolution decoder); Adam 3e-3, MSE. "
        "28x28: Fashion-MNIST's 60,000 training images, batch 256; 128x128 and "
        f"256x256: {CROPS[128]:,} and {CROPS[256]:,} seeded crops of scikit-learn's "
        "sample photographs (grey and RGB), batch 64 and 32. Training FLOPs "
        "counted as 3x the forward pass.",
        f"- each configuration in its own process, {args.rounds} rounds in rotating "
        f"order, {args.speed_epochs} epochs each (the first left out as warm-up, "
        "torch.compile's compilation with it); images/s is the median over "
        "rounds; peak RSS is the process's peak resident memory.",
        "- peaks of this machine, measured in the same run: float32 "
        f"**{found_peaks['float32'][0]:,.0f} GFLOP/s** ({found_peaks['float32'][1]}), "
        f"bfloat16 **{found_peaks['bfloat16'][0]:,.0f} GFLOP/s** "
        f"({found_peaks['bfloat16'][1]}); a row's share = images/s x training "
        "FLOPs per image / peak.",
        "",
        "| case | configuration | train images/s (each round) | of float32 peak "
        "| of bfloat16 peak | peak RSS (MB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *table,
        "",
        "keras_ae's default against the peer's fastest configuration at each case:",
        "",
        *ratio_lines,
    ]
    if quality is not None:
        lines += ["", f"Quality under the default precision ({quality['policy']}): "
                      f"{args.epochs} epochs at 28x28, test MSE "
                      f"**{quality['test_mse']:.5f}** on Fashion-MNIST's 10,000 test "
                      "images (goal: at most 0.006)."]
    lines.append(end)
    return "\n".join(lines) + "\n"


def main(args, command):
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="keras_ae_speed_data_") as workdir:
        runs, quality, found_peaks = measure(args, workdir)
    text = section(runs, quality, found_peaks, args, command, time.time() - started)
    publish_section(args.output, *markers(), text)
    return 0


if __name__ == "__main__":
    sys.exit("run it as: python3 tools/benchmark_training.py --speed")
