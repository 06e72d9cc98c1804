#!/usr/bin/env python3
"""Benchmark: a bounded KerasTuner search against the conv builder's defaults.

Runs ``keras_ae.tuning.search`` on the real Fashion-MNIST (Debian's IDX
files) at a pinned code size of 196 floats, the default conv model's, on a
seeded subset of the training images (so that the search fits in about 30
minutes on 2 CPU cores). Then trains the builder's defaults
(``build_conv_autoencoder()``, keras_ae's default learning rate, batch 256)
through the same route, on the same images, for the search's full epoch
budget, and measures both on the 10,000 test images.

The unpool decoder is left out of the search: it also passes the encoder's
max-pooling positions to the decoder, so its bottleneck is wider than the
pinned code (see the training benchmark) and would win by leaking.

Writes its section of docs/benchmarks.md (date, machine, exact command) and
docs/tuning_trials.png.

    python3 tools/benchmark_tuning.py                      # the full run
    python3 tools/benchmark_tuning.py --search-images 2000 --max-epochs 2 \\
        --max-trials 3 --report /tmp/b.md                  # a quick look

Uses keras_ae's public API only.
"""

import argparse
import datetime
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras_ae  # noqa: E402
from keras_ae import data as data_lib  # noqa: E402
from keras_ae import training, tuning  # noqa: E402
from benchmark_report import machine, write_section  # noqa: E402

START, END = "<!-- benchmark_tuning:start -->", "<!-- benchmark_tuning:end -->"
CODE_SIZE = 196  # the default conv model's code: 7 x 7 x 4


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=data_lib.FASHION_MNIST_DIR)
    parser.add_argument("--search-images", type=int, default=12000,
                        help="training images the search sees, 20%% of them "
                             "held out for validation (default 12000)")
    parser.add_argument("--tuner", default="hyperband", choices=tuning.TUNERS)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--max-trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="runs/benchmark_tuning",
                        help="folder for the searches (resumable)")
    parser.add_argument("--report", default="docs/benchmarks.md")
    parser.add_argument("--picture", default="docs/tuning_trials.png")
    return parser.parse_args(argv)


def search_data(args):
    """A seeded subset of the training images (80/20 train/validation), and
    all 10,000 test images."""
    splits = data_lib.load_idx_folder(args.data_dir)
    train_images, test_images = splits["train"][0], splits["test"][0]
    chosen = np.random.default_rng(args.seed).choice(
        len(train_images), args.search_images, replace=False)
    return data_lib.from_arrays(train_images[np.sort(chosen)], test_images,
                                validation_split=0.2, seed=args.seed)


def default_space():
    """A space of one point: ``build_conv_autoencoder()`` as it comes, with
    keras_ae's default learning rate and the CLI's default batch of 256."""
    return tuning.AutoencoderHyperModel(
        (28, 28, 1), families=("conv",), decoders=("transpose",), stages=2,
        filters=(32,), convs_per_stage=(2,), code_size=CODE_SIZE,
        learning_rate=training.DEFAULT_LEARNING_RATE, batch_sizes=(256,))


def check_is_default(result):
    """The one-point space must build exactly the builder's defaults."""
    built = result.best_model
    reference = keras_ae.build_conv_autoencoder()
    arguments = result.best_hyperparameters["builder_arguments"]
    if (built.count_params() != reference.count_params()
            or [layer.name for layer in built.get_layer("encoder").layers]
            != [layer.name for layer in reference.get_layer("encoder").layers]):
        sys.exit(f"the default space built {arguments}, not the builder's defaults")


def measure(name, result, data):
    best = result.best_hyperparameters
    test = training.evaluate(result.best_model, data.test)
    print(f"{name}: test MSE {test['mse']:.5f} (validation {best['val_mse']:.5f})",
          flush=True)
    return {"name": name, "test": test, "best": best}


def model_text(best):
    arguments = best["builder_arguments"]
    if best["builder"] == "build_dense_autoencoder":
        return (f"`build_dense_autoencoder(code_size={arguments['code_size']}, "
                f"hidden_units={tuple(arguments['hidden_units'])})`")
    code = ("" if arguments["code_size"] is None
            else f", code_size={arguments['code_size']}")
    return (f"`build_conv_autoencoder(filters={tuple(arguments['filters'])}, "
            f"decoder={arguments['decoder']!r}, "
            f"convs_per_stage={arguments['convs_per_stage']}{code})`")


def report(args, data, tuned, defaults, trials, minutes):
    command = "python3 tools/benchmark_tuning.py " + " ".join(sys.argv[1:])
    gain = defaults["test"]["mse"] / tuned["test"]["mse"]
    verdict = (f"The tuned model reaches a **{gain:.2f}x lower** test MSE than "
               "the builder's defaults at the same code size and epoch budget."
               if gain > 1 else
               f"The defaults win ({1 / gain:.2f}x lower test MSE): the search "
               "found nothing better, so the defaults must move.")
    rows = []
    for entry in (tuned, defaults):
        best, test = entry["best"], entry["test"]
        rows.append(
            f"| {entry['name']} | {model_text(best)} | {best['learning_rate']:.2g} "
            f"| {best['batch_size']} | {best['epochs']} | {best['code_floats']} "
            f"| {best['parameters']:,} | {best['val_mse']:.5f} "
            f"| **{test['mse']:.5f}** | {test['psnr']:.2f} | {test['ssim']:.4f} |")
    done = sorted((r for r in trials if r["status"] == "COMPLETED"),
                  key=lambda r: r["val_mse"])
    top = [f"| {r['trial_id']} | {r['model']} | {r['learning_rate']:.2g} "
           f"| {r['batch_size']} | {r['epochs']} | {r['parameters']:,} "
           f"| {r['val_mse']:.5f} | {r['seconds']:.0f} |" for r in done[:8]]
    seconds = sum(r["seconds"] or 0 for r in trials)
    text = f"""{START}
## Tuning: a bounded search against the builder's defaults

- date: {datetime.date.today().isoformat()}
- machine: {machine()}
- command: `{command.strip()}` (took {minutes:.0f} min)
- search: KerasTuner {args.tuner}, at most {args.max_trials} trials, max_epochs
  {args.max_epochs}, code pinned to {CODE_SIZE} floats, families conv and dense,
  decoders transpose and upsample (unpool leaks its pooling positions past the
  code), keras_ae's default space otherwise; {len(trials)} trials, {seconds / 60:.0f}
  min of training
- data: Fashion-MNIST from {args.data_dir}; a seeded {args.search_images:,}-image
  subset of the training set ({data.num_train:,} train / {data.num_validation:,}
  validation) for both rows, all {data.num_test:,} test images for the scores
- defaults: `build_conv_autoencoder()` as it comes, learning rate
  {training.DEFAULT_LEARNING_RATE:g}, batch 256, {args.max_epochs} epochs, trained
  through the same search code (a one-point space)

| | model | learning rate | batch | epochs | code | parameters | val MSE | test MSE | PSNR (dB) | SSIM |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

{verdict}

Best trials of the search (validation MSE; Hyperband trains the most
promising ones further, so later rounds repeat earlier models):

| trial | model | learning rate | batch | epochs | parameters | val MSE | seconds |
|---|---|---:|---:|---:|---:|---:|---:|
{chr(10).join(top)}

![validation MSE against parameters, every trial](tuning_trials.png)
{END}
"""
    write_section(args.report, START, END, text)
    print(f"wrote {args.report}")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.time()
    data = search_data(args)
    print(f"search data: {data.num_train} train / {data.num_validation} validation "
          f"/ {data.num_test} test images", flush=True)
    space = tuning.AutoencoderHyperModel((28, 28, 1), code_size=CODE_SIZE,
                                         decoders=("transpose", "upsample"))
    found = tuning.search(data.train, data.validation, hypermodel=space,
                          tuner=args.tuner, max_trials=args.max_trials,
                          max_epochs=args.max_epochs, directory=args.output,
                          project_name="search", seed=args.seed)
    plain = tuning.search(data.train, data.validation, hypermodel=default_space(),
                          tuner="random", max_trials=1, max_epochs=args.max_epochs,
                          directory=args.output, project_name="defaults",
                          seed=args.seed)
    check_is_default(plain)
    tuned = measure("tuned (best trial)", found, data)
    defaults = measure("builder defaults", plain, data)
    tuning.save_trials_plot(found.trials, args.picture,
                            title=f"{args.tuner} search, code {CODE_SIZE} floats")
    report(args, data, tuned, defaults, found.trials, (time.time() - started) / 60)


if __name__ == "__main__":
    main()
