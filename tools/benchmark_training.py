#!/usr/bin/env python3
"""Benchmark: reconstruction quality and training speed on Fashion-MNIST.

Trains the dense autoencoder (code 32 and 64), the conv autoencoder with
each decoder at the builders' defaults (and average pooling with average
unpooling), and three references written by hand in plain Keras, for a fixed
budget of epochs (Adam, MSE, batch 256), and measures each on the 10,000 test
images. Also measures
the tf.data overhead: the step time of the same model fed by keras_ae's
pipeline over its step time on one batch already in memory, alternating the
two so that both see the same machine load.

Writes its section of docs/benchmarks.md (between its own markers, leaving
other benchmarks' sections alone) with the date, machine and exact command.

With ``--speed``, measures instead how fast the default conv model trains
on this CPU, side by side: keras_ae in float32 and with its default
precision (``mixed_precision="auto"``: bfloat16 on a CPU that has it),
against a PyTorch peer of the same model, data and batch
(``tools/torch_peer.py``, in float32 and bfloat16 autocast, each in NCHW and
channels-last), each configuration in its own process, in rounds whose
order rotates; every figure also as a fraction of the machine's float32
peak (a large matmul measured in the same run), with each process's peak
memory, and the default's test MSE after ``--epochs`` epochs. PyTorch is
installed only where that benchmark runs, in its own environment
(``--torch-python``).

    python3 tools/benchmark_training.py                 # the full table
    python3 tools/benchmark_training.py --epochs 1 --models dense32   # a quick look
    python3 tools/benchmark_training.py --speed --torch-python /opt/torch/bin/python

Uses keras_ae's public API only.
"""

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_ae  # noqa: E402
from keras_ae import data as data_lib  # noqa: E402
from keras_ae import training  # noqa: E402
from benchmark_report import (float32_peak, forward_flops, machine,  # noqa: E402
                              peak_rss_mb, publish_section, write_section)

def hand_written(shape, encoder_layers, decoder_layers, name):
    """A model as one would write it by hand in plain Keras, wrapped as an
    encoder and a decoder so that it is measured like keras_ae's."""
    inputs = keras.Input(shape)
    encoder = keras.Sequential([keras.Input(shape), *encoder_layers], name="encoder")
    decoder = keras.Sequential([keras.Input(encoder.output_shape[1:]),
                                *decoder_layers], name="decoder")
    return keras.Model(inputs, decoder(encoder(inputs)), name=name)


def tf_intro_dense(shape):
    """TensorFlow's "Intro to Autoencoders": Dense 64 ReLU code, sigmoid out."""
    layers = keras.layers
    return hand_written(
        shape, [layers.Flatten(), layers.Dense(64, activation="relu")],
        [layers.Dense(math.prod(shape), activation="sigmoid"),
         layers.Reshape(shape)], "tf_intro_dense")


def lecture_conv(shape, decoder):
    """conv 16 - pool - conv 4 - pool, mirrored; ReLU code, one conv a stage."""
    layers = keras.layers
    encoder = [layers.Conv2D(16, 3, padding="same", activation="relu"),
               layers.MaxPooling2D(2),
               layers.Conv2D(4, 3, padding="same", activation="relu"),
               layers.MaxPooling2D(2)]
    if decoder == "upsample":
        up = [layers.UpSampling2D(2), layers.Conv2D(4, 3, padding="same", activation="relu"),
              layers.UpSampling2D(2), layers.Conv2D(16, 3, padding="same", activation="relu")]
    else:
        up = [layers.Conv2DTranspose(4, 2, strides=2, activation="relu"),
              layers.Conv2DTranspose(16, 2, strides=2, activation="relu")]
    out = layers.Conv2D(shape[-1], 3, padding="same", activation="sigmoid")
    return hand_written(shape, encoder, up + [out], f"lecture_conv_{decoder}")


# key: (label, builder of an image shape, learning rate: None for keras_ae's)
MODELS = {
    "dense32": ("dense autoencoder, code 32",
                lambda shape: keras_ae.build_dense_autoencoder(shape, code_size=32), None),
    "dense64": ("dense autoencoder, code 64",
                lambda shape: keras_ae.build_dense_autoencoder(shape, code_size=64), None),
    **{f"conv-{d}": (f"conv autoencoder, defaults, decoder={d!r}",
                     lambda shape, d=d: keras_ae.build_conv_autoencoder(shape, decoder=d),
                     None)
       for d in ("transpose", "upsample", "unpool")},
    "conv-average": ("conv autoencoder, defaults, pooling='average', decoder='unpool'",
                     lambda shape: keras_ae.build_conv_autoencoder(
                         shape, decoder="unpool", pooling="average"), None),
}

# Written by hand in plain Keras, trained here side by side with Adam at
# Keras' default 1e-3, as their tutorials do: what keras_ae must beat.
REFERENCES = {
    "ref-tf-intro": ("TF 'Intro to Autoencoders' dense (Dense 64 ReLU code)",
                     tf_intro_dense, 1e-3),
    "ref-conv-upsample": ("conv (16, 4), one conv per stage, ReLU code, upsample decoder",
                          lambda shape: lecture_conv(shape, "upsample"), 1e-3),
    "ref-conv-transpose": ("conv (16, 4), one conv per stage, ReLU code, transpose decoder",
                           lambda shape: lecture_conv(shape, "transpose"), 1e-3),
}
ALL = {**MODELS, **REFERENCES}

START, END = "<!-- benchmark_training:start -->", "<!-- benchmark_training:end -->"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: keras_ae.training's")
    parser.add_argument("--data-dir", default=data_lib.FASHION_MNIST_DIR,
                        help="folder of Fashion-MNIST IDX files")
    parser.add_argument("--models", default=",".join(ALL),
                        help=f"comma-separated, from {', '.join(ALL)}")
    parser.add_argument("--validation-split", type=float, default=0.0,
                        help="default 0: train on all 60,000 images, as the "
                             "references did")
    parser.add_argument("--overhead-steps", type=int, default=100,
                        help="steps per timing of the tf.data overhead (0: skip)")
    parser.add_argument("--output", default="docs/benchmarks.md")
    parser.add_argument("--seed", type=int, default=0)
    speed = parser.add_argument_group("--speed: keras_ae against a PyTorch peer")
    speed.add_argument("--speed", action="store_true",
                       help="measure training speed side by side instead")
    speed.add_argument("--torch-python", default=sys.executable,
                       help="the Python that has PyTorch (default: this one)")
    speed.add_argument("--rounds", type=int, default=2,
                       help="rounds of every configuration (default 2)")
    speed.add_argument("--speed-epochs", type=int, default=2,
                       help="epochs per timed process; the first is left out "
                            "as warm-up (default 2)")
    speed.add_argument("--speed-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.models.split(",")) - set(ALL)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from {list(ALL)}")
    return args


def train_one(key, data, args, runs_dir):
    label, build, learning_rate = ALL[key]
    print(f"\n== {label}: {args.epochs} epochs", flush=True)
    keras.utils.set_random_seed(args.seed)
    learning_rate = learning_rate or args.learning_rate
    options = {} if learning_rate is None else {"learning_rate": learning_rate}
    result = training.train(lambda: build(data.image_shape), data,
                            Path(runs_dir) / key, epochs=args.epochs,
                            verbose=2, **options)
    test = training.evaluate(result.model, data.test)
    encoder = result.model.get_layer("encoder")
    # Unpooling decoders also get the argmax indices: log2(window) bits per
    # pooled value pass to the decoder beside the code.
    index_bits = sum(math.prod(t.shape[1:]) * 2 for t in encoder.outputs[1:])
    row = {
        "key": key, "model": label, "code": keras_ae.code_floats(result.model),
        "index_bits": index_bits,
        "mse": test["mse"], "psnr": test["psnr"], "ssim": test["ssim"],
        "params": result.model.count_params(),
        "images_per_s": result.train_images_per_second,
    }
    print(f"   test MSE {row['mse']:.5f}, PSNR {row['psnr']:.2f}, SSIM "
          f"{row['ssim']:.4f}, {row['images_per_s']:.0f} images/s", flush=True)
    return row


def step_seconds(model, dataset, steps):
    """Median seconds per train step over one pass of ``steps`` steps."""
    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.t)

    model.fit(dataset.take(steps), epochs=1, verbose=0, callbacks=[Clock()],
              shuffle=False)
    return statistics.median(times[1:])


def data_overhead(data, steps, repeats=3):
    """Pipeline step time over in-memory step time, same model, alternated."""
    model = training.compile_autoencoder(keras_ae.build_conv_autoencoder(data.image_shape))
    batch = next(iter(data.train))
    in_memory = tf.data.Dataset.from_tensors(batch).repeat()
    pipeline = data.train.repeat()
    step_seconds(model, in_memory, 5)  # trace once before timing
    ratios, piped, memory = [], [], []
    for _ in range(repeats):
        memory.append(step_seconds(model, in_memory, steps))
        piped.append(step_seconds(model, pipeline, steps))
        ratios.append(piped[-1] / memory[-1])
    return statistics.median(ratios), statistics.median(piped), statistics.median(memory)


def section(rows, overhead, args, command, seconds, data):
    data_counts = (f"{data.num_train:,} train / {data.num_validation:,} "
                   f"validation images")
    lines = [
        START,
        "## Training: quality and speed on Fashion-MNIST",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- budget: {args.epochs} epochs, Adam (keras_ae's default learning rate"
        f"{'' if args.learning_rate is None else f' overridden to {args.learning_rate}'}),"
        f" MSE, batch {args.batch_size}; {data_counts}; "
        f"metrics on the {data.num_test:,} test images; seed {args.seed}; took "
        f"{seconds / 60:.0f} min",
        "",
        "| model | code (floats/image) | test MSE | PSNR (dB) | SSIM | parameters "
        "| train images/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    ours = [r for r in rows if r["key"] in MODELS]
    references = [r for r in rows if r["key"] in REFERENCES]
    for r in ours:
        code = f"{r['code']}" + (" + indices*" if r["index_bits"] else "")
        lines.append(f"| {r['model']} | {code} | {r['mse']:.4f} | {r['psnr']:.2f} "
                     f"| {r['ssim']:.4f} | {r['params']:,} | {r['images_per_s']:,.0f} |")
    leaky = [r for r in ours if r["index_bits"]]
    if leaky:
        lines += ["", f"\\* Not a like-for-like code size: the unpool decoder also "
                  f"receives the encoder's max-pooling positions, 2 bits per pooled "
                  f"value ({leaky[0]['index_bits']:,} bits, about "
                  f"{leaky[0]['index_bits'] / 32:,.0f} floats' worth, per image), "
                  f"so its bottleneck leaks. It cannot decode from the code alone."]
    if references:
        lines += ["", "References: models as one writes them by hand in plain Keras "
                  "(in this tool), trained in the same run on the same data, budget "
                  "and batch, with Adam at Keras' default 1e-3 as their tutorials do:",
                  "", "| reference | code (floats/image) | test MSE | PSNR (dB) "
                  "| parameters | train images/s |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['model']} | {r['code']} | {r['mse']:.4f} | {r['psnr']:.2f} "
                  f"| {r['params']:,} | {r['images_per_s']:,.0f} |" for r in references]
    if overhead:
        ratio, piped, memory = overhead
        lines += ["", f"tf.data overhead (default conv model, median of 3 alternated "
                  f"runs of {args.overhead_steps} steps): {piped * 1e3:.1f} ms per step "
                  f"fed by the pipeline against {memory * 1e3:.1f} ms on a batch "
                  f"already in memory, a ratio of **{ratio:.3f}** (aim: under 1.05)."]
    lines.append(END)
    return "\n".join(lines) + "\n"


# --- --speed: keras_ae's precisions against a PyTorch peer -----------------

SPEED_START = "<!-- benchmark_training_speed:start -->"
SPEED_END = "<!-- benchmark_training_speed:end -->"
# (label, framework, option): keras_ae's mixed_precision, or the peer's flags
SPEED_CONFIGS = [
    ("keras_ae, float32 (mixed_precision='off')", "keras_ae", "off"),
    ("keras_ae, default (mixed_precision='auto')", "keras_ae", "auto"),
    ("PyTorch, float32", "torch", []),
    ("PyTorch, float32, channels-last", "torch", ["--channels-last"]),
    ("PyTorch, bfloat16 autocast", "torch", ["--precision", "bfloat16"]),
    ("PyTorch, bfloat16 autocast, channels-last", "torch",
     ["--precision", "bfloat16", "--channels-last"]),
]
DEFAULT_CONFIG = SPEED_CONFIGS[1][0]


def speed_worker(args):
    """One keras_ae configuration in this process: trains the default conv
    model with ``keras_ae.training.train`` and prints one JSON line."""
    data = data_lib.from_idx(args.data_dir, batch_size=args.batch_size,
                             validation_split=0.0, seed=args.seed)
    keras.utils.set_random_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="keras_ae_speed_") as runs_dir:
        result = training.train(
            lambda: keras_ae.build_conv_autoencoder(data.image_shape), data,
            Path(runs_dir) / "run", epochs=args.epochs,
            mixed_precision=args.speed_worker, verbose=0)
    print(json.dumps({
        "images_per_s": [data.num_train / row["train_seconds"]
                         for row in result.history],
        "test_mse": training.evaluate(result.model, data.test)["mse"],
        "peak_rss_mb": peak_rss_mb(),
        "policy": result.devices.policy,
    }))
    return 0


def run_config(framework, option, epochs, args):
    """Runs one configuration in a fresh process; its JSON report."""
    if framework == "keras_ae":
        command = [sys.executable, __file__, "--speed-worker", option,
                   "--epochs", str(epochs), "--data-dir", args.data_dir,
                   "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    else:
        command = [args.torch_python, str(Path(__file__).with_name("torch_peer.py")),
                   "--epochs", str(epochs), "--data-dir", args.data_dir,
                   "--batch-size", str(args.batch_size), "--seed", str(args.seed),
                   *option]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_speed(args):
    """Every configuration, ``args.rounds`` times in rotating order, then the
    default for ``args.epochs`` epochs for its test MSE."""
    peak, peak_how = float32_peak()
    print(f"float32 peak: {peak:.0f} GFLOP/s ({peak_how})", flush=True)
    runs = {label: [] for label, _, _ in SPEED_CONFIGS}
    for round_ in range(args.rounds):
        shift = round_ % len(SPEED_CONFIGS)
        for label, framework, option in SPEED_CONFIGS[shift:] + SPEED_CONFIGS[:shift]:
            report = run_config(framework, option, args.speed_epochs, args)
            runs[label].append(report)
            steady = report["images_per_s"][1:] or report["images_per_s"]
            print(f"round {round_ + 1}: {label}: {statistics.median(steady):,.0f} "
                  f"images/s, peak RSS {report['peak_rss_mb']:,.0f} MB", flush=True)
    print(f"\n{DEFAULT_CONFIG}: {args.epochs} epochs for the test MSE", flush=True)
    quality = run_config("keras_ae", "auto", args.epochs, args)
    print(f"   test MSE {quality['test_mse']:.5f} ({quality['policy']})", flush=True)
    return runs, quality, (peak, peak_how)


def speed_section(runs, quality, peak, args, command, seconds):
    flops = 3 * forward_flops(keras_ae.build_conv_autoencoder())  # forward + backward

    def steady(report):
        return statistics.median(report["images_per_s"][1:] or report["images_per_s"])

    speeds = {label: [steady(r) for r in reports] for label, reports in runs.items()}
    torch_labels = [label for label, framework, _ in SPEED_CONFIGS if framework == "torch"]
    best_torch = max(torch_labels, key=lambda label: statistics.median(speeds[label]))
    # side by side: each round's default over that round's best peer
    ratios = [ours / peer for ours, peer
              in zip(speeds[DEFAULT_CONFIG], speeds[best_torch])]
    gflops, how = peak
    lines = [
        SPEED_START,
        "## Training speed on this CPU: precisions and a PyTorch peer",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}; PyTorch {runs[best_torch][0].get('torch')} "
        f"({runs[best_torch][0].get('threads')} threads)",
        f"- command: `{command}` ({seconds / 60:.0f} min)",
        f"- model: `build_conv_autoencoder()` (28x28x1, {flops / 3 / 1e6:.1f} "
        f"MFLOP per image forward; training counted as 3x forward, "
        f"{flops / 1e6:.0f} MFLOP per image); Fashion-MNIST's 60,000 training "
        f"images, batch {args.batch_size}, Adam 3e-3, MSE. keras_ae through "
        "`keras_ae.training.train` (its tf.data pipeline, checkpoints each "
        "epoch, not timed); the peer (`tools/torch_peer.py`) is the same "
        "model in PyTorch, fed from memory.",
        f"- each configuration in its own process, {args.rounds} rounds in "
        f"rotating order, {args.speed_epochs} epochs each (the first left out "
        "as warm-up); images/s is the median over rounds; peak RSS is the "
        "process's peak resident memory.",
        f"- float32 peak of this machine, measured in the same run: "
        f"**{gflops:,.0f} GFLOP/s** ({how}); \"of peak\" = images/s x "
        f"{flops / 1e6:.0f} MFLOP / peak.",
        "",
        "| configuration | train images/s (each round) | of float32 peak "
        "| peak RSS (MB) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, _, _ in SPEED_CONFIGS:
        median = statistics.median(speeds[label])
        each = ", ".join(f"{v:,.0f}" for v in speeds[label])
        rss = max(r["peak_rss_mb"] for r in runs[label])
        policy = runs[label][0].get("policy")
        name = f"{label} -> {policy}" if policy and "auto" in label else label
        lines.append(f"| {name} | **{median:,.0f}** ({each}) "
                     f"| {median * flops / (gflops * 1e9):.0%} | {rss:,.0f} |")
    lines += [
        "",
        f"keras_ae's default against the peer's best configuration ({best_torch}), "
        f"round by round: {', '.join(f'{r:.2f}x' for r in ratios)}; median "
        f"**{statistics.median(ratios):.2f}x** (goal: at least 1.5x).",
        "",
        f"Quality under the default precision ({quality['policy']}): "
        f"{args.epochs} epochs, test MSE **{quality['test_mse']:.5f}** on the "
        "10,000 test images (goal: at most 0.006); the peer's test MSE after "
        f"{args.speed_epochs} epochs, for reference: "
        + ", ".join(f"{label.removeprefix('PyTorch, ')} "
                    f"{statistics.median(r['test_mse'] for r in runs[label]):.4f}"
                    for label in torch_labels) + ".",
        SPEED_END,
    ]
    return "\n".join(lines) + "\n"


def main_speed(args, command):
    started = time.time()
    runs, quality, peak = measure_speed(args)
    text = speed_section(runs, quality, peak, args, command, time.time() - started)
    publish_section(args.output, SPEED_START, SPEED_END, text)
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.speed_worker:
        return speed_worker(args)
    command = "python3 " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    if args.speed:
        return main_speed(args, command)
    started = time.time()
    data = data_lib.from_idx(args.data_dir, batch_size=args.batch_size,
                             validation_split=args.validation_split, seed=args.seed)
    print(f"data: {data.source}: {data.num_train} train, {data.num_validation} "
          f"validation, {data.num_test} test", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="keras_ae_bench_") as runs_dir:
        for key in args.models.split(","):
            rows.append(train_one(key, data, args, runs_dir))
            # after each model, so that an interrupted benchmark keeps its rows
            write_section(args.output, START, END, section(
                rows, None, args, command, time.time() - started, data))
    overhead = data_overhead(data, args.overhead_steps) if args.overhead_steps else None
    text = section(rows, overhead, args, command, time.time() - started, data)
    publish_section(args.output, START, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
