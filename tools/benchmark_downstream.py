#!/usr/bin/env python3
"""Benchmark: what the codes are good for, on the real Fashion-MNIST.

1. Linear probe: a softmax classifier on frozen codes from few labels,
   against raw pixels and against the same encoder with random weights.
2. Clustering: k-means on the test images' codes against raw pixels
   (adjusted Rand index, normalized mutual information), and a 2-D map.
3. Denoising: the default conv model trained with noisy inputs at noise
   factors 0.2 and 0.5, against the plain model on the same noise (PSNR).
4. Generation: interpolations and samples from the decoders that run alone.

Steps 1, 2 and 4 use trained models given on the command line (by default
the shipped ones, from ``tools/make_shipped_models.py``); step 3
trains its own (resumable, in ``--output``). Writes its section of
docs/benchmarks.md and pictures in docs/.

    python3 tools/benchmark_downstream.py
    python3 tools/benchmark_downstream.py --epochs 1 --report /tmp/b.md \\
        --pictures /tmp/pictures            # a quick look

Uses keras_ae's public API only.
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_ae  # noqa: E402
from keras_ae import data as data_lib  # noqa: E402
from keras_ae import codes, training  # noqa: E402
from benchmark_report import machine, write_section  # noqa: E402

START, END = "<!-- benchmark_downstream:start -->", "<!-- benchmark_downstream:end -->"
CLASSES = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal",
           "shirt", "sneaker", "bag", "ankle boot"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=data_lib.FASHION_MNIST_DIR)
    parser.add_argument("--models", default="runs/shipped/conv_transpose/model.keras,"
                        "runs/shipped/dense/model.keras",
                        help="trained .keras models for the probe, clustering "
                             "and generation (comma-separated)")
    parser.add_argument("--labels", default="100,1000,5000",
                        help="labeled training images for the probe")
    parser.add_argument("--epochs", type=int, default=10,
                        help="epochs of the models trained here (default 10)")
    parser.add_argument("--train-images", type=int, default=None,
                        help="train the models trained here on the first N "
                             "training images only (a quick look)")
    parser.add_argument("--output", default="runs/benchmark_downstream")
    parser.add_argument("--report", default="docs/benchmarks.md")
    parser.add_argument("--pictures", default="docs")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def load_model(path):
    if not os.path.exists(path):
        sys.exit(f"no model at {path}: run tools/make_shipped_models.py first, "
                 "or name trained models with --models")
    return keras.saving.load_model(path, compile=False)


def describe(model):
    return f"{model.name} (code {keras_ae.code_floats(model)})"


# --- 1. the probe ----------------------------------------------------------------

def probe_rows(models, train, test, counts, seed):
    rows = []
    order = np.random.default_rng(seed).permutation(len(train[0]))
    for count in counts:
        chosen = order[:count]
        labeled = (train[0][chosen], train[1][chosen])
        pixels = codes.probe_features(
            codes.flat_pixels(labeled[0]), labeled[1],
            codes.flat_pixels(test[0]), test[1])
        rows.append((count, "raw pixels", 784, pixels["test_accuracy"]))
        for model in models:
            keras.utils.set_random_seed(seed)
            random = keras.models.clone_model(model)  # same layers, fresh weights
            for name, encoder in (("trained " + describe(model), model),
                                  ("random-weight " + describe(model), random)):
                result = codes.linear_probe(encoder, labeled, test)
                rows.append((count, name, result["features"], result["test_accuracy"]))
        print(f"probe with {count} labels done", flush=True)
    return rows


# --- 2. clustering ------------------------------------------------------------------

def cluster_rows(models, test, seed, pictures):
    rows = []
    pixels = codes.cluster_features(codes.flat_pixels(test[0]), test[1],
                                         seed=seed)
    rows.append(("raw pixels", 784, pixels))
    for model in models:
        encoded = codes.encode(model, test[0])
        rows.append((describe(model), encoded.shape[1],
                     codes.cluster_features(encoded, test[1], seed=seed)))
    codes.save_code_map(codes.encode(models[0], test[0]), test[1],
                             Path(pictures) / "code_map.png",
                             title=f"{models[0].name}: test codes, PCA",
                             class_names=CLASSES)
    return rows


# --- 3 and 4: models trained here -------------------------------------------------------

def train_conv(name, data, args):
    result = training.train(lambda: keras_ae.build_conv_autoencoder(), data,
                            Path(args.output) / name, epochs=args.epochs,
                            settings={"benchmark": name, "data": data.source,
                                      "seed": args.seed}, verbose=0)
    print(f"trained {name}", flush=True)
    return result.model


def denoising_rows(args, splits):
    (train_x, _), (test_x, _) = splits["train"], splits["test"]
    plain = train_conv("plain", data_lib.from_arrays(
        train_x, test_x, validation_split=0.1, seed=args.seed), args)
    rows = []
    for factor in (0.2, 0.5):
        data = data_lib.from_arrays(train_x, test_x, validation_split=0.1,
                                    noise_factor=factor, seed=args.seed)
        denoiser = train_conv(f"denoise_{factor:g}", data, args)
        for name, model in (("plain", plain), ("denoising", denoiser)):
            gain = codes.denoising_gain(model, test_x, factor, seed=args.seed)
            rows.append((factor, name, gain))
        noisy = codes.add_noise(test_x[:10], factor, seed=args.seed)
        clean = test_x[:10] / 255.0  # the IDX images come as (N, 28, 28, 1)
        training.save_reconstruction_grid(
            denoiser, (noisy, clean), Path(args.pictures) / f"denoising_{factor:g}.png",
            title=f"noise factor {factor:g}: clean / noisy / denoised")
    return rows


# --- 5. generation ----------------------------------------------------------------------

def generation_pictures(models, splits, args):
    (train_x, _), (test_x, _) = splits["train"], splits["test"]
    written = []
    for model in models:
        try:
            codes.check_decoder_runs_alone(model)
        except ValueError:
            continue
        line = np.concatenate([codes.interpolate(model, test_x[a], test_x[b], 8)
                               for a, b in ((0, 1), (2, 3))])
        drawn = codes.sample(model, train_x[:20000], 16, seed=args.seed)
        for kind, images in (("interpolation", line), ("samples", drawn)):
            path = Path(args.pictures) / f"generated_{model.name}_{kind}.png"
            codes.save_image_grid(images, path, columns=8,
                                       title=f"{model.name}: {kind}")
            written.append(path.name)
    return written


# --- the report -------------------------------------------------------------------------

def report(args, probe, clusters, denoising, generated, minutes):
    command = "python3 tools/benchmark_downstream.py " + " ".join(sys.argv[1:])
    probe_table = "\n".join(f"| {count:,} | {name} | {features} | {accuracy:.4f} |"
                            for count, name, features, accuracy in probe)
    cluster_table = "\n".join(
        f"| {name} | {features} | {r['adjusted_rand_index']:.4f} "
        f"| {r['normalized_mutual_information']:.4f} |"
        for name, features, r in clusters)
    denoising_table = "\n".join(
        f"| {factor:g} | {name} | {g['noisy_psnr']:.2f} | {g['denoised_psnr']:.2f} "
        f"| {g['gain_db']:+.2f} |" for factor, name, g in denoising)
    pictures = " ".join(f"![{name}]({name})" for name in generated)
    text = f"""{START}
## Using the codes: probe, clusters, denoising, generation

- date: {datetime.date.today().isoformat()}
- machine: {machine()}
- command: `{command.strip()}` (took {minutes:.0f} min)
- data: Fashion-MNIST from {args.data_dir}: the 60,000 training images (the
  probe's labeled subsets are seeded draws from them; the models trained
  here use {args.train_images or 60000:,} of them, 10% held out for validation)
  and the 10,000 test images for every score
- models: {args.models} for the probe, clustering and generation; models
  trained here: `build_conv_autoencoder()`, {args.epochs} epochs, Adam, MSE

### Linear probe (test accuracy, 10 classes)

A softmax classifier (multinomial logistic regression, to convergence) on
standardized features; the encoder is frozen. "random-weight" is the same
architecture with fresh weights: what the training added.

| labeled images | features from | features | test accuracy |
|---:|---|---:|---:|
{probe_table}

### Clustering (k-means, k = 10, the 10,000 test images)

| features from | features | adjusted Rand index | NMI |
|---|---:|---:|---:|
{cluster_table}

![test codes, PCA, coloured by class](code_map.png)

### Anomaly detection

In its own section, "Anomaly detection: the one-class protocol on
Fashion-MNIST" (tools/benchmark_anomaly.py).

### Denoising (PSNR in dB against the clean test images)

| noise factor | model | noisy input | output | gain |
|---:|---|---:|---:|---:|
{denoising_table}

![clean, noisy, denoised at noise 0.5](denoising_0.5.png)

### Generation

{pictures}
{END}
"""
    write_section(args.report, START, END, text)
    print(f"wrote {args.report}")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.time()
    Path(args.pictures).mkdir(parents=True, exist_ok=True)
    splits = data_lib.load_idx_folder(args.data_dir)
    train, test = splits["train"], splits["test"]
    if args.train_images:
        splits = {**splits, "train": (train[0][:args.train_images],
                                      train[1][:args.train_images])}
    models = [load_model(path) for path in args.models.split(",")]
    counts = [int(c) for c in args.labels.split(",")]
    probe = probe_rows(models, train, test, counts, args.seed)
    clusters = cluster_rows(models, test, args.seed, args.pictures)
    print("clustering done", flush=True)
    generated = generation_pictures(models, splits, args)
    denoising = denoising_rows(args, splits)
    report(args, probe, clusters, denoising, generated,
           (time.time() - started) / 60)


if __name__ == "__main__":
    main()
