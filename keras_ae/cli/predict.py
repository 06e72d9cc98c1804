"""``keras-ae predict``: reconstructions (or anomaly maps) of image files
from an exported ONNX model, on onnxruntime alone (no TensorFlow), written
into ``--out`` by ``keras_ae.outputs``' rule: names keep the images'
relative paths, and an existing file is never replaced without
``--overwrite``."""

import os

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
                                "their relative paths)", flag="--out")
    predict.add_argument("--anomaly", action="store_true",
                         help="MODEL is an exported anomaly detector "
                              "(detector.onnx from keras-ae anomaly): print "
                              "each image's score and verdict and write its "
                              "anomaly map as NAME_anomaly_map.png")
    predict.add_argument("--resize", action="store_true",
                         help="resize images of another size as the model's "
                              "training images were (stretch, crop or pad, "
                              "from the export's metadata; stretch where it "
                              "says nothing)")
    add_pixel_limit(predict)
    predict.set_defaults(run=run)


def run(args):
    """``keras-ae predict``; returns the exit code."""
    if args.anomaly:
        return _predict_anomaly(args)
    names = _output_names(args.images, "_reconstruction.png")
    with _predict_output(args, names):
        return _predict_reconstructions(args, names)


def _predict_output(args, names):
    """``--out`` claimed for these files (``keras_ae.outputs``)."""
    from keras_ae import outputs

    folder = outputs.claim(args.out, "predict", os.path.abspath(args.model),
                           names=names, overwrite=args.overwrite,
                           reads=[args.model, *args.images], replace_own=False)
    return folder.in_place(names)


def _output_names(images, suffix):
    """Each image's output file, relative to ``--out``: its path below the
    images' common folder with ``suffix`` for its extension, made unique
    (``a/x.png`` and ``b/x.png`` -> ``a/x...``, ``b/x...``; ``x.png`` and
    ``x.jpg`` -> ``x...``, ``x_jpg...``)."""
    paths = [os.path.abspath(path) for path in images]
    common = os.path.commonpath([os.path.dirname(path) for path in paths])
    names = []
    for path in paths:
        stem, extension = os.path.splitext(os.path.relpath(path, common))
        name, copy = stem + suffix, 1
        if name in names:
            name = f"{stem}_{extension.lstrip('.')}{suffix}"
        while name in names:  # the same file given twice
            copy += 1
            name = f"{stem}_{copy}{suffix}"
        names.append(name.replace(os.sep, "/"))
    return names


def _predict_reconstructions(args, names):
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from keras_ae import files
    from keras_ae.runtime.images import describe_size
    from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

    model = OnnxAutoencoder(args.model)
    height, width, channels = model.input_shape
    batch = model.prepare(list(args.images), resize=args.resize,
                          max_pixels=args.max_image_pixels)
    reconstructions = model.reconstruct(batch)
    errors = model.reconstruction_error(batch)
    print(f"{args.model}: {model.decoder_kind} decoder, on {model.provider}")
    if args.resize:
        why = ("as the model's training images were" if model.preprocessing
               else "the default: the model does not record how its images "
                    "were sized")
        print(f"images of another size resized to {describe_size(height, width)} "
              f"by {model.resize_mode!r} ({why})")
    for name, reconstruction, error, written in zip(args.images, reconstructions,
                                                    errors, names):
        pixels = np.round(np.clip(reconstruction, 0, 1) * 255).astype(np.uint8)
        picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
        out = Path(args.out) / written
        files.write_atomically(out, lambda tmp, p=picture: p.save(tmp, format="PNG"))
        print(f"{name}: reconstruction error (MSE) {float(error):.5f} -> {out}")
    return 0


def _predict_anomaly(args):
    names = _output_names(args.images, "_anomaly_map.png")
    with _predict_output(args, names):
        return _predict_anomaly_maps(args, names)


def _predict_anomaly_maps(args, names):
    from pathlib import Path

    from keras_ae.runtime.onnx_detector import OnnxAnomalyDetector
    from keras_ae.runtime.overlays import save_overlay

    detector = OnnxAnomalyDetector(args.model)
    batch = detector.prepare(list(args.images), resize=args.resize,
                             max_pixels=args.max_image_pixels)
    scores, maps = detector.scores_and_maps(batch)
    print(f"{args.model}: score {detector.score_name}, threshold "
          f"{detector.threshold:.4f} ({detector.rule}), on {detector.provider}")
    for index, name in enumerate(args.images):
        out = Path(args.out) / names[index]
        verdict = "anomaly" if scores[index] > detector.threshold else "normal"
        save_overlay(batch[index], maps[index], out, score=scores[index],
                     threshold=detector.threshold)
        print(f"{name}: score {float(scores[index]):.4f}: {verdict} -> {out}")
    return 0
