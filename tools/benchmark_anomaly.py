#!/usr/bin/env python3
"""Benchmark: anomaly detection on the real Fashion-MNIST, against published
one-class results.

1. One-class protocol (Golan and El-Yaniv 2018 and the literature since):
   for each of the 10 classes, `build_conv_autoencoder()` is trained on
   that class's training images alone (10% held out, seeded); every score
   of `keras_ae.anomaly.AnomalyDetector` is fitted on them and measured on
   all 10,000 test images, that class normal and the other nine anomalous:
   ROC AUC, and precision and recall at the default threshold.
2. Leave-one-class-out: trained on nine classes, the tenth anomalous.
3. Localisation: the one-class models' maps on that class's test images
   with synthetic defects (`keras_ae.anomaly.synthetic_defects`, seeded):
   pixel-level ROC AUC of each kind of map, and the image-level ROC AUC of
   the defective images against the clean ones.
4. Model choice: the default score's ROC AUC on the hardest classes for
   other budgets and models (epochs, denoising, code size).
5. Real defects (`tools/anomaly_real.py`, its own section): cracks in ELPV
   solar cells (skipped, with how to install it, when the data set is not
   here), and patches of real texture pasted into their own kind.

Every image-level table has rows for nearest neighbours on raw pixels and on
square-root pixels, computed in the same run: what the autoencoder adds.

Models are trained through `keras_ae.training.train` into resumable run
folders under --output; a stopped run picks up where it was. Writes its
section of docs/benchmarks.md and pictures in docs/.

    python3 tools/benchmark_anomaly.py
    python3 tools/benchmark_anomaly.py --classes 6 --epochs 1 --skip-loo \\
        --choice-classes "" --report /tmp/b.md --pictures /tmp/p   # a quick look
    python3 tools/benchmark_anomaly.py --only real     # the real defects alone

Uses keras_ae's public API only.
"""

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras_ae  # noqa: E402
from keras_ae import anomaly, files, training  # noqa: E402
from keras_ae import data as data_lib  # noqa: E402
from benchmark_report import machine, publish_section  # noqa: E402
import anomaly_real  # noqa: E402

START, END = "<!-- benchmark_anomaly:start -->", "<!-- benchmark_anomaly:end -->"
REAL_START, REAL_END = ("<!-- benchmark_anomaly_real:start -->",
                        "<!-- benchmark_anomaly_real:end -->")
NEAREST = ("nearest neighbours, raw pixels", "nearest neighbours, square-root pixels")
CLASSES = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal",
           "shirt", "sneaker", "bag", "ankle boot"]
SCORES = ("mse", "ssim", "knn", "mahalanobis", "knn+mahalanobis", "mse+knn")
# Golan and El-Yaniv 2018, "Deep Anomaly Detection Using Geometric
# Transformations", Table 1, Fashion-MNIST, mean ROC AUC over the 10 classes.
PUBLISHED = (("one-class SVM, raw pixels", 0.928), ("one-class SVM on a conv "
             "autoencoder's codes (CAE-OC-SVM)", 0.917), ("DSEBM", 0.866),
             ("ADGAN", 0.884), ("GEOM (Golan and El-Yaniv)", 0.935))
MAPS = (("squared_error", 0.0), ("squared_error", 1.0), ("squared_error", 2.0),
        ("ssim", 0.0), ("ssim", 1.0))
MAP_NAMES = [f"{kind}, smoothing {smoothing:g}" for kind, smoothing in MAPS]


class Results:
    """Measurements kept in OUTPUT/results.json as they come: a stopped run
    skips what it measured, and the report can be written again from it."""

    def __init__(self, path):
        self.path = Path(path)
        self.found = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.measured, self.read_back = 0, 0

    def get(self, key, measure):
        if key in self.found:
            self.read_back += 1
        else:
            self.found[key] = measure()
            self.measured += 1
            self.path.parent.mkdir(parents=True, exist_ok=True)
            files.write_json(self.path, self.found)
        return self.found[key]

    def say(self):
        """Where this run's figures came from, for the report."""
        if not self.read_back:
            return "every figure measured in this run"
        return (f"{self.measured} measurements made in this run and "
                f"{self.read_back} read back from {self.path}, where an earlier "
                f"run of the same command left them")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=data_lib.FASHION_MNIST_DIR)
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--epochs", type=int, default=5,
                        help="epochs of each one-class model (default 5)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--loo-epochs", type=int, default=1,
                        help="epochs of each leave-one-class-out model, on "
                             "nine times the images (default 1)")
    parser.add_argument("--skip-loo", action="store_true")
    parser.add_argument("--choice-classes", default="2,6",
                        help="classes of the model-choice table ('' for none)")
    parser.add_argument("--output", default="runs/benchmark_anomaly")
    parser.add_argument("--report", default="docs/benchmarks.md")
    parser.add_argument("--pictures", default="docs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("all", "fashion", "real"), default="all",
                        help="which sections to measure and write (default all)")
    parser.add_argument("--elpv-size", type=int, default=128,
                        help="side the ELPV cells are read at (default 128)")
    parser.add_argument("--elpv-epochs", type=int, default=5,
                        help="epochs of the real-defect models (default 5)")
    return parser.parse_args(argv)


RECOMMENDED = {"intensity": "sqrt"}  # build_conv_autoencoder's arguments
DEFAULT_SMALL = anomaly.default_score((28, 28, 1))  # what "auto" is on Fashion-MNIST
LOO_SCORES = ("mse", "knn", "knn+mahalanobis")


def train_model(name, images, args, epochs, noise_factor=0.0, **builder):
    """A conv autoencoder trained on ``images``; ``(model, train, held out)``."""
    builder = {**RECOMMENDED, **builder}
    data = data_lib.from_arrays(images, images[:2], validation_split=0.1,
                                batch_size=args.batch_size, seed=args.seed,
                                noise_factor=noise_factor)
    result = training.train(lambda: keras_ae.build_conv_autoencoder(**builder), data,
                            Path(args.output) / name, epochs=epochs,
                            settings={"benchmark": name, "seed": args.seed,
                                      "noise_factor": noise_factor, **builder},
                            verbose=0)
    train = np.concatenate([y for _, y in data.train.as_numpy_iterator()])
    held_out = np.concatenate([y for _, y in data.validation.as_numpy_iterator()])
    print(f"trained {name}", flush=True)
    return result.model, train, held_out


def score_rows(model, train, held_out, test_x, anomalous, args, scores=SCORES):
    """``{score: evaluate(...)}`` for every score."""
    rows = {}
    for score in scores:
        detector = anomaly.AnomalyDetector.fit(model, train, held_out, score=score,
                                               seed=args.seed)
        rows[score] = detector.evaluate(test_x, anomalous)
    return rows


def nearest_rows(train, held_out, test_x, anomalous):
    """Nearest neighbours on raw and on square-root pixels, as a score would
    be measured (threshold: held-out mean + 3 std)."""
    rows = {}
    for name, transform in zip(NEAREST, (None, np.sqrt)):
        scores = anomaly_real.nearest_neighbour_scores(train, test_x, transform)
        held = anomaly_real.nearest_neighbour_scores(train, held_out * 255.0, transform)
        rows[name] = anomaly.evaluate_scores(scores, anomalous, held.mean() + 3 * held.std())
    return rows


def one_class(args, splits, classes, results):
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    scores, localisation = {}, {}
    for label in classes:
        def measure(label=label):
            model, train, held_out = train_model(
                f"one_class_{label}", train_x[train_y == label], args, args.epochs)
            rows = score_rows(model, train, held_out, test_x, test_y != label, args)
            rows.update(nearest_rows(train_x[train_y == label], held_out, test_x,
                                     test_y != label))
            where = localise(model, train, held_out, test_x[test_y == label],
                             label, args)
            return {"scores": rows, "localisation": where}
        found = results.get(f"one_class/{label}", measure)
        scores[label], localisation[label] = found["scores"], found["localisation"]
        print(f"class {label}: " + ", ".join(
            f"{s} {r['roc_auc']:.4f}" for s, r in scores[label].items()), flush=True)
    return scores, localisation


def localise(model, train, held_out, good, label, args):
    """Pixel ROC AUC of each map kind on ``good`` images with synthetic
    defects, and the default score's image ROC AUC of defective vs good."""
    half = len(good) // 2
    clean, broken = good[:half], good[half:]
    defective, masks, _ = anomaly.synthetic_defects(broken, seed=args.seed)
    row = {}
    for name, (kind, smoothing) in zip(MAP_NAMES, MAPS):
        detector = anomaly.AnomalyDetector.fit(model, train, held_out, score="mse",
                                               map_kind=kind, smoothing=smoothing)
        row[name] = detector.localisation(defective, masks)
    detector = anomaly.AnomalyDetector.fit(model, train, held_out)
    both = np.concatenate([clean / 255.0, defective]).astype("float32")
    flags = np.r_[np.zeros(len(clean), bool), np.ones(len(defective), bool)]
    row["image"] = detector.evaluate(both, flags)["roc_auc"]
    for name, transform in zip(NEAREST, (None, np.sqrt)):
        scores = anomaly_real.nearest_neighbour_scores(train * 255.0, both * 255.0, transform)
        row[name] = anomaly.evaluate_scores(scores, flags, float(scores.max()))["roc_auc"]
    print(f"class {label} localisation: " + ", ".join(
        f"{k} {v:.4f}" for k, v in row.items()), flush=True)
    return row


def draw_maps(args, splits, label):
    """anomaly_maps.png: one class's model (its finished run folder) and
    default detector on that class's test images with synthetic anomaly."""
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    model, train, held_out = train_model(f"one_class_{label}", train_x[train_y == label],
                                         args, args.epochs)
    detector = anomaly.AnomalyDetector.fit(model, train, held_out)
    good = test_x[test_y == label]
    defective, masks, kinds = anomaly.synthetic_defects(good[len(good) // 2:],
                                                        seed=args.seed)
    scores, maps = detector.scores_and_maps(defective[:12])
    smoothing = detector.describe()["smoothing"]
    return anomaly.save_map_overlays(
        defective[:12], maps, scores, Path(args.pictures) / "anomaly_maps.png",
        threshold=detector.threshold, masks=masks[:12], labels=kinds[:12],
        title=f"'{CLASSES[label]}' model: synthetic defects (mask outlined in cyan); "
              f"the default maps (squared error, smoothing {smoothing:g})")


def leave_one_out(args, splits, classes, results):
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    found = {}
    for label in classes:
        def measure(label=label):
            model, train, held_out = train_model(
                f"without_{label}", train_x[train_y != label], args, args.loo_epochs)
            rows = score_rows(model, train, held_out, test_x, test_y == label,
                              args, LOO_SCORES)
            rows.update(nearest_rows(train_x[train_y != label], held_out, test_x,
                                     test_y == label))
            return rows
        found[label] = results.get(f"leave_one_out/{label}", measure)
        print(f"without class {label}: " + ", ".join(
            f"{s} {r['roc_auc']:.4f}" for s, r in found[label].items()), flush=True)
    return found


CHOICES = (("intensity 'linear' (the builder's default)", {"intensity": "linear"}),
           ("20 epochs", {"epochs": 20}),
           ("denoising, noise 0.2", {"noise_factor": 0.2}),
           ("code 7x7x8 (filters 32, 8)", {"filters": (32, 8)}))


def model_choice(args, splits, classes, one_class_results, results):
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    rows = [(f"recommended: intensity 'sqrt', {args.epochs} epochs, filters (32, 4)",
             {c: one_class_results[c][DEFAULT_SMALL]["roc_auc"]
              for c in classes if c in one_class_results})]
    for number, (name, change) in enumerate(CHOICES):
        found = {}
        for label in classes:
            def measure(label=label, change=dict(change)):
                epochs = change.pop("epochs", args.epochs)
                model, train, held_out = train_model(
                    f"choice{number}_{label}", train_x[train_y == label], args,
                    epochs, **change)
                detector = anomaly.AnomalyDetector.fit(model, train, held_out)
                return detector.evaluate(test_x, test_y != label)["roc_auc"]
            found[label] = results.get(f"choice/{number}/{label}", measure)
        print(f"model choice {name}: {found}", flush=True)
        rows.append((name, found))
    return rows


# --- the report --------------------------------------------------------------------------

def _score_table(results, classes, what, scores=SCORES):
    head = "| score | " + " | ".join(str(c) for c in classes) + " | mean |"
    lines = [head, "|---|" + "---:|" * (len(classes) + 1)]
    for score in scores:
        values = [results[c][score][what] for c in classes]
        mark = " (default)" if score == DEFAULT_SMALL else ""
        lines.append(f"| {score}{mark} | " + " | ".join(f"{v:.3f}" for v in values)
                     + f" | **{np.mean(values):.3f}** |")
    return "\n".join(lines)


def report(args, classes, one, localisation, loo, choice, minutes, results):
    command = "python3 tools/benchmark_anomaly.py " + " ".join(sys.argv[1:])
    names = ", ".join(f"{c} {CLASSES[c]}" for c in classes)
    default = {c: one[c][DEFAULT_SMALL] for c in classes}
    below = [c for c in classes if default[c]["roc_auc"] < 0.85]
    mean = np.mean([default[c]["roc_auc"] for c in classes])
    published = "\n".join(f"| {name} | {value:.3f} |" for name, value in PUBLISHED)
    best = max(SCORES, key=lambda s: np.mean([one[c][s]["roc_auc"] for c in classes]))
    image_columns = ("image", *NEAREST)
    map_head = ("| class | " + " | ".join(MAP_NAMES)
                + " | image ROC AUC (default score) | image ROC AUC, "
                + " | image ROC AUC, ".join(NEAREST) + " |")
    map_rows = "\n".join(
        f"| {c} {CLASSES[c]} | " + " | ".join(f"{localisation[c][m]:.3f}"
                                              for m in MAP_NAMES + list(image_columns))
        + " |" for c in classes)
    map_mean = ("| mean | " + " | ".join(
        f"**{np.mean([localisation[c][m] for c in classes]):.3f}**"
        for m in MAP_NAMES + list(image_columns)) + " |")
    loo_section = "not run (--skip-loo)"
    if loo:
        loo_section = (f"`build_conv_autoencoder(intensity=\"sqrt\")` trained "
                       f"{args.loo_epochs} epochs on "
                       f"the nine other classes' training images (10% held out); "
                       f"the class named is the anomaly (1,000 of the 10,000 test "
                       f"images); three of the scores.\n\n"
                       + _score_table(loo, classes, "roc_auc", LOO_SCORES + NEAREST))
    choice_section = "not run"
    if choice and len(choice) > 1:
        choice_classes = sorted(choice[0][1])
        choice_section = (
            f"The default score's one-class ROC AUC on classes "
            f"{', '.join(map(str, choice_classes))} for other models and "
            f"budgets, each trained here the same way:\n\n"
            "| model | " + " | ".join(str(c) for c in choice_classes) + " | mean |\n"
            "|---|" + "---:|" * (len(choice_classes) + 1) + "\n" + "\n".join(
                f"| {name} | " + " | ".join(f"{found[c]:.3f}" for c in choice_classes)
                + f" | {np.mean([found[c] for c in choice_classes]):.3f} |"
                for name, found in choice))
    text = f"""{START}
## Anomaly detection: the one-class protocol on Fashion-MNIST

- date: {datetime.date.today().isoformat()}
- machine: {machine()}
- command: `{command.strip()}` (took {minutes:.0f} min; {results.say()})
- data: Fashion-MNIST from {args.data_dir}; classes {names}
- model (the recommended one for detection):
  `build_conv_autoencoder(intensity="sqrt")` (filters (32, 4), code 7x7x4,
  the encoder sees square roots of pixels), Adam, MSE, batch
  {args.batch_size}, {args.epochs} epochs on one class's 6,000
  training images, 10% of them held out (seeded) to normalise the scores
  and set the threshold; every score is fitted on the same model and
  images. No anomaly is used to fit anything.
- default score: `{anomaly.DEFAULT_SCORE}`, which is `{DEFAULT_SMALL}` for
  Fashion-MNIST's 28x28 images; the best mean here: `{best}`.
  Default score's mean ROC AUC {mean:.3f}; classes under 0.85:
  {', '.join(f'{c} {CLASSES[c]} ({default[c]["roc_auc"]:.3f})' for c in below) or 'none'}.

### One class normal, nine anomalous: ROC AUC

{_score_table(one, classes, "roc_auc", SCORES + NEAREST)}

Published means on the same protocol (Golan and El-Yaniv 2018, Table 1):

| method | mean ROC AUC |
|---|---:|
{published}

### Precision and recall at the default threshold

The threshold is the held-out normal images' mean + 3 standard deviations
(`AnomalyDetector.fit(std=3.0)`); 9,000 of the 10,000 test images are
anomalies, so precision is high for any score that flags few normal ones.

Precision:

{_score_table(one, classes, "precision", SCORES + NEAREST)}

Recall:

{_score_table(one, classes, "recall", SCORES + NEAREST)}

### Nine classes normal, one anomalous (leave one class out): ROC AUC

{loo_section}

### Where: localising synthetic defects

Half of each class's 1,000 test images get one seeded synthetic defect
(a patch pasted from another image, a scratch or a hole, in turn;
`keras_ae.anomaly.synthetic_defects`); pixel-level ROC AUC of the maps of
that class's model against the defect masks, and the default score's
image-level ROC AUC of the defective half against the clean half. The
detector's default maps: squared error, smoothing
{anomaly.DEFAULT_SMOOTHING:g} pixels per 28 of the image's side.

{map_head}
|---|{"---:|" * (len(MAPS) + 3)}
{map_rows}
{map_mean}

![synthetic defects and their maps](anomaly_maps.png)

### Which model for detection

{choice_section}
{END}
"""
    publish_section(args.report, START, END, text)


def report_real(args, started, results):
    """The real-defects section: ELPV cracks, pasted texture."""
    command = "python3 tools/benchmark_anomaly.py " + " ".join(sys.argv[1:])
    elpv = anomaly_real.elpv_section(args, results, train_model)
    textures = anomaly_real.texture_section(args, results, train_model)
    exported = anomaly_real.export_section(args, results, train_model)
    drawn = [name for kind in ("mono", "poly")
             for name in (f"anomaly_elpv_{kind}.png", f"anomaly_elpv_{kind}_ranks.png")
             if (Path(args.output) / name).exists()]
    pictures = ("Maps of the default score, written to the run folder and not "
                "committed (they show ELPV cells, whose licence forbids it): "
                + ", ".join(f"`{Path(args.output) / name}`" for name in drawn)
                + " (each type's highest-scoring cracked cells, and cracked cells at "
                "evenly spaced ranks with each map on its own scale)." if drawn else "")
    text = f"""{REAL_START}
## Anomaly detection on real defects: cracked solar cells, pasted texture

- date: {datetime.date.today().isoformat()}
- machine: {machine()}
- command: `{command.strip()}` (took {(time.time() - started) / 60:.0f} min; {results.say()})
- model: `build_conv_autoencoder(({args.elpv_size}, {args.elpv_size}, 1), intensity="sqrt")`,
  Adam, MSE, batch {args.batch_size}, {args.elpv_epochs} epochs on the good images alone,
  10% of them held out (seeded) to normalise the scores and set the threshold
  (mean + 3 std); seed {args.seed}. Nearest neighbours: mean distance to the
  {anomaly_real.NEIGHBOURS} nearest training images, threshold by the same rule.
- the default score for images of 64 pixels a side and more:
  `{anomaly.default_score((128, 128, 1))}`.

### ELPV: cracks in electroluminescence images of solar cells

ELPV (Deitsch et al.; `{anomaly_real.INSTALL}`; licence CC-BY-NC-SA, read,
never committed), 300x300 cells read at {args.elpv_size}x{args.elpv_size} as an
image folder is. Per cell type the defect-free cells are shuffled (seeded):
three in four train, the fourth is the good test set; cracked = rated 1, likely =
rated 2/3. Recall and "good flagged" are at each score's threshold.

{elpv}

{pictures}

### Pasted texture: patches of a real photograph in its own kind

scikit-image's brick and gravel photographs (512x512): 400 crops of 128x128
from the upper half train; 120 crops of the lower half test, half of them
with a patch of 16 to 40 pixels a side cut from another crop of the same
texture pasted at a random place (seeded, exact masks). Pixel metrics are of
each score's maps (AUPRO integrated to a false-positive rate of 0.3).

{textures}

### The exported detector

`keras_ae.export.export_detector` (the scorer inside the ONNX graph),
served by `keras_ae.runtime.OnnxAnomalyDetector` on onnxruntime alone,
{os.cpu_count()} threads; latency: median of 30 single-image calls after 5;
the difference: largest |ONNX - Keras| over 32 cracked cells, divided by
the standard deviation of the held-out normal cells' scores.

{exported}
{REAL_END}
"""
    publish_section(args.report, REAL_START, REAL_END, text)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.time()
    Path(args.pictures).mkdir(parents=True, exist_ok=True)
    results = Results(Path(args.output) / "results.json")
    if args.only in ("all", "real"):
        report_real(args, started, results)
    if args.only == "real":
        return
    splits = data_lib.load_idx_folder(args.data_dir)
    classes = [int(c) for c in args.classes.split(",")]
    one, localisation = one_class(args, splits, classes, results)
    draw_maps(args, splits, 6 if 6 in classes else classes[0])
    loo = {} if args.skip_loo else leave_one_out(args, splits, classes, results)
    choice_classes = [int(c) for c in args.choice_classes.split(",") if c]
    choice = (model_choice(args, splits, choice_classes, one, results)
              if choice_classes else [])
    report(args, classes, one, localisation, loo, choice, (time.time() - started) / 60,
           results)


if __name__ == "__main__":
    main()
