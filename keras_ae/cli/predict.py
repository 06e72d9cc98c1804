"""``keras-ae predict``: its flags, one call to
``keras_ae.runtime.predict`` (reconstructions or anomaly maps of image files,
on onnxruntime alone), and a line per image."""

import argparse
import sys

from keras_ae.cli.options import add_output_options, add_pixel_limit


def add_parser(commands):
    """Adds ``keras-ae predict`` to the subcommand parsers."""
    predict = commands.add_parser(
        "predict", help="reconstruct images with an exported ONNX model",
        description="Run an exported model.onnx through onnxruntime (no "
                    "TensorFlow) on image files of the model's size, or of "
                    "any size with --resize; write each reconstruction, at "
                    "the model's size, as a PNG and print its reconstruction "
                    "error (per-image MSE, the anomaly score).")
    predict.add_argument("model", metavar="MODEL.onnx",
                         help="an exported model, e.g. exported/NAME/model.onnx")
    predict.add_argument("images", nargs="+", metavar="IMAGE",
                         help="PNG, JPEG, BMP, GIF or WebP files; colour is "
                              "converted to the model's")
    add_output_options(predict, "NAME_reconstruction.png files' (an "
                                "existing file is never replaced without "
                                "--overwrite; images in several folders keep "
                                "their relative paths)", required=False)
    # 0.2's name of --output, kept for one release (see CHANGELOG.md)
    predict.add_argument("--out", default=None, help=argparse.SUPPRESS)
    predict.add_argument("--anomaly", action="store_true",
                         help="MODEL is an exported anomaly detector "
                              "(detector.onnx from keras-ae anomaly): print "
                              "each image's score and verdict and write its "
                              "anomaly map as NAME_anomaly_map.png")
    predict.add_argument("--threshold", type=float, default=None, metavar="T",
                         help="with --anomaly: flag scores above T instead of "
                              "the detector's own threshold")
    predict.add_argument("--raw-scores", action="store_true",
                         help="with --anomaly: print each score also before its "
                              "normalisation by held-out normal images (the "
                              "distance or error itself)")
    predict.add_argument("--resize", action="store_true",
                         help="resize images of another size as the model's "
                              "training images were (stretch, crop or pad, "
                              "from the export's metadata; stretch where it "
                              "says nothing)")
    add_pixel_limit(predict)
    predict.set_defaults(run=run)


def run(args):
    """``keras-ae predict``; returns the exit code."""
    from keras_ae.runtime import predict
    from keras_ae.runtime.images import describe_size

    if args.out is not None:
        if args.output is not None:
            print("keras-ae predict: error: give --output only (--out is its old name)",
                  file=sys.stderr)
            return 2
        print("keras-ae predict: --out is deprecated and goes in 0.4; use --output",
              file=sys.stderr)
        args.output = args.out
    if args.output is None:
        print("keras-ae predict: error: the following arguments are required: --output",
              file=sys.stderr)
        return 2
    if not args.anomaly and (args.threshold is not None or args.raw_scores):
        print("keras-ae predict: error: --threshold and --raw-scores go with --anomaly",
              file=sys.stderr)
        return 2
    if args.anomaly:
        done = predict.score_files(args.model, args.images, args.output, resize=args.resize,
                                   max_pixels=args.max_image_pixels,
                                   threshold=args.threshold, overwrite=args.overwrite)
    else:
        done = predict.reconstruct_files(args.model, args.images, args.output,
                                         resize=args.resize,
                                         max_pixels=args.max_image_pixels,
                                         overwrite=args.overwrite)
    model = done.model
    if args.anomaly:
        print(f"{args.model}: score {model.score_name}, threshold "
              f"{model.threshold:.4f} ({model.rule}), on {model.provider}")
    else:
        print(f"{args.model}: {model.decoder_kind} decoder, on {model.provider}")
    if args.resize and not args.anomaly:
        why = ("as the model's training images were" if model.preprocessing
               else "the default: the model does not record how its images "
                    "were sized")
        print(f"images of another size resized to {describe_size(*model.input_shape[:2])} "
              f"by {model.resize_mode!r} ({why})")
    for index, (name, written) in enumerate(zip(done.images, done.written)):
        if args.anomaly:
            verdict = "anomaly" if done.anomalous[index] else "normal"
            raw = (f" (raw {float(model.raw_scores(done.values[index])):.6g})"
                   if args.raw_scores else "")
            print(f"{name}: score {float(done.values[index]):.4f}{raw}: {verdict} "
                  f"-> {written}")
        else:
            print(f"{name}: reconstruction error (MSE) {float(done.values[index]):.5f} "
                  f"-> {written}")
    return 0
