"""Real defects for tools/benchmark_anomaly.py: cracks in ELPV solar cells and
patches of real texture pasted into their own kind.

ELPV (Deitsch et al., `pip install elpv-dataset`, CC-BY-NC-SA: read here,
never committed): 300x300 electroluminescence images of solar cells rated by
experts with a defect probability. Per cell type, the defect-free cells
(probability 0) are shuffled (seeded): three in four train, the fourth is
`test/good`; `test/crack` is probability 1, `test/likely` 2/3. Images are
read at --elpv-size as an image folder would be (Pillow, bilinear). The
model is the README's anomaly recipe: `build_conv_autoencoder(intensity=
"sqrt")`, batch 64, --elpv-epochs epochs; 10% of the training cells held out
(seeded) to normalise the scores and set the threshold. Each score is
measured beside nearest neighbours on raw pixels and on square-root pixels
(mean distance to the 5 nearest training cells), computed in the same run.

Textures (scikit-image's brick and gravel, real photographs): 128x128 crops
of the upper half train, crops of the lower half test; half
of the test crops get a patch (16 to 40 pixels a side) cut from another
crop of the same texture pasted at a random place (seeded), its mask exact.

Uses keras_ae's public API only.
"""

import os

import numpy as np

from keras_ae import anomaly
from keras_ae.runtime import read_image

ELPV_SCORES = ("knn", "patch_gaussian", "patch_knn", "patch_gaussian+knn")
TEXTURE_SCORES = ("mse", "knn", "patch_gaussian", "patch_knn")
TEXTURES = ("brick", "gravel")
NEIGHBOURS = 5
INSTALL = "pip install elpv-dataset"


def nearest_neighbour_scores(train, test, transform=None):
    """Mean Euclidean distance from each test image to its ``NEIGHBOURS``
    nearest training images (flattened pixels in [0, 1], ``transform``ed)."""
    def flat(images):
        values = np.asarray(images, np.float64).reshape(len(images), -1) / 255.0
        return transform(values) if transform else values

    reference = flat(train)
    norms = (reference ** 2).sum(1)[None]
    found = []
    for start in range(0, len(test), 1000):  # 1,000 queries at a time: memory bounded
        queries = flat(test[start:start + 1000])
        squared = (queries ** 2).sum(1)[:, None] + norms - 2 * queries @ reference.T
        nearest = np.partition(np.maximum(squared, 0), NEIGHBOURS - 1, axis=1)[:, :NEIGHBOURS]
        found.append(np.sqrt(nearest).mean(axis=1))
    return np.concatenate(found)


def _measure(scores, anomalous, threshold):
    """The image-level row: ROC AUC, AUPR, F1-max and, at the threshold,
    recall and the share of good images flagged."""
    result = anomaly.evaluate_scores(scores, anomalous, threshold)
    good = ~np.asarray(anomalous, bool)
    result["good_flagged"] = float((np.asarray(scores)[good] > threshold).mean())
    return result


# --- ELPV --------------------------------------------------------------------

def elpv_cells(kind, size, seed):
    """``{"train", "good", "crack", "likely"}`` uint8 arrays of one cell
    type at ``size`` x ``size``, split as the module docstring says."""
    from elpv_dataset.utils import load_dataset

    images, probability, types = load_dataset()
    chosen = types == kind
    cells = np.stack([read_image(image, (size, size, 1), "stretch")
                      for image in images[chosen]])
    probability = probability[chosen]
    good = np.flatnonzero(probability == 0)
    np.random.default_rng(seed).shuffle(good)
    cut = len(good) * 3 // 4
    return {"train": cells[good[:cut]], "good": cells[good[cut:]],
            "crack": cells[probability == 1],
            "likely": cells[np.isclose(probability, 2 / 3)]}


def elpv_rows(kind, args, train_model, pictures):
    """Every score and both nearest-neighbour baselines on one cell type."""
    cells = elpv_cells(kind, args.elpv_size, args.seed)
    model, train, held_out = train_model(
        f"elpv_{kind}_{args.elpv_size}", cells["train"], args, args.elpv_epochs,
        input_shape=(args.elpv_size, args.elpv_size, 1))
    rows = {}
    for score in ELPV_SCORES:
        detector = anomaly.AnomalyDetector.fit(model, train, held_out, score=score,
                                               seed=args.seed)
        rows[score] = {}
        for defect in ("crack", "likely"):
            test = np.concatenate([cells["good"], cells[defect]])
            flags = np.r_[np.zeros(len(cells["good"]), bool), np.ones(len(cells[defect]), bool)]
            scores = detector.scores(test)
            rows[score][defect] = _measure(scores, flags, detector.threshold)
        if score == anomaly.default_score(model.input_shape[1:]):
            _draw_cracks(detector, cells, kind, pictures)
        print(f"elpv {kind} {score}: crack ROC AUC {rows[score]['crack']['roc_auc']:.3f}",
              flush=True)
    for name, transform in (("raw pixels", None), ("square-root pixels", np.sqrt)):
        rows[f"nearest neighbours, {name}"] = {}
        for defect in ("crack", "likely"):
            test = np.concatenate([cells["good"], cells[defect]])
            flags = np.r_[np.zeros(len(cells["good"]), bool), np.ones(len(cells[defect]), bool)]
            scores = nearest_neighbour_scores(cells["train"], test, transform)
            held = nearest_neighbour_scores(cells["train"], held_out * 255.0, transform)
            # the detector's rule: mean + 3 std of held-out normal scores
            rows[f"nearest neighbours, {name}"][defect] = _measure(
                scores, flags, held.mean() + 3 * held.std())
    counts = {part: int(len(images)) for part, images in cells.items()}
    return {"rows": rows, "counts": counts, "held_out": int(len(held_out))}


def _draw_cracks(detector, cells, kind, pictures):
    """The default detector's maps of the highest-scoring cracks, and of
    cracks at evenly spaced ranks, each map on its own scale (the highest
    scores are mostly large dark regions, which drown thin lines)."""
    scores, maps = detector.scores_and_maps(cells["crack"])
    order = np.argsort(-scores)
    spread = order[np.linspace(8, len(order) - 1, 8).astype(int)]
    score = detector.scoring.score
    for chosen, name, scale, title in (
            (order[:8], f"anomaly_elpv_{kind}.png", "shared",
             f"ELPV {kind} cells rated cracked: the 8 highest {score} scores, their maps"),
            (spread, f"anomaly_elpv_{kind}_ranks.png", "each",
             f"ELPV {kind} cracked cells at evenly spaced ranks of {score}, "
             f"each map on its own scale")):
        anomaly.save_map_overlays(
            cells["crack"][chosen], maps[chosen], scores[chosen],
            os.path.join(pictures, name), threshold=detector.threshold, scale=scale,
            title=title)


def elpv_section(args, results, train_model):
    """The ELPV section's Markdown (or why it was skipped)."""
    try:
        import elpv_dataset  # noqa: F401
    except ImportError:
        return (f"Skipped: the ELPV data set is not installed here (`{INSTALL}`; "
                f"licence CC-BY-NC-SA, so it is read, never committed).")
    parts = []
    for kind in ("mono", "poly"):
        # the pictures show ELPV cells (CC-BY-NC-SA): into the run folder,
        # never into docs/
        found = results.get(f"elpv/{kind}/{args.elpv_size}/{args.elpv_epochs}",
                            lambda kind=kind: elpv_rows(kind, args, train_model,
                                                        args.output))
        parts.append(_elpv_table(kind, found))
    return "\n\n".join(parts)


def _elpv_table(kind, found):
    rows, counts = found["rows"], found["counts"]
    default = anomaly.default_score((128, 128, 1))
    lines = [f"**{kind} cells** ({counts['train']} good cells train, "
             f"{found['held_out']} of them held out; test: {counts['good']} good, "
             f"{counts['crack']} cracked, {counts['likely']} likely):", "",
             "| score | crack ROC AUC | AUPR | F1-max | recall at the threshold | good "
             "flagged | likely ROC AUC |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        crack = row["crack"]
        mark = " (default)" if name == default else ""
        lines.append(f"| {name}{mark} | {crack['roc_auc']:.3f} | {crack['aupr']:.3f} | "
                     f"{crack['f1_max']:.3f} | {crack['recall']:.1%} | "
                     f"{crack['good_flagged']:.1%} | {row['likely']['roc_auc']:.3f} |")
    return "\n".join(lines)


# --- textures -----------------------------------------------------------------

def texture_crops(name, count, rows, size, rng):
    """``count`` seeded ``size`` x ``size`` grey crops of scikit-image's
    ``name`` texture whose top row lies in ``rows`` (a range)."""
    from skimage import data as samples

    texture = np.asarray(getattr(samples, name)(), np.uint8)
    texture = texture if texture.ndim == 2 else texture[..., 0]
    tops = rng.integers(rows[0], rows[1] - size + 1, count)
    lefts = rng.integers(0, texture.shape[1] - size + 1, count)
    return np.stack([texture[top:top + size, left:left + size]
                     for top, left in zip(tops, lefts)])[..., None]


def pasted_defects(images, donors, rng):
    """``(images with a pasted patch, masks)``: each gets a rectangle of 16
    to 40 pixels a side cut from a donor at another place."""
    broken, masks = images.copy(), np.zeros(images.shape[:3], bool)
    size = images.shape[1]
    for index in range(len(images)):
        height, width = rng.integers(16, 41, 2)
        top, left = rng.integers(0, size - height), rng.integers(0, size - width)
        source_top, source_left = rng.integers(0, size - height), rng.integers(0, size - width)
        broken[index, top:top + height, left:left + width] = donors[
            index, source_top:source_top + height, source_left:source_left + width]
        masks[index, top:top + height, left:left + width] = True
    return broken, masks


def texture_rows(name, args, train_model):
    rng = np.random.default_rng(args.seed)
    from skimage import data as samples

    height = np.asarray(getattr(samples, name)()).shape[0]
    boundary = height // 2
    train_crops = texture_crops(name, 400, (0, boundary), 128, rng)
    test_crops = texture_crops(name, 120, (boundary, height), 128, rng)
    donors = texture_crops(name, 60, (0, height), 128, rng)
    broken, masks = pasted_defects(test_crops[60:], donors, rng)
    model, train, held_out = train_model(f"texture_{name}", train_crops, args,
                                         args.elpv_epochs, input_shape=(128, 128, 1))
    images = np.concatenate([test_crops[:60], broken])
    flags = np.r_[np.zeros(60, bool), np.ones(60, bool)]
    rows = {}
    for score in TEXTURE_SCORES:
        detector = anomaly.AnomalyDetector.fit(model, train, held_out, score=score,
                                               seed=args.seed)
        scores, maps = detector.scores_and_maps(images)
        rows[score] = {"image": _measure(scores, flags, detector.threshold),
                       "pixel": anomaly.pixel_metrics(maps[60:], masks),
                       "map": detector.scoring.map_kind}
    for label, transform in (("raw pixels", None), ("square-root pixels", np.sqrt)):
        scores = nearest_neighbour_scores(train_crops, images, transform)
        held = nearest_neighbour_scores(train_crops, held_out * 255.0, transform)
        rows[f"nearest neighbours, {label}"] = {
            "image": _measure(scores, flags, held.mean() + 3 * held.std()), "pixel": None}
    return rows


def texture_section(args, results, train_model):
    try:
        import skimage  # noqa: F401
    except ImportError:
        return "Skipped: scikit-image is not installed here (`pip install scikit-image`)."
    lines = ["| texture | score | image ROC AUC | F1-max | pixel ROC AUC | AUPRO | "
             "pixel F1-max |", "|---|---|---:|---:|---:|---:|---:|"]
    for name in TEXTURES:
        rows = results.get(f"texture/{name}/{args.elpv_epochs}",
                           lambda name=name: texture_rows(name, args, train_model))
        for score, row in rows.items():
            pixel = row["pixel"]
            where = ("n/a (no map) | n/a | n/a" if pixel is None else
                     f"{pixel['pixel_roc_auc']:.3f} | {pixel['aupro']:.3f} | "
                     f"{pixel['pixel_f1_max']:.3f}")
            map_kind = f" ({row['map']} map)" if row.get("map") else ""
            lines.append(f"| {name} | {score}{map_kind} | {row['image']['roc_auc']:.3f} | "
                         f"{row['image']['f1_max']:.3f} | {where} |")
    return "\n".join(lines)



# --- the exported detector: size, latency, parity -----------------------------

def export_rows(args, train_model):
    """Each patch score's exported ``detector.onnx`` at 128x128 (the ELPV
    mono model) and 256x256 (the same recipe, untrained: a file's size and
    time do not depend on its weights): size, batch-1 latency on
    onnxruntime, largest difference from Keras."""
    import tempfile
    import time

    import keras_ae
    from keras_ae.export import export_detector
    from keras_ae.runtime import OnnxAnomalyDetector

    rows = []
    for size in (128, 256):
        cells = elpv_cells("mono", size, args.seed)
        if size == args.elpv_size:
            model, train, held_out = train_model(
                f"elpv_mono_{size}", cells["train"], args, args.elpv_epochs,
                input_shape=(size, size, 1))
        else:
            model = keras_ae.build_conv_autoencoder((size, size, 1), intensity="sqrt")
            cut = len(cells["train"]) * 9 // 10
            train, held_out = cells["train"][:cut], cells["train"][cut:]
        for score in ("knn", "patch_gaussian", "patch_knn"):
            detector = anomaly.AnomalyDetector.fit(model, train, held_out, score=score,
                                                   seed=args.seed)
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "detector.onnx")
                differences = export_detector(detector, path, images=cells["crack"][:16])
                served = OnnxAnomalyDetector(path, intra_op_threads=os.cpu_count())
                one = cells["crack"][:1]
                for _ in range(5):
                    served.scores(one)
                times = []
                for _ in range(30):
                    started = time.perf_counter()
                    served.scores(one)
                    times.append(time.perf_counter() - started)
                spread = float(np.std(detector.scores(held_out)))
                found = served.scores(cells["crack"][:32])
                expected = detector.scores(cells["crack"][:32])
                rows.append({"size": size, "score": score,
                             "megabytes": os.path.getsize(path) / 1e6,
                             "latency_ms": 1000 * float(np.median(times)),
                             "score_difference": differences["score"],
                             "relative_to_spread": float(np.max(np.abs(found - expected))
                                                         / spread)})
            print(f"export {size} {score}: {rows[-1]}", flush=True)
    return rows


def export_section(args, results, train_model):
    try:
        import elpv_dataset  # noqa: F401
    except ImportError:
        return f"Skipped: measured on ELPV cells (`{INSTALL}`)."
    rows = results.get(f"export/{args.elpv_size}/{args.elpv_epochs}",
                       lambda: export_rows(args, train_model))
    lines = ["| image | score | detector.onnx | batch-1 latency | largest score difference "
             "from Keras, in held-out standard deviations |", "|---|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['size']}x{row['size']} | {row['score']} | "
                     f"{row['megabytes']:.1f} MB | {row['latency_ms']:.1f} ms | "
                     f"{row['relative_to_spread']:.1e} |")
    return "\n".join(lines)
