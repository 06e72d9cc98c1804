#!/usr/bin/env python3
"""Benchmark: your own images, through keras_ae.data.from_directory.

Three measurements, each side by side in one run:

1. **Fashion-MNIST as files**: the 70,000 images written as a PNG class
   tree (tools/make_image_folders.py) against the same images from the IDX
   files (arrays in memory). For the IDX route and the folder route with
   each cache (memory, none: decoded every epoch, a cache file): the time to
   first read, images/s of the pipeline alone and of training the default
   conv model, one epoch of each route after the other so that all see the
   same machine load; the overhead per epoch after the first; and one
   model's test MSE on both routes' test splits (the same images: it must
   be the same).
2. **Colour photos at 64x64 and 128x128**: seeded crops of scikit-learn's
   two photographs at mixed sizes (test crops from a region no training
   crop touches), resized: the default conv builder's code size,
   compression, test MSE, PSNR and SSIM after a fixed budget, its training
   images/s, and the pipeline's images/s in memory and streamed (decoded
   and resized every epoch).
3. **Peak memory** (RSS of a fresh process iterating one epoch) for two
   folder sizes at 128x128, not cached and cached in memory.

Writes its section of docs/benchmarks.md with the date, machine and exact
command. Uses keras_ae's public API only.

    python3 tools/benchmark_images.py                     # everything (about 40 min)
    python3 tools/benchmark_images.py --epochs 2 --fashion-epochs 2   # a quick look
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

import keras  # noqa: E402

import keras_ae  # noqa: E402
from keras_ae import data as data_lib  # noqa: E402
from keras_ae import training  # noqa: E402
from benchmark_report import machine, peak_rss_mb, publish_section  # noqa: E402
from make_image_folders import write_fashion_tree, write_photo_crops  # noqa: E402

START, END = "<!-- benchmark_images:start -->", "<!-- benchmark_images:end -->"
CACHES = ("memory", "none", "file")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", default="runs/images",
                        help="where the image folders are written (kept for reuse)")
    parser.add_argument("--data-dir", default=data_lib.FASHION_MNIST_DIR)
    parser.add_argument("--fashion-epochs", type=int, default=6,
                        help="epochs of each route, the first left out of speeds")
    parser.add_argument("--epochs", type=int, default=10,
                        help="training budget at 64x64 and 128x128")
    parser.add_argument("--photos", type=int, nargs=2, default=(2000, 8000),
                        metavar=("SMALL", "LARGE"), help="crops in the two folders")
    parser.add_argument("--sizes", type=int, nargs="+", default=(64, 128))
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                        choices=list(CANDIDATES), metavar="NAME",
                        help="conv models to train at each size (default: all)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="batch for the photos (Fashion-MNIST: 256)")
    parser.add_argument("--output", default="docs/benchmarks.md")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-rss", nargs=3, metavar=("FOLDER", "SIZE", "CACHE"),
                        help=argparse.SUPPRESS)  # the child process of part 3
    return parser.parse_args(argv)


def folders(args):
    """The image folders, written once into --work-dir."""
    work = Path(args.work_dir)
    paths = {"fashion": work / "fashion",
             **{n: work / f"photos_{n}" for n in args.photos}}
    if not (paths["fashion"] / "test").exists():
        print("writing Fashion-MNIST as PNG files ...", flush=True)
        write_fashion_tree(args.data_dir, paths["fashion"])
    for count in args.photos:
        if not (paths[count] / "test").exists():
            print(f"writing {count} photo crops ...", flush=True)
            write_photo_crops(paths[count], count, seed=args.seed, sizes=(48, 320))
    return paths


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def pipeline_images_per_second(data):
    """The training pipeline alone, second epoch (the first may fill caches)."""
    for _ in data.train:
        pass
    _, seconds = timed(lambda: [None for _ in data.train])
    return data.num_train / seconds


# --- 1. Fashion-MNIST: folder routes against the IDX route ---------------------

def fashion(args, folder, cache_dir):
    routes = {"IDX files (arrays in memory)": lambda: data_lib.from_idx(
        args.data_dir, seed=args.seed)}
    for cache in CACHES:
        where = str(Path(cache_dir) / "fashion") if cache == "file" else cache
        routes[f"PNG folder, cache={cache}"] = (
            lambda where=where: data_lib.from_directory(
                folder, cache=where, seed=args.seed, verbose=False))
    rows, models = {}, {}
    for name, make in routes.items():
        data, first_read = timed(make)
        rows[name] = {"data": data, "first_read": first_read,
                      "pipeline": pipeline_images_per_second(data), "epochs": []}
        keras.utils.set_random_seed(args.seed)
        models[name] = training.compile_autoencoder(
            keras_ae.build_conv_autoencoder(data.image_shape))
        print(f"{name}: first read {first_read:.1f} s, pipeline "
              f"{rows[name]['pipeline']:,.0f} images/s", flush=True)
    for epoch in range(args.fashion_epochs):  # route after route, epoch by epoch
        for name, row in rows.items():
            cpu = time.process_time()
            _, seconds = timed(lambda: models[name].fit(
                row["data"].train, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                shuffle=False))
            row["epochs"].append((seconds, time.process_time() - cpu))
            print(f"  epoch {epoch + 1} {name}: {seconds:.1f} s, "
                  f"{row['epochs'][-1][1]:.1f} CPU s", flush=True)
    arrays = next(iter(rows))
    for name, row in rows.items():
        steady = row["epochs"][1:] or row["epochs"]  # the first also traces
        # The fastest epoch: throttling only ever slows one down.
        wall, cpu = min(steady)
        row["train"], row["busy"] = row["data"].num_train / wall, cpu / wall
        row["cpu"] = statistics.median(c for _, c in steady)
        row["test_mse"] = training.evaluate(models[name], row["data"].test)["mse"]
    for row in rows.values():
        # CPU seconds, all threads: the host throttles this machine at times,
        # which stretches wall time but not the work done.
        row["overhead"] = row["cpu"] / rows[arrays]["cpu"] - 1
    folder_route = rows["PNG folder, cache=memory"]["data"]
    same_model = {  # the arrays route's model on both routes' test images
        "idx": rows[arrays]["test_mse"],
        "folder": training.evaluate(models[arrays], folder_route.test)["mse"]}
    return rows, same_model


# --- 2. colour photos at larger sizes ------------------------------------------

# The default against deeper encoders: one stage more with the same code
# (each stage quarters the map, so four times the code channels), and one
# stage more with a code four times smaller.
CANDIDATES = {
    "defaults, filters=(32, 4)": {},
    "filters=(32, 64, 16): one stage more, same code": {"filters": (32, 64, 16)},
    "filters=(32, 64, 4): one stage more, code / 4": {"filters": (32, 64, 4)},
}


def photos(args, folder, size):
    options = dict(image_size=(size, size), color_mode="rgb", seed=args.seed,
                   batch_size=args.batch_size, verbose=False)
    data = data_lib.from_directory(folder, cache="memory", **options)
    streamed = data_lib.from_directory(folder, cache="none", **options)
    speeds = {"size": size, "pipeline_memory": pipeline_images_per_second(data),
              "pipeline_streamed": pipeline_images_per_second(streamed),
              "counts": (data.num_train, data.num_validation, data.num_test)}
    print(f"{size}x{size} pipeline: {speeds['pipeline_memory']:,.0f} images/s in "
          f"memory, {speeds['pipeline_streamed']:,.0f} streamed", flush=True)
    rows = []
    for name in args.candidates:
        keras.utils.set_random_seed(args.seed)
        model = training.compile_autoencoder(
            keras_ae.build_conv_autoencoder(data.image_shape, **CANDIDATES[name]))
        clock = []

        def tick(*_):
            clock.append((time.perf_counter(), time.process_time()))
        model.fit(data.train, validation_data=data.validation, epochs=args.epochs,
                  verbose=0, shuffle=False,
                  callbacks=[keras.callbacks.LambdaCallback(
                      on_epoch_begin=tick, on_test_begin=tick)])
        epochs = [(end[0] - start[0], end[1] - start[1])
                  for start, end in zip(clock[0::2], clock[1::2])]
        wall, cpu = min(epochs[1:] or epochs)  # the first also traces
        code = keras_ae.code_floats(model)
        row = {"size": size, "model": name, "code": code,
               "compression": size * size * 3 / code, "params": model.count_params(),
               **training.evaluate(model, data.test),
               "train": data.num_train / wall, "busy": cpu / wall}
        print(f"{size}x{size} {name}: code {code}, test MSE {row['mse']:.5f}, PSNR "
              f"{row['psnr']:.2f} dB, {row['train']:,.0f} train images/s", flush=True)
        rows.append(row)
    return speeds, rows


# --- 3. peak memory ------------------------------------------------------------

def probe_rss(folder, size, cache):
    """In a fresh process: one epoch of the pipeline, then the peak RSS."""
    data = data_lib.from_directory(folder, image_size=(int(size), int(size)),
                                   color_mode="rgb", cache=cache, verbose=False)
    for _ in data.train:
        pass
    print(json.dumps({"peak_mib": peak_rss_mb(), "images": data.num_train
                      + data.num_validation + data.num_test}))
    return 0


def peak_memory(args, paths, size=128):
    rows = []
    for cache in ("none", "memory"):
        for count in args.photos:
            done = subprocess.run(
                [sys.executable, __file__, "--probe-rss", str(paths[count]), str(size),
                 cache], capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"cache": cache, **result})
            print(f"peak RSS, cache={cache}, {result['images']} images: "
                  f"{result['peak_mib']:.0f} MiB", flush=True)
    return rows


# --- the report ----------------------------------------------------------------

def section(args, command, seconds, fashion_rows, same_model, photo_rows, memory):
    lines = [START, "## Your own images: the folder route", "",
             f"- date: {datetime.date.today().isoformat()}",
             f"- machine: {machine()}",
             f"- command: `{command}`",
             f"- took {seconds / 60:.0f} min", ""]
    if fashion_rows:
        arrays = next(iter(fashion_rows.values()))
        data, steady = arrays["data"], arrays["epochs"][1:] or arrays["epochs"]
        spread = {kind: (min(e[i] for e in steady), max(e[i] for e in steady))
                  for i, kind in enumerate(("wall", "cpu"))}
        lines += [
            f"### Fashion-MNIST as {data.num_train + data.num_validation + data.num_test:,} "
            "PNG files against the IDX files", "",
            f"The default conv model, batch 256, {data.num_train:,} training images; "
            f"{args.fashion_epochs} epochs of each route, one route after the other "
            f"epoch by epoch, the first epoch (tracing) left out. The cost of an "
            f"epoch is its CPU time (all threads: training and decoding): the "
            f"host throttles this shared machine at times, which stretches an "
            f"epoch's wall time while its CPU time holds (this run's arrays "
            f"route: {spread['wall'][0]:.0f} to {spread['wall'][1]:.0f} s wall, "
            f"{spread['cpu'][0]:.0f} to {spread['cpu'][1]:.0f} CPU s for the same "
            f"epoch). Training images/s: the fastest epoch's, wall clock "
            f"(throttling only ever slows one), with the cores busy in it (CPU "
            f"s over wall s: about 1.9 at full speed, about 1.3 where every "
            f"epoch of a route fell in a throttled spell, which then "
            f"understates its speed). "
            f"First read: listing, checking every file and, for the memory and "
            f"file caches, decoding them all once.", "",
            "| route | first read (s) | pipeline images/s | CPU s per epoch "
            "| over arrays | training images/s | cores busy | test MSE |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, row in fashion_rows.items():
            lines.append(f"| {name} | {row['first_read']:.1f} | {row['pipeline']:,.0f} "
                         f"| {row['cpu']:.1f} | **{row['overhead']:+.1%}** "
                         f"| {row['train']:,.0f} | {row['busy']:.1f} "
                         f"| {row['test_mse']:.5f} |")
        gap = abs(same_model["idx"] - same_model["folder"])
        verdict = "identical" if not gap else f"apart by {gap:.1e}"
        lines += ["", f"The same model (trained on the IDX route) on both test "
                  f"splits: test MSE {same_model['idx']:.6f} from the IDX files, "
                  f"{same_model['folder']:.6f} from the PNG files ({verdict}). "
                  f"Each route's own model differs a little: the folder lists "
                  f"its files by class, so its validation draw and shuffled order "
                  f"are others.", ""]
    if photo_rows:
        counts = photo_rows[0][0]["counts"]
        lines += [
            "### Colour photos: the default conv builder at larger sizes", "",
            f"{sum(counts):,} JPEG crops ({counts[0]:,} train, {counts[1]:,} "
            f"validation, {counts[2]:,} test; 48 to 320 pixels a side, test crops "
            f"from the right quarter of each photo, which no training crop "
            f"touches) of scikit-learn's china.jpg and flower.jpg, resized "
            f"(stretch) to each size, RGB; {args.epochs} epochs, batch "
            f"{args.batch_size}, keras_ae's default learning rate; the default "
            f"`build_conv_autoencoder(input_shape)` against deeper encoders. "
            f"Train images/s: the fastest epoch but the first, wall clock "
            f"(throttling only ever slows one), with the cores busy in it.", "",
            "| size | model | code floats | compression | parameters | test MSE "
            "| PSNR (dB) | SSIM | train images/s | cores busy |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for _, rows in photo_rows:
            for r in rows:
                lines.append(
                    f"| {r['size']}x{r['size']}x3 | {r['model']} | {r['code']:,} "
                    f"| {r['compression']:.0f}x | {r['params']:,} | {r['mse']:.5f} "
                    f"| {r['psnr']:.2f} | {r['ssim']:.4f} | {r['train']:,.0f} "
                    f"| {r['busy']:.1f} |")
        lines += ["", "The training pipeline alone, from memory after the first "
                  "read, and streamed (cache none: every JPEG decoded and resized "
                  "each epoch):", "",
                  "| size | pipeline images/s, memory | pipeline images/s, streamed |",
                  "|---|---:|---:|"]
        lines += [f"| {speeds['size']}x{speeds['size']}x3 | "
                  f"{speeds['pipeline_memory']:,.0f} | {speeds['pipeline_streamed']:,.0f} |"
                  for speeds, _ in photo_rows]
        lines.append("")
    if memory:
        lines += ["### Peak memory at 128x128", "",
                  "A fresh process reads the folder and iterates one epoch of the "
                  "training pipeline; peak resident memory (TensorFlow itself "
                  "included):", "",
                  "| cache | images in the folder | peak RSS (MiB) |", "|---|---:|---:|"]
        lines += [f"| {r['cache']} | {r['images']:,} | {r['peak_mib']:,.0f} |"
                  for r in memory]
        lines.append("")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    if args.probe_rss:
        return probe_rss(*args.probe_rss)
    command = "python3 " + " ".join([sys.argv[0], *(argv if argv is not None
                                                    else sys.argv[1:])])
    started = time.time()
    paths = folders(args)
    with tempfile.TemporaryDirectory(prefix="keras_ae_images_") as cache_dir:
        fashion_rows, same_model = fashion(args, paths["fashion"], cache_dir)
    photo_rows = [photos(args, paths[args.photos[0]], size) for size in args.sizes]
    memory = peak_memory(args, paths)
    text = section(args, command, time.time() - started, fashion_rows, same_model,
                   photo_rows, memory)
    publish_section(args.output, START, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
