#!/usr/bin/env python3
"""Benchmark: serving at 128x128 with onnxruntime, float32 and int8, the
default model and its anomaly detector, against PyTorch eager.

Trains the default conv model (``build_conv_autoencoder((128, 128, C))``)
for ``--epochs`` on seeded crops of scikit-learn's sample photographs (the
crops of ``tools/training_speed.py``), exports it to ONNX, writes its int8
twin (``keras_ae.export.quantize_onnx``, calibrated on the training crops,
its MSE change measured on held-out crops), fits the anomaly detector
(``keras_ae.anomaly.AnomalyDetector``, the default score at this size) and
exports it. Then times each through keras_ae's serving classes
(``OnnxAutoencoder.reconstruct``, ``OnnxAnomalyDetector.scores``; input
checks included): batch-1 latency p50 and p99 over interleaved calls, and
images/s at batch 32, in rounds whose order rotates; and the same model in
PyTorch eager (``tools/torch_peer.py --serve``, float32 NCHW and
channels-last, bfloat16 autocast) in its own process between rounds.

    python3 tools/benchmark_serving.py --torch-python /opt/torch/bin/python

Writes its section of docs/benchmarks.md. Uses keras_ae's public API only.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmark_inference import alternate, latency_percentiles  # noqa: E402
from benchmark_report import float32_peak, forward_flops, machine, publish_section  # noqa: E402
from training_speed import photo_crops  # noqa: E402

START, END = "<!-- benchmark_serving:start -->", "<!-- benchmark_serving:end -->"
BATCH = 32


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--crops", type=int, default=1024,
                        help="training crops; a fifth as many more are held out")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="seconds per timing of batch 32, per round")
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--output", default="docs/benchmarks.md")
    return parser.parse_args(argv)


def build(args, folder):
    """Trains, exports and quantizes; ``{name: (kind, path, spinning)}``
    of what to time, and the facts of the files."""
    import keras_ae
    from keras_ae import data, export, training
    from keras_ae.anomaly import AnomalyDetector

    crops = photo_crops(args.size, args.channels, args.crops + args.crops // 5, seed=1)
    train, held_out = crops[:args.crops], crops[args.crops:]
    shape = (args.size, args.size, args.channels)
    images = data.from_arrays(train, held_out, batch_size=64, validation_split=0.0)
    result = training.train(lambda: keras_ae.build_conv_autoencoder(shape), images,
                            Path(folder) / "run", epochs=args.epochs, measure=False,
                            verbose=0)
    path = Path(folder) / "model.onnx"
    export.export_onnx(result.model, path)
    try:
        report = export.quantize_onnx(path, train, test_images=held_out)
        refused = None
    except export.QuantizationRefused as refusal:
        # time it all the same, and say so
        report, refused = export.quantize_onnx(path, train, test_images=held_out,
                                               max_mse_increase=10.0), str(refusal)
    detector = AnomalyDetector.fit(result.model, train, held_out)
    detector_path = Path(folder) / "detector.onnx"
    export.export_detector(detector, detector_path)
    facts = {"quantize": report, "refused": refused, "score": detector.scoring.score,
             "flops": forward_flops(result.model),
             "sizes_mb": {name: os.path.getsize(p) / 1e6 for name, p in
                          (("float32", path), ("int8", export.int8_path(path)),
                           ("detector", detector_path))}}
    return {"model, float32": ("model", path, True),
            "model, float32, no spinning": ("model", path, False),
            "model, int8": ("model", export.int8_path(path), True),
            "model, int8, no spinning": ("model", export.int8_path(path), False),
            "anomaly detector, float32, spinning": ("detector", detector_path, True),
            "anomaly detector, float32": ("detector", detector_path, False),
            }, facts


def servers(files):
    """``{name: function(images)}`` through keras_ae's serving classes."""
    from keras_ae.runtime import OnnxAnomalyDetector, OnnxAutoencoder

    found = {}
    for name, (kind, path, spinning) in files.items():
        if kind == "model":
            model = OnnxAutoencoder(path, allow_spinning=spinning)
            found[name] = lambda x, model=model: model.reconstruct(x, batch_size=BATCH)
        else:
            detector = OnnxAnomalyDetector(path, allow_spinning=spinning)
            found[name] = lambda x, detector=detector: detector.scores(x, batch_size=BATCH)
    return found


def peer(args):
    done = subprocess.run([args.torch_python, str(Path(__file__).with_name("torch_peer.py")),
                           "--serve", str(args.size), "--channels", str(args.channels)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"torch_peer.py --serve failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args, files):
    runs = servers(files)
    rng = np.random.default_rng(0)
    one = rng.random((1, args.size, args.size, args.channels), dtype=np.float32)
    many = rng.random((BATCH, args.size, args.size, args.channels), dtype=np.float32)
    latency = {name: [] for name in runs}
    throughput = {name: [] for name in runs}
    peers = []
    names = list(runs)
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}", flush=True)
        # each session in a block of its own calls: a spinning session's idle
        # threads would otherwise hold the cores while the next one runs
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            (p50, p99), = latency_percentiles({name: runs[name]}, one,
                                               args.latency_calls).values()
            latency[name].append((p50, p99))
            times, = alternate({name: runs[name]}, many, 1, args.seconds).values()
            throughput[name].append(BATCH / statistics.median(times))
        peers.append(peer(args))
    return latency, throughput, peers


def section(args, files, facts, latency, throughput, peers, found_peaks, command, seconds):
    def median(values):
        return statistics.median(values)

    flops = facts["flops"]
    quantize = facts["quantize"]
    rows = []
    for name in files:
        p50 = median(p for p, _ in latency[name]) * 1000
        p99 = median(p for _, p in latency[name]) * 1000
        per_s = median(throughput[name])
        rows.append(f"| keras_ae, onnxruntime, {name} | {p50:.2f} | {p99:.2f} | "
                    f"**{per_s:,.0f}** | {per_s * flops / (found_peaks['float32'][0] * 1e9):.0%} |")
    peer_rows = {}
    for report in peers:
        for name, timing in report["configs"].items():
            peer_rows.setdefault(name, []).append(timing)
    for name, timings in peer_rows.items():
        per_s = median(t["images_per_s"] for t in timings)
        p50 = median(t["p50_ms"] for t in timings)
        p99 = median(t["p99_ms"] for t in timings)
        rows.append(f"| PyTorch eager, model, {name} | {p50:.2f} | {p99:.2f} | "
                    f"**{per_s:,.0f}** | "
                    f"{per_s * flops / (found_peaks['float32'][0] * 1e9):.0%} |")
    best_peer = max(peer_rows, key=lambda n: median(t["images_per_s"] for t in peer_rows[n]))
    best_peer_latency = min(peer_rows, key=lambda n: median(t["p50_ms"] for t in peer_rows[n]))
    ours = {name: median(throughput[name]) for name in files}
    peer_per_s = median(t["images_per_s"] for t in peer_rows[best_peer])
    colour = "grey" if args.channels == 1 else "RGB"
    change = quantize.get("mse_increase")
    lines = [
        START, f"## Serving at {args.size}x{args.size}: onnxruntime float32 and int8 against "
        "PyTorch eager", "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}; onnxruntime {_ort_version()}; PyTorch "
        f"{peers[0]['torch']} ({peers[0]['threads']} threads)",
        f"- command: `{command}` ({seconds / 60:.0f} min)",
        f"- models: `build_conv_autoencoder(({args.size}, {args.size}, {args.channels}))` "
        f"({colour}, {flops / 1e6:,.0f} MFLOP per image forward), trained {args.epochs} "
        f"epochs on {args.crops:,} seeded crops of scikit-learn's sample photographs; "
        f"its int8 twin from `keras_ae.export.quantize_onnx` (calibrated on the training "
        f"crops; held-out MSE change {_percent(change)}"
        + (f"; **refused** at keras_ae's bound: {facts['refused']}" if facts["refused"] else "")
        + f"); the anomaly detector `AnomalyDetector.fit(model, crops)` (default score at "
        f"this size: `{facts['score']}`) exported by `export_detector`. Files: "
        + ", ".join(f"{name} {mb:.1f} MB" for name, mb in facts["sizes_mb"].items())
        + ". The peer: the same model in PyTorch eager (`tools/torch_peer.py --serve`, "
        "`inference_mode`, weights as initialised).",
        f"- timing: batch-1 latency p50 and p99 over {args.latency_calls} calls in a row, "
        f"images/s at batch {BATCH} ({args.seconds:g} s of calls), each the median of "
        f"{args.rounds} rounds, each session in turn (order rotating); keras_ae through "
        "`OnnxAutoencoder.reconstruct` and `OnnxAnomalyDetector.scores` (input checks "
        "included), default session settings (spinning threads for the autoencoder, "
        "none for the detector), and with the other `allow_spinning`. "
        f"float32 peak measured in the same run: {found_peaks['float32'][0]:,.0f} GFLOP/s "
        f"({found_peaks['float32'][1]}); \"of peak\" = images/s x forward FLOPs / peak "
        "(int8 counted as the same FLOPs; the detector's own arithmetic left out).",
        "",
        "| runtime | batch-1 p50 ms | p99 ms | batch-32 images/s | of float32 peak |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows, "",
        f"- model, float32 onnxruntime against PyTorch eager's fastest ({best_peer}): "
        f"**{ours['model, float32'] / peer_per_s:.2f}x** images/s; int8: "
        f"**{ours['model, int8'] / peer_per_s:.2f}x**; "
        f"batch-1 p50 against the peer's lowest ({best_peer_latency}): float32 "
        f"{_ratio(latency, 'model, float32', peer_rows[best_peer_latency])}, int8 "
        f"{_ratio(latency, 'model, int8', peer_rows[best_peer_latency])} (above 1: keras_ae "
        "answers sooner).",
        "- the detector has no int8 twin: keras_ae exports it in float (its patch scores "
        "are float64 after the extractor, for parity with Keras).",
        END,
    ]
    return "\n".join(lines) + "\n"


def _ratio(latency, name, peer_timings):
    ours = statistics.median(p for p, _ in latency[name]) * 1000
    theirs = statistics.median(t["p50_ms"] for t in peer_timings)
    return f"**{theirs / ours:.2f}x**"


def _percent(value):
    return "not measured" if value is None else f"{value:+.2%}"


def _ort_version():
    import onnxruntime

    return onnxruntime.__version__


def main(argv=None):
    args = parse_args(argv)
    command = "python3 " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    started = time.time()
    found_peaks = {"float32": float32_peak()}  # the only peak its table uses
    with tempfile.TemporaryDirectory(prefix="keras_ae_serving_") as folder:
        print("training, exporting, quantizing ...", flush=True)
        files, facts = build(args, folder)
        print(json.dumps({k: v for k, v in facts.items() if k != "quantize"}), flush=True)
        latency, throughput, peers = measure(args, files)
    publish_section(args.output, START, END, section(
        args, files, facts, latency, throughput, peers, found_peaks, command,
        time.time() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
