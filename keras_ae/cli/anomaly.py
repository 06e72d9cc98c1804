"""``keras-ae anomaly``: fit an anomaly detector to a trained model, measure
it on the test images, show where it looks, and export it for serving.

Normal is, in order: ``--normal-classes``; every class but
``--anomaly-classes``; the classes the model was trained on (``keras-ae
train --normal-classes`` records them); ``good`` in an MVTec-style folder.
The detector learns from the normal training images (reference codes) and
the normal validation images (score normalisation and threshold), never
from an anomaly.
"""

import os

from keras_ae.cli.options import (add_data_options, add_output_options,
                                  load_data, name_tuple, writing_output)
from keras_ae.errors import InputError
from keras_ae.training.run_record import read_run_record

SHOWN = 12  # most anomalous test images drawn in anomaly_maps.png


def add_parser(commands):
    """Adds ``keras-ae anomaly`` to the subcommand parsers."""
    from keras_ae.anomaly.options import DEFAULT_MAP, DEFAULT_SCORE, MAP_KINDS

    command = commands.add_parser(
        "anomaly", help="anomaly detection: scores, maps, threshold, export",
        description="Fit an anomaly detector to a model trained on normal "
                    "images (keras-ae train --normal-classes, or an "
                    "MVTec-style folder's train/good), score the test "
                    "images, with every other class as the anomalies (ROC "
                    "AUC, precision and recall at the threshold, per class "
                    "and per defect kind, pixel ROC AUC where masks exist), "
                    "and write anomaly.json, anomaly_scores.png, "
                    "anomaly_maps.png and, for a .keras model, detector.onnx "
                    "(serve it with keras-ae predict --anomaly).")
    command.add_argument("model", metavar="MODEL",
                         help="a trained model: MODEL.keras or an exported model.onnx")
    add_data_options(command, images_help="the model's")
    add_output_options(command, "the JSON, pictures and detector.onnx's")
    command.add_argument("--seed", type=int, default=0,
                         help="seeds the data splits (keep training's) (default 0)")
    classes = command.add_mutually_exclusive_group()
    classes.add_argument("--normal-classes", type=name_tuple, default=None,
                         metavar="C1,C2,...",
                         help="the normal classes (default: those the model was "
                              "trained on, or 'good')")
    classes.add_argument("--anomaly-classes", type=name_tuple, default=None,
                         metavar="C1,C2,...",
                         help="or: every class but these is normal")
    command.add_argument("--score", default=DEFAULT_SCORE,
                         help=f"mse, ssim, knn, mahalanobis, or several joined "
                              f"by + (default {DEFAULT_SCORE}, the best measured: "
                              f"docs/benchmarks.md)")
    command.add_argument("--map", choices=MAP_KINDS, default=DEFAULT_MAP,
                         help=f"anomaly map kind (default {DEFAULT_MAP})")
    rule = command.add_mutually_exclusive_group()
    rule.add_argument("--std", type=float, default=3.0,
                      help="threshold = mean + STD standard deviations of the "
                           "normal validation images' scores (default 3)")
    rule.add_argument("--percentile", type=float, default=None,
                      help="threshold = this percentile of their scores instead")
    command.set_defaults(run=writing_output("anomaly", OUTPUTS, run))


# What keras-ae anomaly writes into --output.
OUTPUTS = ("anomaly.json", "anomaly_scores.png", "anomaly_maps.png",
           "detector.onnx", "detector_card.json")


def _normal_labels(args, data, known):
    from keras_ae.data.pipelines import class_labels

    if args.normal_classes:
        return class_labels(args.normal_classes, data, known, "--normal-classes")
    if args.anomaly_classes:
        anomalies = class_labels(args.anomaly_classes, data, known, "--anomaly-classes")
        return sorted(set(known) - set(anomalies))
    recorded = read_run_record(args.model).normal_classes
    if recorded:
        return recorded
    names = list(data.class_names or ())
    if "good" in names:
        return [names.index("good")]
    raise InputError(
        f"say which classes of {data.source} are normal: --normal-classes or "
        f"--anomaly-classes (the model's run records none, and the data has no "
        f"'good' class).")


def _normal_images(data, split, normal):
    """The images of ``split`` whose labels are in ``normal``."""
    import numpy as np

    images, labels = _arrays(data, split)
    return images[np.isin(labels, normal)]


def _arrays(data, split):
    from keras_ae.codes import adapter as downstream

    return downstream.labeled_arrays(data.labeled(split), f"the {split} split")


def run(args):
    import numpy as np

    from keras_ae.anomaly import detector as anomaly
    from keras_ae.cli.uses import write_result
    from keras_ae.models.loading import load_model

    model = load_model(args.model)
    is_onnx = hasattr(model, "can_encode")
    shape = model.input_shape if is_onnx else tuple(model.input_shape[1:])
    recorded = model.preprocessing if is_onnx else read_run_record(args.model).preprocessing
    data = load_data(args, model_shape=shape, recorded=recorded)
    print(f"data: {data.source}")
    test_x, test_y = _arrays(data, "test")  # read once: its labels are the classes
    known = sorted(set(test_y.tolist()))
    normal = _normal_labels(args, data, known)
    if not set(known) - set(normal):
        raise InputError(f"every test class of {data.source} is normal "
                         f"({normal}): no anomalies to measure against.")
    reference = _normal_images(data, "train", normal)
    held_out = _normal_images(data, "validation", normal)
    if len(held_out) < 2:
        raise InputError(
            f"the validation split holds {len(held_out)} images of the normal "
            f"classes {normal}; the threshold needs at least 2 (raise "
            f"--validation-split).")
    print(f"normal: classes {_named(normal, data)}; {len(reference):,} reference "
          f"and {len(held_out):,} held-out normal images")
    detector = anomaly.AnomalyDetector.fit(
        model, reference, held_out, score=args.score, map_kind=args.map,
        std=args.std, percentile=args.percentile, seed=args.seed)
    scores, maps = detector.scores_and_maps(test_x)
    anomalous = ~np.isin(test_y, normal)
    result = anomaly.evaluate_scores(scores, anomalous, detector.threshold,
                                     {"rule": detector.rule, "score": args.score})
    result["normal_classes"] = _named(normal, data)
    result["per_class"] = _per_class(scores, test_y, normal, data, detector.threshold)
    result["detector"] = detector.describe()
    print(f"score {args.score}, threshold {result['threshold']:.4f} ({result['rule']})")
    print(f"ROC AUC {result['roc_auc']:.4f}, precision {result['precision']:.4f}, "
          f"recall {result['recall']:.4f} ({result['flagged']} flagged, "
          f"{result['anomalies']} anomalies in {result['images']} test images)")
    for name, row in result["per_class"].items():
        print(f"  {name:<16} ROC AUC {row['roc_auc']:.4f}, recall {row['recall']:.4f} "
              f"({row['images']} images)")
    if args.images and os.path.isdir(os.path.join(args.images, "test", "good")):
        result["defect_folder"] = _defect_folder(detector, args)
    written = _pictures(args, detector, scores, maps, anomalous, test_x, test_y, data)
    if is_onnx:
        print("detector.onnx not written: a detector is exported from the "
              ".keras model (its graph is traced from Keras)")
    else:
        from keras_ae.export.detector_export import export_detector
        from keras_ae.export.exporter import ExportParityError

        path = os.path.join(args.output, "detector.onnx")
        try:  # checked on test images too, the most anomalous first
            result["export"] = export_detector(
                detector, path, images=test_x[np.argsort(-scores)[:32]],
                preprocessing=data.preprocessing,
                card={"source": args.model, "data": data.source, "test": {
                    key: result[key] for key in ("roc_auc", "precision", "recall",
                                                 "images", "anomalies")}})
            written += [path, os.path.join(args.output, "detector_card.json")]
        except ExportParityError as error:  # the measurements above still stand
            result["export"] = {"error": str(error)}
            print(f"detector.onnx not written: {error}")
    print(f"wrote {write_result(args, 'anomaly.json', result)}, {', '.join(written)}")
    return 0


def _named(labels, data):
    names = data.class_names
    return [names[label] if names else int(label) for label in labels]


def _per_class(scores, labels, normal, data, threshold):
    """Each anomalous class against the normal test images: ROC AUC, recall."""
    from sklearn.metrics import roc_auc_score

    import numpy as np

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


def _defect_folder(detector, args):
    from keras_ae.anomaly.defects import evaluate_defect_folder

    found = evaluate_defect_folder(detector, args.images,
                                   resize=args.resize or "stretch")
    for kind, row in found["kinds"].items():
        pixel = ("" if row["pixel_roc_auc"] is None
                 else f", pixel ROC AUC {row['pixel_roc_auc']:.4f}")
        print(f"  defect {kind:<12} ROC AUC {row['roc_auc']:.4f}, recall "
              f"{row['recall']:.4f}{pixel} ({row['images']} images)")
    return found


def _pictures(args, detector, scores, maps, anomalous, test_x, test_y, data):
    import numpy as np

    from keras_ae.anomaly import pictures as anomaly_pictures

    histogram = anomaly_pictures.save_score_histogram(
        scores, anomalous, detector.threshold,
        os.path.join(args.output, "anomaly_scores.png"),
        title=f"{os.path.basename(args.model)}: test images",
        xlabel=f"{detector.scoring.score} score (normal held-out: mean 0, std 1)")
    top = np.argsort(-scores)[:SHOWN]
    overlays = anomaly_pictures.save_map_overlays(
        test_x[top], maps[top], scores[top],
        os.path.join(args.output, "anomaly_maps.png"),
        threshold=detector.threshold,
        labels=[str(_named([label], data)[0]) for label in test_y[top]],
        title=f"the {len(top)} highest {detector.scoring.score} scores among the "
              f"test images (class: score), and where each differs from its "
              f"reconstruction ({detector.scoring.map_kind.replace('_', ' ')} map)")
    return [histogram, overlays]
