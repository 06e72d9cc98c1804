#!/usr/bin/env python3
"""Benchmark: inference speed of onnxruntime, the TF SavedModel and Keras.

For the conv autoencoder with each decoder (builders' defaults), the dense
one, and the small upsample model of the TensorFlow tutorials (filters
(16, 4), one conv per stage), exports the model with ``keras_ae.export.export_model`` and times one
reconstruction call at batch 1, 32 and 256 through:

- onnxruntime, as users serve it: ``keras_ae.runtime.OnnxAutoencoder(...)
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

With ``--int8``, measures instead the shipped Fashion-MNIST models
(``exported/fashion_mnist_conv_*``) in float32 and int8 onnxruntime, side by
side: each quantized with ``keras_ae.export.quantize_onnx`` (1,024
training images to calibrate, the 10,000 test images to measure), then
timed at batch 1, 32 and 256 in alternating rounds (p50 and p99 latency at
batch 1), each figure also as a fraction of the machine's float32 peak (a
large matmul in the same run), with the peak memory of a serving process;
then the quantization recipes and the session settings that were tried,
for the default model.

    python3 tools/benchmark_inference.py
    python3 tools/benchmark_inference.py --models upsample --batch-sizes 1,256
    python3 tools/benchmark_inference.py --int8

Uses keras_ae's public API only.
"""

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from benchmark_report import (float32_peak, forward_flops, machine,  # noqa: E402
                              publish_section, write_section)

import keras_ae  # noqa: E402
from keras_ae import data as data_lib  # noqa: E402
from keras_ae import export  # noqa: E402
from keras_ae.runtime import OnnxAutoencoder  # noqa: E402

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
                        help="onnxruntime threads (default: keras_ae.runtime's)")
    parser.add_argument("--output", default="docs/benchmarks.md")
    int8 = parser.add_argument_group("--int8: float32 against int8 onnxruntime")
    int8.add_argument("--int8", action="store_true",
                      help="measure the shipped models in float32 and int8")
    int8.add_argument("--shipped", default="exported",
                      help="folder of the shipped models (default exported/)")
    int8.add_argument("--data-dir", default=data_lib.FASHION_MNIST_DIR,
                      help="Fashion-MNIST IDX files: calibration and test images")
    int8.add_argument("--latency-calls", type=int, default=400,
                      help="batch-1 calls per precision for p50/p99 (default 400)")
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
        "the model the goal was first measured on); random weights; one call "
        "reconstructs one batch. Median "
        f"latency over {args.rounds} alternating rounds; onnxruntime through "
        "`keras_ae.runtime.OnnxAutoencoder.reconstruct` (input checks "
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


# --- --int8: float32 and int8 onnxruntime on the shipped models --------------

INT8_START, INT8_END = "<!-- benchmark_int8:start -->", "<!-- benchmark_int8:end -->"
SHIPPED = ("transpose", "upsample", "unpool")
# recipes tried: (decoder, changes to keras_ae.export.RECIPE); the
# upsample model for the one change that only it sees
RECIPES = {
    "keras_ae's recipe": ("transpose", {}),
    "min/max calibration": ("transpose", {"calibration": "minmax"}),
    "percentile calibration": ("transpose", {"calibration": "percentile"}),
    "entropy calibration": ("transpose", {"calibration": "entropy"}),
    "int8 activations": ("transpose", {"activations": "int8"}),
    "per-tensor weights": ("transpose", {"per_channel": False}),
    "QOperator format": ("transpose", {"format": "QOperator"}),
    "output convolution in float": ("transpose", {"float_output_conv": True}),
    "logits' range as calibrated": ("transpose", {"logit_limit": None}),
    "1-channel convolution as it is": ("transpose", {"min_input_channels": None}),
    "1-filter output convolution as it is": ("transpose", {"min_filters": None}),
    "upsample: keras_ae's recipe": ("upsample", {}),
    "upsample: uint8 Resize": ("upsample", {"resize_as_shuffle": False}),
}
# session settings tried: OnnxAutoencoder keyword arguments
SESSION_SETTINGS = {
    "default (threads: cores, all optimizations, spinning)": {},
    "1 thread": {"intra_op_threads": 1},
    "no spinning": {"allow_spinning": False},
    "basic optimizations": {"graph_optimization": "basic"},
    "extended optimizations": {"graph_optimization": "extended"},
}


# A serving process as deployed: onnxruntime, NumPy and keras_ae.runtime,
# no TensorFlow. It loads a model, runs batch 256 five times and prints its
# peak resident memory in MB: VmHWM, the high-water mark of this program's
# own memory (getrusage's ru_maxrss would also count the parent's, which it
# forked from).
SERVING_PROCESS = """
import re, sys
import numpy as np
from keras_ae.runtime import OnnxAutoencoder
model = OnnxAutoencoder(sys.argv[1])
images = np.random.default_rng(0).random((256, *model.input_shape), np.float32)
for _ in range(5):
    model.reconstruct(images)
assert "tensorflow" not in sys.modules
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024)
"""


def serving_rss(path):
    done = subprocess.run([sys.executable, "-c", SERVING_PROCESS, str(path)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def fashion_mnist(args):
    splits = data_lib.load_idx_folder(args.data_dir)
    train, test = splits["train"][0], splits["test"][0]
    chosen = np.random.default_rng(0).permutation(len(train))[
        :export.DEFAULT_CALIBRATION_IMAGES]
    return train[np.sort(chosen)], test


def quantized_copy(name, folder, calibration, test, recipe=None, bound=None):
    """The shipped model ``name`` copied into ``folder`` and quantized there;
    ``(report, int8 path or None where refused)``."""
    shutil.copytree(Path(name), folder)
    path = Path(folder) / "model.onnx"
    try:
        report = export.quantize_onnx(
            path, calibration, test_images=test, recipe=recipe,
            max_mse_increase=(export.DEFAULT_MAX_MSE_INCREASE if bound is None
                              else bound))
        return report, export.int8_path(path)
    except export.QuantizationRefused as refusal:
        return refusal.report, None


def alternate(runs, images, rounds, seconds):
    """``{name: [per-call seconds]}`` of ``runs`` (name -> function of
    images), alternating in rounds of ``seconds`` each, order rotating."""
    for run in runs.values():  # warm up
        run(images)
        run(images)
    times = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            times[name] += time_calls(runs[name], images, seconds)
    return times


def latency_percentiles(runs, images, calls):
    """p50 and p99 batch-1 latency (seconds) of each run, calls interleaved."""
    times = {name: [] for name in runs}
    for run in runs.values():
        for _ in range(20):
            run(images)
    for _ in range(calls):
        for name, run in runs.items():
            started = time.perf_counter()
            run(images)
            times[name].append(time.perf_counter() - started)
    return {name: (float(np.percentile(t, 50)), float(np.percentile(t, 99)))
            for name, t in times.items()}


def measure_int8(args):
    peak, peak_how = float32_peak()
    print(f"float32 peak: {peak:.0f} GFLOP/s ({peak_how})", flush=True)
    calibration, test = fashion_mnist(args)
    rows, recipes, settings = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="keras_ae_int8_") as tmp:
        for decoder in SHIPPED:
            shipped = Path(args.shipped) / f"fashion_mnist_conv_{decoder}"
            report, int8 = quantized_copy(shipped, f"{tmp}/{decoder}", calibration, test,
                                          bound=float("inf"))
            float_model = OnnxAutoencoder(f"{tmp}/{decoder}/model.onnx")
            int8_model = OnnxAutoencoder(int8)
            runs = {"float32": float_model.reconstruct, "int8": int8_model.reconstruct}
            row = {"decoder": decoder, "report": report,
                   "flops": forward_flops(keras_ae.build_conv_autoencoder(decoder=decoder)),
                   "rss": {"float32": serving_rss(float_model.path),
                           "int8": serving_rss(int8_model.path)}}
            for batch in args.batch_sizes:
                times = alternate(runs, test[:batch], args.rounds,
                                  args.seconds_per_call_set)
                row[batch] = {name: statistics.median(t) for name, t in times.items()}
            row["latency"] = latency_percentiles(runs, test[:1], args.latency_calls)
            rows.append(row)
            print(f"{decoder}: MSE {report['float_mse']:.5f} -> {report['int8_mse']:.5f} "
                  f"({report['mse_increase']:+.2%}); batch 256 "
                  f"{256 / row[256]['float32']:,.0f} -> {256 / row[256]['int8']:,.0f} "
                  "images/s", flush=True)

        for label, (decoder, recipe) in RECIPES.items():
            shipped = Path(args.shipped) / f"fashion_mnist_conv_{decoder}"
            float_model = OnnxAutoencoder(f"{tmp}/{decoder}/model.onnx")
            report, int8 = quantized_copy(shipped, f"{tmp}/recipe{len(recipes)}",
                                          calibration, test, recipe, float("inf"))
            times = alternate({"float32": float_model.reconstruct,
                               "int8": OnnxAutoencoder(int8).reconstruct},
                              test[:256], args.rounds, args.seconds_per_call_set)
            recipes[label] = (report, statistics.median(times["float32"])
                              / statistics.median(times["int8"]))
            print(f"recipe {label}: {report['mse_increase']:+.2%}, "
                  f"{recipes[label][1]:.2f}x", flush=True)

        for label, options in SESSION_SETTINGS.items():
            for precision, path in (("float32", f"{tmp}/transpose/model.onnx"),
                                    ("int8", f"{tmp}/transpose/model.int8.onnx")):
                model = OnnxAutoencoder(path, **options)
                one = latency_percentiles({"x": model.reconstruct}, test[:1],
                                          args.latency_calls // 4)["x"][0]
                many = statistics.median(alternate(
                    {"x": model.reconstruct}, test[:256], args.rounds,
                    args.seconds_per_call_set)["x"])
                settings[(label, precision)] = (one, 256 / many)
                print(f"settings {label}, {precision}: batch 1 p50 {one * 1e3:.3f} ms, "
                      f"batch 256 {256 / many:,.0f} images/s", flush=True)
    return rows, recipes, settings, (peak, peak_how)


def int8_section(rows, recipes, settings, peak, args, command, seconds):
    gflops, how = peak

    def of_peak(images_per_s, flops):
        return f"{images_per_s * flops / (gflops * 1e9):.0%}"

    lines = [
        INT8_START,
        "## Serving: float32 and int8 onnxruntime",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}; onnxruntime {ort_version()}",
        f"- command: `{command}` ({seconds / 60:.1f} min)",
        "- models: the shipped Fashion-MNIST models (`exported/fashion_mnist_conv_*`, "
        "the builders' defaults trained 10 epochs), each quantized by "
        "`keras_ae.export.quantize_onnx` on 1,024 training images (seed 0); "
        "MSE on the 10,000 test images; served through `OnnxAutoencoder.reconstruct` "
        "(input checks included) with its default session settings; median "
        f"latency over {args.rounds} alternating rounds; batch-1 p50 and p99 over "
        f"{args.latency_calls} interleaved calls each; peak RSS of a process that "
        "loads the model and runs batch 256.",
        f"- float32 peak of this machine, measured in the same run: "
        f"**{gflops:,.0f} GFLOP/s** ({how}); \"of peak\" = images/s x the "
        "model's forward FLOPs / peak (int8 arithmetic counted as the same FLOPs).",
        "",
        "| decoder | test MSE float32 | int8 | change | batch | float32 images/s "
        "| int8 images/s | int8 speed-up | float32 of peak | int8 of peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        report = row["report"]
        for batch in args.batch_sizes:
            f32, i8 = batch / row[batch]["float32"], batch / row[batch]["int8"]
            lines.append(
                f"| {row['decoder']} | {report['float_mse']:.5f} | {report['int8_mse']:.5f} "
                f"| {report['mse_increase']:+.2%} | {batch} | {f32:,.0f} | {i8:,.0f} "
                f"| **{i8 / f32:.2f}x** | {of_peak(f32, row['flops'])} "
                f"| {of_peak(i8, row['flops'])} |")
    lines += ["", "Batch 1, latency and memory:", "",
              "| decoder | float32 p50 ms | p99 ms | int8 p50 ms | p99 ms "
              "| int8 p50 of peak | peak RSS float32 MB | int8 MB |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        (f50, f99), (i50, i99) = row["latency"]["float32"], row["latency"]["int8"]
        lines.append(f"| {row['decoder']} | {f50 * 1e3:.3f} | {f99 * 1e3:.3f} "
                     f"| {i50 * 1e3:.3f} | {i99 * 1e3:.3f} | {of_peak(1 / i50, row['flops'])} "
                     f"| {row['rss']['float32']:,.0f} | {row['rss']['int8']:,.0f} |")
    lines += ["", "Quantization recipes tried, each a change to "
              "`keras_ae.export.RECIPE`, on the default (transpose) model unless "
              "named (int8 against float32 at batch 256, alternating):", "",
              "| recipe | test MSE change | int8 speed-up |", "| --- | ---: | ---: |"]
    lines += [f"| {label} | {report['mse_increase']:+.2%} | {speed:.2f}x |"
              for label, (report, speed) in recipes.items()]
    lines += ["", "Session settings tried on the default model (`OnnxAutoencoder` "
              "keyword arguments):", "",
              "| settings | float32 batch-1 p50 ms | int8 batch-1 p50 ms "
              "| float32 batch-256 images/s | int8 batch-256 images/s |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for label in SESSION_SETTINGS:
        (f1, f256), (i1, i256) = settings[(label, "float32")], settings[(label, "int8")]
        lines.append(f"| {label} | {f1 * 1e3:.3f} | {i1 * 1e3:.3f} | {f256:,.0f} "
                     f"| {i256:,.0f} |")
    lines.append(INT8_END)
    return "\n".join(lines) + "\n"


def ort_version():
    import onnxruntime

    return onnxruntime.__version__


def main_int8(args, command):
    started = time.time()
    rows, recipes, settings, peak = measure_int8(args)
    text = int8_section(rows, recipes, settings, peak, args, command,
                        time.time() - started)
    publish_section(args.output, INT8_START, INT8_END, text)
    return 0


def main(argv=None):
    args = parse_args(argv)
    command = "python3 " + " ".join(
        [sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    if args.int8:
        return main_int8(args, command)
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
