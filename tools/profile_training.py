#!/usr/bin/env python3
"""Profile: where one training step of the default conv model spends its time.

For each size asked for (``--sizes``, default 28 and 128, grey), builds
``keras_ae.build_conv_autoencoder`` at that size, compiles it with
``keras_ae.training.compile_autoencoder`` under the precision keras_ae's
training picks on this machine (``keras_ae.training.choose_policy``), trains
a few warm-up steps, then:

1. records ``--steps`` steps with TensorFlow's profiler and sums each op's
   time from the trace: by phase (forward; backward, the ops TensorFlow
   puts under ``gradient_tape/``; loss; optimizer) and by op, with the
   layer it belongs to. The step runs with one inter-op thread, so that ops
   do not overlap and their times add up to the step (each op still uses
   every core). The input pipeline's time is its own threads' work.
2. runs the same steps again in a child process with ``ONEDNN_VERBOSE=1``
   and sums oneDNN's own timings by primitive and implementation: which
   convolution kernels ran, and how long layout conversions (``reorder``)
   took.

Writes its section of docs/benchmarks.md (between its own markers) with the
date, machine and command.

    python3 tools/profile_training.py
    python3 tools/profile_training.py --sizes 28 --steps 5 --output /tmp/p.md

Uses keras_ae's public API only.
"""

import argparse
import collections
import datetime
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH = {28: 256, 128: 64, 256: 32}
START = "<!-- profile_training:start -->"
END = "<!-- profile_training:end -->"
PHASES = ("forward", "backward", "loss", "optimizer", "other")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="28,128",
                        help="image sides, from 28, 128, 256 (default 28,128)")
    parser.add_argument("--steps", type=int, default=10, help="steps recorded per size")
    parser.add_argument("--top", type=int, default=12, help="ops listed per size")
    parser.add_argument("--output", default="docs/benchmarks.md")
    parser.add_argument("--onednn-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if set(args.sizes) - set(BATCH):
        parser.error(f"--sizes: choose from {sorted(BATCH)}, got {args.sizes}")
    return args


def compiled_model(size, steps):
    """The default model at ``size`` under the policy training would pick,
    and keras_ae's training pipeline over ``steps`` batches of seeded images."""
    import keras
    import numpy as np

    import keras_ae
    from keras_ae import data, training

    policy = training.choose_policy("auto")
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = training.compile_autoencoder(keras_ae.build_conv_autoencoder((size, size, 1)))
    images = np.random.default_rng(0).integers(
        0, 256, (BATCH[size] * steps, size, size, 1), dtype=np.uint8)
    pipeline = data.from_arrays(images, images[:BATCH[size]], batch_size=BATCH[size],
                                validation_split=0.0)
    return model, policy, pipeline.train


def run_steps(model, train, epochs=1):
    """Seconds of ``epochs`` passes over ``train``."""
    started = time.perf_counter()
    model.fit(train, epochs=epochs, verbose=0)
    return time.perf_counter() - started


def phase_of(name):
    if name.startswith("gradient_tape/"):
        return "backward"
    if name.startswith("compile_loss/"):
        return "loss"
    if name.startswith(("adam/", "Assign")) or "/adam/" in name:
        return "optimizer"
    if "/encoder" in name or "/decoder" in name:
        return "forward"
    return "other"


def op_rows(logdir):
    """``(ops, input_ms)``: ``{(phase, layer, op type): ms}`` summed over the
    trace's op events, and the input pipeline threads' time."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    ops, input_ms = collections.Counter(), 0.0
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            for event in line.events:
                name = names[event.metadata_id].name
                ms = event.duration_ps / 1e9
                if line.name.startswith("tf_data") and name.count("::") == 1:
                    input_ms += ms  # an iterator's top event: nested ones are inside it
                if (not line.name.startswith("tf_Compute") or ":" not in name
                        or "::" in name):  # executor events, not ops
                    continue
                op_name, op_type = name.rsplit(":", 1)
                op_name = op_name.removeprefix("StatefulPartitionedCall/")
                if op_type in ("", "StatefulPartitionedCall"):
                    continue
                parts = op_name.split("/")
                phase = phase_of(op_name)
                layer = next((p.removesuffix("_1") for p in parts
                              if p.startswith(("encoder_stage", "decoder_stage",
                                               "decoder_output", "reconstruction"))),
                             parts[0] if phase in ("loss", "optimizer") else "-")
                kind = op_type.removeprefix("_MklNative").removeprefix("_Mkl")
                ops[phase, layer, kind] += ms
    return ops, input_ms


def profile(size, steps):
    """One size's profile: ``dict`` of ops, wall time per step, input time."""
    import tensorflow as tf

    model, policy, train = compiled_model(size, steps)
    run_steps(model, train)  # warm-up: tracing, oneDNN primitives
    # the fastest of three passes: this machine's speed drifts for seconds at a time
    wall = min(run_steps(model, train) for _ in range(3))
    with tempfile.TemporaryDirectory(prefix="keras_ae_profile_") as logdir:
        tf.profiler.experimental.start(logdir)
        run_steps(model, train)
        tf.profiler.experimental.stop()
        ops, input_ms = op_rows(logdir)
    return {"policy": policy, "ops": {" | ".join(k): v / steps for k, v in ops.items()},
            "step_ms": 1000 * wall / steps, "input_ms": input_ms / steps}


def onednn_worker(size, steps):
    """Child process with ONEDNN_VERBOSE=1: the steps, nothing printed but
    oneDNN's lines."""
    model, _, train = compiled_model(size, steps)
    run_steps(model, train)
    print("PROFILE_START", flush=True)
    run_steps(model, train)
    return 0


def onednn_rows(size, steps):
    """``{(primitive, implementation, direction): ms per step}`` from oneDNN's
    verbose log of ``steps`` steps."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    done = subprocess.run([sys.executable, __file__, "--onednn-worker", str(size),
                           "--steps", str(steps)], env=env, capture_output=True,
                          text=True, check=True)
    rows = collections.Counter()
    lines = done.stdout.split("PROFILE_START", 1)[-1].splitlines()
    for line in lines:
        fields = line.split(",")
        if len(fields) < 8 or fields[2:4] != ["primitive", "exec"]:
            continue
        kind, implementation, direction = fields[5], fields[6], fields[7]
        rows[kind, implementation, direction] += float(fields[-1]) / steps
    return rows


def section(results, args, command, seconds):
    from benchmark_report import machine

    lines = [START, "## Where a training step spends its time", "",
             f"- date: {datetime.date.today().isoformat()}",
             f"- machine: {machine()}",
             f"- command: `{command}` ({seconds / 60:.0f} min)",
             "- what: `build_conv_autoencoder((S, S, 1))` compiled by "
             "`compile_autoencoder` under the precision training picks here, "
             f"keras_ae's training pipeline (`data.from_arrays`) over {args.steps} "
             "batches of seeded images after one warm-up pass (wall time: the "
             "fastest of three passes); batch "
             + ", ".join(f"{BATCH[s]} at {s}x{s}" for s in args.sizes) + ". Op times "
             "from TensorFlow's profiler with one inter-op thread (ops do not "
             "overlap, so they add up to the step; each op uses every core); "
             "phases: backward = TensorFlow's `gradient_tape/` ops; oneDNN's "
             "own timings from `ONEDNN_VERBOSE=1` in a second run of the same steps.",
             ""]
    for size, result in results.items():
        ops = result["ops"]
        total = sum(ops.values())
        by_phase = collections.Counter()
        for key, ms in ops.items():
            by_phase[key.split(" | ")[0]] += ms
        step_ms = result["step_ms"]
        lines += [f"### {size}x{size}, batch {BATCH[size]} ({result['policy']})", "",
                  f"Step: **{step_ms:.1f} ms** wall ({BATCH[size] * 1000 / step_ms:,.0f} "
                  f"images/s), of which ops {total:.1f} ms ({total / step_ms:.0%}; the rest is "
                  "the executor and Keras between ops and steps): "
                  + ", ".join(f"{phase} {by_phase[phase]:.1f} ms ({by_phase[phase] / total:.0%})"
                              for phase in PHASES if by_phase[phase])
                  + f"; input pipeline threads {result['input_ms']:.1f} ms (beside the step, "
                  "prefetched).", "",
                  "| phase | layer | op | ms per step | share of ops |",
                  "| --- | --- | --- | ---: | ---: |"]
        for key, ms in sorted(ops.items(), key=lambda kv: -kv[1])[:args.top]:
            phase, layer, kind = key.split(" | ")
            lines.append(f"| {phase} | {layer} | {kind} | {ms:.2f} | {ms / total:.1%} |")
        rest = sorted(ops.values(), reverse=True)[args.top:]
        lines.append(f"| | {len(rest)} other ops | | {sum(rest):.2f} | "
                     f"{sum(rest) / total:.1%} |")
        onednn = result["onednn"]
        onednn_total = sum(onednn.values())
        lines += ["", "oneDNN primitives (its own timings):", "",
                  "| primitive | implementation | direction | ms per step | share |",
                  "| --- | --- | --- | ---: | ---: |"]
        for (kind, implementation, direction), ms in sorted(onednn.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {kind} | {implementation} | {direction} | {ms:.2f} | "
                         f"{ms / onednn_total:.1%} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(1)  # before TensorFlow starts
    if args.onednn_worker is not None:
        return onednn_worker(args.onednn_worker, args.steps)
    from benchmark_report import publish_section

    command = "python3 " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    started = time.time()
    results = {}
    for size in args.sizes:
        print(f"profiling {size}x{size} ...", flush=True)
        results[size] = profile(size, args.steps)
        results[size]["onednn"] = onednn_rows(size, args.steps)
        print(json.dumps({"size": size, "step_ms": results[size]["step_ms"]}), flush=True)
    publish_section(args.output, START, END, section(results, args, command,
                                                     time.time() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
