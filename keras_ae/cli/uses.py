"""``keras-ae features``, ``cluster`` and ``generate``: using
what a trained model (``.keras``, or an exported ``.onnx`` on onnxruntime)
learned. Each reads its data as the model takes images and writes JSON and
pictures into ``--output``."""

import os

from keras_ae.cli.options import add_data_options, add_output_options, data_request
from keras_ae.cli.quiet import image_decoder_log_dropped


def add_parsers(commands):
    """Adds the three commands to the ``keras-ae`` subcommand parsers
    (``anomaly`` is ``keras_ae.cli.anomaly``'s)."""
    specs = {
        "features": ("linear probe: classify the labels from the frozen codes",
                     "Train a softmax classifier on the frozen encoder's codes "
                     "of --train-images labeled images and report its test "
                     "accuracy, against the same classifier on raw pixels and "
                     "(for a .keras model) on the codes of the same encoder "
                     "with random weights. Writes features.json.", _features),
        "cluster": ("k-means on the codes, scored against the labels",
                    "k-means on the codes of the test images, scored against "
                    "the labels (adjusted Rand index, normalized mutual "
                    "information), against k-means on raw pixels. Writes "
                    "cluster.json and code_map.png (the codes in 2-D, PCA).",
                    _cluster),
        "generate": ("new images from the decoder",
                     "Decode new codes: an interpolation between two test "
                     "images' codes, and samples from a Gaussian fitted to "
                     "the training codes. Needs a decoder that runs alone "
                     "(not unpool). Writes interpolation.png, samples.png "
                     "and generate.json.", _generate),
    }
    for name, (help_text, description, run) in specs.items():
        command = commands.add_parser(name, help=help_text, description=description)
        command.add_argument("model", metavar="MODEL",
                             help="a trained model: MODEL.keras or an exported "
                                  "model.onnx")
        add_data_options(command, images_help="the model's")
        add_output_options(command, "the JSON and pictures'")
        command.add_argument("--seed", type=int, default=0,
                             help="seeds the data splits (keep training's, so "
                                  "that the test images are held-out ones) "
                                  "and the fits (default 0)")
        if name == "features":
            command.add_argument("--train-images", type=int, default=5000,
                                 help="labeled training images the classifier "
                                      "sees (default 5000: few labels)")
        if name == "cluster":
            command.add_argument("--max-images", type=int, default=10000,
                                 help="test images to cluster (default 10000)")
            command.add_argument("--clusters", type=int, default=None,
                                 help="k (default: the number of classes)")
        if name == "generate":
            command.add_argument("--count", type=int, default=16,
                                 help="samples to draw (default 16)")
            command.add_argument("--steps", type=int, default=8,
                                 help="images in the interpolation (default 8)")
        command.set_defaults(run=_decoder_log_dropped(run))


def _decoder_log_dropped(run):
    """``run(args)`` with TensorFlow's per-file decoder log off (keras_ae
    names the files that do not decode itself)."""
    def quiet(args):
        with image_decoder_log_dropped(bool(args.verbose)):
            return run(args)
    return quiet


def _features(args):
    from keras_ae import codes

    results = codes.run_features(args.model, args.output, data=data_request(args, True),
                                 train_images=args.train_images, seed=args.seed,
                                 overwrite=args.overwrite)
    for name, result in results.items():
        print(f"{name:<15} test accuracy {result['test_accuracy']:.4f} "
              f"({result['features']} features, {result['train_images']} labeled "
              "training images)")
    print(f"wrote {os.path.join(args.output, 'features.json')}")
    return 0


def _cluster(args):
    from keras_ae import codes

    results = codes.run_cluster(args.model, args.output, data=data_request(args, True),
                                max_images=args.max_images, clusters=args.clusters,
                                seed=args.seed, overwrite=args.overwrite)
    for name, result in results.items():
        print(f"{name:<11} adjusted Rand index {result['adjusted_rand_index']:.4f}, "
              f"NMI {result['normalized_mutual_information']:.4f} "
              f"({result['clusters']} clusters of {result['images']} images)")
    print(f"wrote {os.path.join(args.output, 'cluster.json')}, "
          f"{os.path.join(args.output, 'code_map.png')}")
    return 0


def _generate(args):
    from keras_ae import codes

    codes.run_generate(args.model, args.output, data=data_request(args, True),
                       count=args.count, steps=args.steps, seed=args.seed,
                       overwrite=args.overwrite)
    print("wrote " + ", ".join(os.path.join(args.output, name) for name in (
        "generate.json", "interpolation.png", "samples.png")))
    return 0
