"""``keras-ae export``: a trained model as SavedModel and ONNX, each checked
against Keras, with a model card; with ``--quantize int8``, int8 twins of
the ONNX files, refused past a quality bound (``keras_ae.export.quantize``)."""

import os

from keras_ae.cli.options import (add_data_options, add_output_options, data_request,
                                  export_formats)


def add_parser(commands):
    """Adds ``keras-ae export`` to the subcommand parsers."""
    export = commands.add_parser(
        "export", help="export a trained model to SavedModel and ONNX",
        description="""Write saved_model/, model.onnx (with encoder.onnx and,
            where the decoder runs alone, decoder.onnx) and model_card.json.
            Each artifact is run on sample images and compared with the Keras
            model; the export fails if they differ by more than 1e-5. A
            metrics.json beside the model (as keras-ae train writes) goes
            into the card.""")
    export.add_argument("model", metavar="MODEL.keras",
                        help="a trained model, e.g. runs/NAME/model.keras")
    add_output_options(export, "export (its files are replaced only once the "
                               "new export is complete)")
    export.add_argument("--opset", type=int, default=17,
                        help="ONNX opset, 13 to 18 (default 17; unpool needs 16+)")
    export.add_argument("--formats", type=export_formats, default=("saved_model", "onnx"),
                        metavar="FORMATS",
                        help="comma-separated: saved_model, onnx (default both)")
    int8 = export.add_argument_group(
        "int8 (onnxruntime static quantization; keras_ae.export.quantize)")
    int8.add_argument("--quantize", choices=("int8",), default=None,
                      help="also write model.int8.onnx and encoder.int8.onnx, "
                           "calibrated on training images and refused if the "
                           "test MSE rises by more than --max-mse-increase")
    int8.add_argument("--calibration-images", type=int, default=1024,
                      metavar="N", help="training images to calibrate on "
                                        "(default 1024)")
    int8.add_argument("--max-mse-increase", type=float, default=0.02,
                      metavar="FRACTION",
                      help="the most the int8 test MSE may exceed the float "
                           "model's (default 0.02: 2%%)")
    int8.add_argument("--seed", type=int, default=0,
                      help="seeds the shuffle the calibration images are "
                           "drawn from (default 0)")
    add_data_options(export, images_help="the model's").description = (
        "where --quantize finds training and test images (default: the data "
        "the run trained on, from the metrics.json beside MODEL)")
    export.set_defaults(run=run, verbose=False)


def run(args):
    """``keras-ae export``; returns the exit code (1: int8 refused)."""
    from keras_ae import export

    given = args.images or args.data_dir or args.dataset  # else the run's own images
    print(f"exporting {args.model} to {args.output}/")
    try:
        export.export_trained(
            args.model, args.output, data=data_request(args, for_model=True) if given else None,
            quantize=args.quantize, max_mse_increase=args.max_mse_increase,
            calibration_count=args.calibration_images, opset=args.opset,
            saved_model="saved_model" in args.formats, onnx="onnx" in args.formats,
            overwrite=args.overwrite)
    except export.QuantizationRefused:
        print(f"wrote {args.output}/ ({_written(args.output)}) "
              "without int8 files: the int8 model lost too much (above; the "
              "card's int8 entry has the figures). Allow more with "
              "--max-mse-increase, or serve the float model.")
        return 1
    print(f"wrote {args.output}/ ({_written(args.output)})")
    return 0


def _written(folder):
    """The files of the export just written, as its card lists them."""
    import json

    from keras_ae.export.exporter import MODEL_CARD_FILE

    with open(os.path.join(folder, MODEL_CARD_FILE)) as f:
        return ", ".join(sorted([*json.load(f)["files"].values(), MODEL_CARD_FILE]))
