"""Anomaly detection on a trained model as one call: what ``keras-ae
anomaly`` does.

``run_anomaly`` fits an ``AnomalyDetector`` to a model trained on normal
images, measures it on the test images (every other class an anomaly; each
defect kind of an MVTec-style folder), draws where it looks, exports it as
``detector.onnx`` (for a ``.keras`` model) and writes ``anomaly.json``.

Normal is, in order: ``normal_classes``; every class but
``anomaly_classes``; the classes the model was trained on (its run record);
``good`` in an MVTec-style folder. The detector learns from the normal
training images (reference codes) and the normal validation images (score
normalisation and threshold), never from an anomaly.
"""

import os
from pathlib import Path

import numpy as np

from keras_ae import files, outputs
from keras_ae.anomaly import detector as anomaly
from keras_ae.anomaly.metrics import best_f1_threshold
from keras_ae.errors import InputError

OUTPUTS = ("anomaly.json", "anomaly_scores.png", "anomaly_maps.png",
           "detector.onnx", "detector_card.json")
SHOWN = 12  # most anomalous test images drawn in anomaly_maps.png


def run_anomaly(model_path, output, *, data, normal_classes=None, anomaly_classes=None,
                score=anomaly.DEFAULT_SCORE, map_kind=anomaly.DEFAULT_MAP, std=3.0,
                percentile=None, threshold_from=None, seed=0, export=True,
                overwrite=False, verbose=True):
    """Fits, measures, draws and exports a detector; writes ``anomaly.json``.

    Args:
        model_path: a trained model, ``.keras`` or an exported ``.onnx``.
        output: the folder (claimed: ``keras_ae.outputs``).
        data: a ``keras_ae.data.DataSource``, read as the model takes images.
        normal_classes, anomaly_classes: class tokens (labels or folder
            names); at most one of them.
        score, map_kind, std, percentile, seed: as for
            ``AnomalyDetector.fit``.
        threshold_from: a folder of labelled images (``good/`` and a folder
            per defect kind, or an MVTec-style folder's ``test/``): the
            threshold is then the one of best F1 on them
            (``AnomalyDetector.fit_threshold``); measure on other images.
        export: also write ``detector.onnx`` for ``keras-ae predict
            --anomaly`` (a tracing and conversion of some seconds); False to
            measure only.
        overwrite: replace this command's own earlier files there.
        verbose: say what is read and what is normal.

    Returns:
        The result written to ``anomaly.json``: ROC AUC, precision and recall
        at the threshold, per class, per defect kind, the detector, the
        export (or why it was not written), and ``written``, the files.
    """
    from keras_ae.codes.runs import model_data, split_arrays
    from keras_ae.models.loading import load_model

    folder = outputs.claim(output, "anomaly", os.path.abspath(model_path), names=OUTPUTS,
                           overwrite=overwrite, reads=[model_path])
    with folder.in_place(OUTPUTS):
        model = load_model(model_path)
        images = model_data(model, model_path, data, verbose=verbose)
        test_x, test_y = split_arrays(_whole(images, verbose), "test")  # its labels: the classes
        known = sorted(set(test_y.tolist()))
        normal = _normal_labels(images, known, model_path, normal_classes, anomaly_classes)
        if not set(known) - set(normal):
            raise InputError(f"every test class of {images.source} is normal "
                             f"({normal}): no anomalies to measure against.")
        reference = _of_classes(*split_arrays(images, "train"), normal)
        held_out = _of_classes(*split_arrays(images, "validation"), normal)
        if len(held_out) < 2:
            raise InputError(
                f"the validation split holds {len(held_out)} images of the normal "
                f"classes {normal}; the threshold needs at least 2 (raise "
                f"validation_split, --validation-split).")
        if verbose:
            print(f"normal: classes {_named(normal, images)}; {len(reference):,} "
                  f"reference and {len(held_out):,} held-out normal images")
        detector = anomaly.AnomalyDetector.fit(
            model, reference, held_out, score=score, map_kind=map_kind, std=std,
            percentile=percentile, seed=seed)
        scorer = _whole_images(detector, images, test_x)
        if threshold_from is not None:
            from keras_ae.anomaly.defects import GOOD, read_defect_folder

            labelled = read_defect_folder(threshold_from, scorer.input_shape,
                                          resize=data.resize or "stretch")
            detector.threshold, detector.rule = best_f1_threshold(
                scorer.scores(labelled["images"]), np.array(labelled["kinds"]) != GOOD)
        scores, maps = scorer.scores_and_maps(test_x)
        anomalous = ~np.isin(test_y, normal)
        result = anomaly.evaluate_scores(scores, anomalous, detector.threshold,
                                         {"rule": detector.rule,
                                          "score": detector.scoring.score})
        result["normal_classes"] = _named(normal, images)
        result["per_class"] = _per_class(scores, test_y, normal, images, detector.threshold)
        result["detector"] = scorer.describe()
        if data.images and os.path.isdir(os.path.join(data.images, "test", "good")):
            from keras_ae.anomaly.defects import evaluate_defect_folder

            result["defect_folder"] = evaluate_defect_folder(
                scorer, data.images, resize=data.resize or "stretch")
        written = _pictures(output, model_path, scorer, scores, maps, anomalous,
                            test_x, test_y, images)
        if not export:
            result["export"] = {"skipped": "not asked for (export=False, --no-export)"}
        elif hasattr(model, "can_encode"):
            result["export"] = {"error": "a detector is exported from the .keras model "
                                         "(its graph is traced from Keras)"}
        else:
            result["export"], exported = _export(detector, model_path, output, result,
                                                 None if scorer is not detector else test_x,
                                                 scores, images)
            written += exported
        result["written"] = [*written, str(Path(output) / "anomaly.json")]
        files.write_json(Path(output) / "anomaly.json", {"model": str(model_path), **result})
    return result


def _tiling(data):
    """``(tile, overlap)`` of data cut into tiles, else None."""
    preprocessing = data.preprocessing or {}
    if not preprocessing.get("tile"):
        return None
    return preprocessing["tile"], preprocessing.get("tile_overlap", 0)


def _whole(data, verbose):
    """``data``, or for tiles the whole images they were cut from (the same
    files, split alike)."""
    if _tiling(data) is None:
        return data
    import dataclasses

    if verbose:
        print("test images: whole, scored tile by tile")
    return dataclasses.replace(data.origin, tile=None, tile_overlap=0).load(verbose=False)


def _whole_images(detector, data, test_x):
    """What scores the test images: the detector, or for a model trained on
    tiles (``data.preprocessing["tile"]``) the detector tile by tile."""
    tiling = _tiling(data)
    if tiling is None:
        return detector
    from keras_ae.anomaly.tiling import TiledDetector

    return TiledDetector(detector, *tiling, image_shape=test_x.shape[1:])


def _normal_labels(data, known, model_path, normal_classes, anomaly_classes):
    from keras_ae.data.pipelines import class_labels
    from keras_ae.training.run_record import read_run_record

    if normal_classes and anomaly_classes:
        raise InputError("give normal_classes or anomaly_classes, not both.")
    if normal_classes:
        return class_labels(normal_classes, data, known, "normal_classes (--normal-classes)")
    if anomaly_classes:
        anomalies = class_labels(anomaly_classes, data, known,
                                 "anomaly_classes (--anomaly-classes)")
        return sorted(set(known) - set(anomalies))
    recorded = read_run_record(model_path).normal_classes
    if recorded:
        return recorded
    names = list(data.class_names or ())
    if "good" in names:
        return [names.index("good")]
    raise InputError(
        f"say which classes of {data.source} are normal: --normal-classes or "
        f"--anomaly-classes (the model's run records none, and the data has no "
        f"'good' class).")


def _of_classes(images, labels, classes):
    return images[np.isin(labels, classes)]


def _named(labels, data):
    names = data.class_names
    return [names[label] if names else int(label) for label in labels]


def _per_class(scores, labels, normal, data, threshold):
    """Each anomalous class against the normal test images: ROC AUC, recall."""
    from sklearn.metrics import roc_auc_score

    normal_scores = scores[np.isin(labels, normal)]
    rows = {}
    for label in sorted(set(labels.tolist()) - set(normal)):
        chosen = scores[labels == label]
        truth = np.r_[np.zeros(len(normal_scores)), np.ones(len(chosen))]
        rows[str(_named([label], data)[0])] = {
            "images": int(len(chosen)),
            "roc_auc": float(roc_auc_score(truth, np.r_[normal_scores, chosen])),
            "recall": float((chosen > threshold).mean())}
    return rows


def _pictures(output, model_path, detector, scores, maps, anomalous, test_x, test_y, data):
    from keras_ae.anomaly import pictures

    histogram = pictures.save_score_histogram(
        scores, anomalous, detector.threshold, Path(output) / "anomaly_scores.png",
        title=f"{os.path.basename(model_path)}: test images",
        xlabel=f"{detector.scoring.score} score (normal held-out: mean 0, std 1)")
    top = np.argsort(-scores)[:SHOWN]
    overlays = pictures.save_map_overlays(
        test_x[top], maps[top], scores[top], Path(output) / "anomaly_maps.png",
        threshold=detector.threshold,
        labels=[str(_named([label], data)[0]) for label in test_y[top]],
        title=f"the {len(top)} highest {detector.scoring.score} scores among the "
              f"test images (class: score), and where each differs from its "
              f"reconstruction ({detector.scoring.map_kind.replace('_', ' ')} map)")
    return [histogram, overlays]


def _export(detector, model_path, output, result, test_x, scores, data):
    """``(export report, files written)``; a parity failure is reported, not
    raised: the measurements above still stand."""
    from keras_ae.export.detector_export import export_detector
    from keras_ae.export.exporter import ExportParityError

    path = Path(output) / "detector.onnx"
    try:  # checked on test images too (not whole images a tiled one cuts), the most anomalous first
        report = export_detector(
            detector, path, images=None if test_x is None else test_x[np.argsort(-scores)[:32]],
            preprocessing=data.preprocessing,
            card={"source": str(model_path), "data": data.source, "test": {
                key: result[key] for key in ("roc_auc", "precision", "recall",
                                             "images", "anomalies")}})
    except ExportParityError as error:
        return {"error": str(error)}, []
    return report, [str(path), str(Path(output) / "detector_card.json")]
