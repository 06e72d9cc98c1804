"""``keras-ae anomaly``: its flags, one call to
``keras_ae.anomaly.run_anomaly`` (fit a detector to a trained model, measure
it on the test images, show where it looks, export it), and its summary."""


from keras_ae.cli.options import add_data_options, add_output_options, data_request, name_tuple
from keras_ae.cli.quiet import image_decoder_log_dropped


def add_parser(commands):
    """Adds ``keras-ae anomaly`` to the subcommand parsers."""
    from keras_ae.anomaly.options import DEFAULT_MAP, DEFAULT_SCORE, MAP_KINDS, SCORE_PARTS

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
                         help=f"{', '.join(SCORE_PARTS)}, several joined by +, or "
                              f"auto (default {DEFAULT_SCORE}: knn under 64 pixels "
                              f"a side, patch_gaussian+knn from there up, the best "
                              f"measured: docs/benchmarks.md)")
    command.add_argument("--map", choices=("auto", *MAP_KINDS), default=DEFAULT_MAP,
                         help=f"anomaly map kind (default {DEFAULT_MAP}: patch for a "
                              f"patch score, else squared_error)")
    rule = command.add_mutually_exclusive_group()
    rule.add_argument("--std", type=float, default=3.0,
                      help="threshold = mean + STD standard deviations of the "
                           "normal validation images' scores (default 3)")
    rule.add_argument("--percentile", type=float, default=None,
                      help="threshold = this percentile of their scores instead")
    rule.add_argument("--threshold-from", default=None, metavar="DIR",
                      help="threshold = the one of best F1 on labelled images: DIR "
                           "holds good/ and a folder per defect kind (or test/ of "
                           "an MVTec-style folder); keep them apart from the test "
                           "images")
    command.add_argument("--no-export", action="store_true",
                         help="measure only: do not write detector.onnx (the "
                              "detector for keras-ae predict --anomaly)")
    command.set_defaults(run=run)


def run(args):
    from keras_ae.anomaly import run_anomaly

    with image_decoder_log_dropped(bool(args.verbose)):
        result = run_anomaly(
            args.model, args.output, data=data_request(args, for_model=True),
            normal_classes=args.normal_classes, anomaly_classes=args.anomaly_classes,
            score=args.score, map_kind=args.map, std=args.std, percentile=args.percentile,
            threshold_from=args.threshold_from, seed=args.seed,
            export=not args.no_export, overwrite=args.overwrite)
    print(f"score {result['score']}, threshold {result['threshold']:.4f} ({result['rule']})")
    print(f"ROC AUC {result['roc_auc']:.4f}, AUPR {result['aupr']:.4f}, F1-max "
          f"{result['f1_max']:.4f}; at the threshold precision {result['precision']:.4f}, "
          f"recall {result['recall']:.4f} ({result['flagged']} flagged, "
          f"{result['anomalies']} anomalies in {result['images']} test images)")
    kinds = result.get("defect_folder", {}).get("kinds", {})
    for name, row in result["per_class"].items():
        pixel = (kinds.get(name) or {}).get("pixel")
        where = ("" if not pixel else f", pixel ROC AUC {pixel['pixel_roc_auc']:.4f}, "
                 f"AUPRO {pixel['aupro']:.4f}, pixel F1-max {pixel['pixel_f1_max']:.4f}")
        print(f"  {name:<16} ROC AUC {row['roc_auc']:.4f}, recall {row['recall']:.4f}"
              f"{where} ({row['images']} images)")
    if "error" in result["export"] or "skipped" in result["export"]:
        print(f"detector.onnx not written: "
              f"{result['export'].get('error') or result['export']['skipped']}")
    print(f"wrote {', '.join(result['written'])}")
    return 0
