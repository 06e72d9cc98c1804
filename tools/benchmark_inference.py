#!/usr/bin/env python3
"""Benchmark: inference speed of onnxruntime, the TF SavedModel and Keras.

For the conv autoencoder with each decoder (builders' defaults), the dense
one, and the small upsample model of the TensorFlow tutorials (filters
(16, 4), one conv per stage), exports the model with ``keras_ae.export.export_model`` and times one
reconstruction call at batch 1, 32 and 256 through:

- onnxruntime, as users serve it: ``keras_ae.serving.OnnxAutoencoder(...)
  .reconstruct(x)`` (input checks included);
- the SavedModel's ``serving_default`` signature, loaded with plain
  ``tf.saved_model.load`` (output fetched to numpy);
- Keras ``model.predict(x, batch_size=len(x))``.

The three alternate in rounds (their order rotating) so that each sees the
same machine load; the table gives the median latency per call, images per
second, and onnxruntime's speed-up over the SavedModel measured in the same
rounds. Weights are random: speed does not depend on them.

Writes its section of docs/benchmarks.md with the date, machine and exact
command.

    python3 tools/benchmark_inference.py
    python3 tools/benchmark_inference.py --models upsample --batch-sizes 1,256

Uses keras_ae's public API only.
"""

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from benchmark_report import machine, write_section  # noqa: E402

import keras_ae  # noqa: E402
from keras_ae import export  # noqa: E402
from keras_ae.serving import OnnxAutoencoder  # noqa: E402

MODELS = {
    "transpose": lambda: keras_ae.build_conv_autoencoder(decoder="transpose"),
    "upsample": lambda: keras_ae.build_conv_autoencoder(decoder="upsample"),
    "unpool": lambda: keras_ae.build_conv_autoencoder(decoder="unpool"),
    "dense": lambda: keras_ae.build_dense_autoencoder(),
    # the reference: the seed's small model, one conv per stage
    "upsample-small": lambda: keras_ae.build_conv_autoencoder(
        filters=(16, 4), convs_per_stage=1, decoder="upsample"),
}
RUNTIMES = ("onnxruntime", "SavedModel", "Keras predict")
START, END = "<!-- benchmark_inference:start -->", "<!-- benchmark_inference:end -->"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--rounds", type=int, default=7,
                        help="alternating rounds per batch size (default 7)")
    parser.add_argument("--seconds-per-call-set", type=float, default=0.25,
                        help="time each runtime gets per round (default 0.25 s)")
    parser.add_argument("--intra-op-threads", type=int, default=None,
                        help="onnxruntime threads (default: keras_ae.serving's)")
    parser.add_argument("--output", default="docs/benchmarks.md")
    args = parser.parse_args(argv)
    unknown = set(args.models.split(",")) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from {list(MODELS)}")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    return args


def runtimes(key, folder, args):
    """``{runtime name: function(images) -> numpy reconstructions}``."""
    keras.utils.set_random_seed(0)
    model = MODELS[key]()
    export.export_model(model, folder, verbose=False)
    onnx_model = OnnxAutoencoder(f"{folder}/model.onnx",
                                 intra_op_threads=args.intra_op_threads)
    signature = tf.saved_model.load(f"{folder}/saved_model").signatures[
        "serving_default"]
    return onnx_model, {
        "onnxruntime": onnx_model.reconstruct,
        "SavedModel": lambda x: signature(image=tf.constant(x))["reconstruction"].numpy(),
        "Keras predict": lambda x: model.predict(x, batch_size=len(x), verbose=0),
    }


def time_calls(function, images, seconds):
    """Per-call seconds of as many calls as fit in ``seconds`` (at least 3)."""
    times, spent = [], 0.0
    while spent < seconds or len(times) < 3:
        start = time.perf_counter()
        function(images)
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return times


def measure(functions, batch, args):
    images = np.random.default_rng(batch).random(
        (batch, *MODEL_SHAPE), dtype=np.float32)
    for function in functions.values():  # warm up: tracing, allocations
        function(images)
        function(images)
    times = {name: [] for name in functions}
    names = list(functions)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            times[name] += time_calls(functions[name], images,
                                      args.seconds_per_call_set)
    return {name: statistics.median(t) for name, t in times.items()}


MODEL_SHAPE = (28, 28, 1)


def section(rows, args, command, provider, seconds):
    lines = [
        START,
        "## Inference: onnxruntime, SavedModel, Keras",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}; onnxruntime on {provider}",
        f"- command: `{command}` ({seconds / 60:.1f} min)",
        "- models: the builders' defaults for 28x28x1 images (Fashion-MNIST's "
        "shape), and `upsample-small` (`filters=(16, 4), convs_per_stage=1`, "
        "the model the goal was first measured on); random weights; one call reconstructs one batch. Median "
        f"latency over {args.rounds} alternating rounds; onnxruntime through "
        "`keras_ae.serving.OnnxAutoencoder.reconstruct` (input checks "
        "included), the SavedModel through its `serving_default` signature, "
        "Keras through `model.predict`.",
        "- speed-up: SavedModel latency / onnxruntime latency, measured in the "
        "same rounds. Goal: at least 5x at batch 1, at least 1x at every batch.",
        "",
        "| model | batch | onnxruntime ms | SavedModel ms | Keras predict ms "
        "| onnxruntime images/s | SavedModel images/s | speed-up over SavedModel |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, batch, median in rows:
        ort_ms, sm_ms, keras_ms = (median[r] * 1e3 for r in RUNTIMES)
        lines.append(
            f"| {key} | {batch} | {ort_ms:.3f} | {sm_ms:.3f} | {keras_ms:.2f} "
            f"| {batch / median['onnxruntime']:,.0f} "
            f"| {batch / median['SavedModel']:,.0f} | {sm_ms / ort_ms:.2f}x |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    command = "python3 " + " ".join(
        [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    started = time.time()
    rows, provider = [], "?"
    with tempfile.TemporaryDirectory(prefix="keras_ae_inference_") as tmp:
        for key in args.models.split(","):
            onnx_model, functions = runtimes(key, f"{tmp}/{key}", args)
            provider = onnx_model.provider
            for batch in args.batch_sizes:
                median = measure(functions, batch, args)
                rows.append((key, batch, median))
                print(f"{key:>9} batch {batch:>3}: " + ", ".join(
                    f"{name} {median[name] * 1e3:.3f} ms" for name in RUNTIMES)
                    + f"; speed-up {median['SavedModel'] / median['onnxruntime']:.2f}x",
                    flush=True)
    text = section(rows, args, command, provider, time.time() - started)
    write_section(args.output, START, END, text)
    print("\n" + text + f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
