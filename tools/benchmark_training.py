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
on this CPU at 28x28, 128x128 and 256x256 (grey and RGB), keras_ae against
a PyTorch peer of the same model, data and batch, as shares of the
machine's float32 and bfloat16 peaks: ``tools/training_speed.py`` says how.
PyTorch is installed only where that benchmark runs, in its own
environment (``--torch-python``).

    python3 tools/benchmark_training.py                 # the full table
    python3 tools/benchmark_training.py --epochs 1 --models dense32   # a quick look
    python3 tools/benchmark_training.py --speed --torch-python /opt/torch/bin/python
    python3 tools/benchmark_training.py --speed --sizes 128 --colours grey --rounds 1

Uses keras_ae's public API only.
"""

import argparse
import datetime
import math
import os
import statistics
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
import training_speed  # noqa: E402
from benchmark_report import machine, publish_section, write_section  # noqa: E402

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


def _ints(text):
    return tuple(int(part) for part in text.split(","))


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
    speed.add_argument("--sizes", type=_ints, default=(28, 128, 256),
                       help="image sides to measure at (default 28,128,256)")
    speed.add_argument("--colours", type=lambda text: tuple(text.split(",")),
                       default=("grey", "rgb"),
                       help="grey,rgb: the colours of the photo crops above 28x28")
    speed.add_argument("--speed-worker", default=None, help=argparse.SUPPRESS)
    speed.add_argument("--speed-images", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.speed:
        if set(args.sizes) - set(training_speed.BATCH):
            parser.error(f"--sizes: choose from {sorted(training_speed.BATCH)}, "
                         f"got {args.sizes}")
        if set(args.colours) - {"grey", "rgb"}:
            parser.error(f"--colours: choose from grey, rgb, got {args.colours}")
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


def main(argv=None):
    args = parse_args(argv)
    if args.speed_worker:
        return training_speed.keras_worker(args)
    command = "python3 " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    if args.speed:
        return training_speed.main(args, command)
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
