"""Options and argument types that the ``keras-ae`` commands share.

- Argument types: comma-separated lists (``int_tuple``, ``float_tuple``,
  ``name_tuple``) and image sizes (``image_size_argument``, ``"64x64"``).
- The data options (``add_data_options``): Fashion-MNIST, a
  tensorflow-datasets name, IDX files, or a folder of your own images
  (``--images``); ``load_data`` turns them into an ``ImageData``.
- What a run records of its data: ``image_settings`` (run.json and
  search.json, which a resume must match), ``data_report`` (metrics.json);
  ``run_metrics`` reads the metrics.json beside a model.
"""

import argparse
import os

from keras_ae.errors import positive_int
from keras_ae.errors import InputError
from keras_ae.cli.quiet import image_decoder_log_dropped
from keras_ae.runtime.images import RESIZE_MODES  # numpy only: cheap to import


def numbers(kind, example):
    """An argparse type: ``"16,4"`` -> ``(16, 4)`` with ``kind=int``."""
    noun = "integers" if kind is int else "numbers"

    def parse(text):
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {noun} such as {example}; got {text!r}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(
                f"expected at least one {noun[:-1]}; got {text!r}")
        return values
    return parse


int_tuple = numbers(int, "16,4")
float_tuple = numbers(float, "0.1,0.3")


def name_tuple(text):
    """An argparse type: ``"a, b"`` -> ``("a", "b")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def image_size_argument(text):
    """An argparse type: ``"64x48"`` -> ``(64, 48)``, height x width."""
    from keras_ae.runtime.images import parse_image_size

    try:
        return parse_image_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_data_options(parser, images_help="the images' own"):
    """Adds the data options to a command's parser; returns the data group.

    ``images_help`` says what ``--image-size`` defaults to (the downstream
    commands read folders at ``"the model's"`` size and colour).
    """
    data = parser.add_argument_group(
        "data (default: Fashion-MNIST, from the Debian copy when installed, "
        "else tensorflow-datasets)")
    data.add_argument("--dataset", default=None, metavar="NAME",
                      help="tensorflow-datasets name with train and test "
                           "splits of fixed-size uint8 images (mnist, "
                           "fashion_mnist, cifar10, ...)")
    data.add_argument("--data-dir", default=None, metavar="DIR",
                      help="read IDX files (MNIST format) from DIR instead")
    data.add_argument("--tfds-data-dir", default=None, metavar="DIR",
                      help="tensorflow-datasets data_dir")
    data.add_argument("--validation-split", type=float, default=0.1,
                      help="fraction of training images held out (default 0.1)")
    own = parser.add_argument_group(
        "your own images (keras_ae.data.sources.from_directory)")
    own.add_argument("--images", default=None, metavar="DIR",
                     help="a folder of image files (PNG, JPEG, BMP, GIF, WebP) "
                          "of any size and colour; class subfolders give "
                          "labels; train/ and test/ subfolders are used as "
                          "given, else --test-split of the files is drawn")
    own.add_argument("--image-size", type=image_size_argument, default=None,
                     metavar="HxW",
                     help="resize every image to HxW, height x width "
                          f"(default: {images_help} size)")
    own.add_argument("--resize", choices=RESIZE_MODES, default=None,
                     help="how --image-size meets another aspect ratio: "
                          "stretch (default: keeps every pixel, adds no "
                          "border), crop (centre) or pad (black borders)")
    own.add_argument("--color", choices=("grayscale", "rgb"), default=None,
                     help=("default: the model's" if images_help == "the model's"
                           else "default: grayscale when every image is "
                                "grey, else rgb"))
    own.add_argument("--test-split", type=float, default=None,
                     help="fraction of the files held out for testing when "
                          "the folder has no train/ and test/ (default 0.1)")
    own.add_argument("--cache", default=None, metavar="WHERE",
                     help="auto (default: in memory if the decoded images "
                          "take at most a quarter of RAM, else decoded every "
                          "epoch), memory, none, or a file prefix for "
                          "tf.data's cache file")
    own.add_argument("--skip-bad-images", action="store_true",
                     help="leave out files that do not decode or are over "
                          "--max-image-pixels (counted in the report) "
                          "instead of stopping")
    add_pixel_limit(own)
    return data


def add_pixel_limit(group):
    """``--max-image-pixels``: keras_ae.runtime.images.MAX_IMAGE_PIXELS by default."""
    from keras_ae.runtime.images import MAX_IMAGE_PIXELS

    group.add_argument(
        "--max-image-pixels", type=pixel_limit, default=MAX_IMAGE_PIXELS,
        metavar="N",
        help=f"refuse images of more pixels, read from each file's header "
             f"before decoding (default {MAX_IMAGE_PIXELS:,}, Pillow's "
             f"decompression-bomb limit); 'none' for no limit")


def pixel_limit(text):
    """An argparse type: a positive number of pixels, or ``none``."""
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of pixels or 'none'; got {text!r}")
    return value


def add_output_options(parser, what, flag="--output"):
    """``--output DIR`` (predict's ``--out``) and ``--overwrite``: the one
    rule of ``keras_ae.outputs``, said in one line."""
    parser.add_argument(
        flag, required=True, metavar="DIR",
        help=f"{what} folder; the rule for every command: it is new, empty, "
             f"or this command's earlier output from the same source, else "
             f"refused (--overwrite: write beside other files, replacing "
             f"only this command's own)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="write into a folder of other files or another source's output, "
             "replacing only this command's own earlier files (never a "
             "file it did not write, never what it reads)")


def writing_output(command, names, run):
    """``run(args)`` with ``args.output`` claimed for ``command``, which
    writes ``names`` there from the model ``args.model``
    (``keras_ae.outputs``: checked before any work, locked while it runs)."""
    def claimed(args):
        from keras_ae import outputs

        folder = outputs.claim(args.output, command, os.path.abspath(args.model),
                               names=names, overwrite=args.overwrite,
                               reads=[args.model])
        with folder.in_place(names):
            return run(args)
    return claimed


def load_data(args, model_shape=None, recorded=None, **options):
    """``ImageData`` from a command's data options.

    ``model_shape`` and ``recorded`` (a model's input shape and the
    preprocessing its training recorded) are what ``--images`` reads the
    folder as, unless the flags say otherwise.
    """
    from keras_ae.data import sources as data_lib
    from keras_ae.runtime.images import DEFAULT_RESIZE

    from keras_ae.runtime.images import MAX_IMAGE_PIXELS

    folder_flags = {"--image-size": args.image_size, "--resize": args.resize,
                    "--color": args.color, "--test-split": args.test_split,
                    "--cache": args.cache, "--skip-bad-images": args.skip_bad_images,
                    "--max-image-pixels": args.max_image_pixels != MAX_IMAGE_PIXELS}
    if args.images is None:
        given = [flag for flag, value in folder_flags.items() if value]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise InputError(f"{', '.join(given)} {verb} to --images only.")
        return data_lib.load(args.dataset, data_dir=args.data_dir,
                             tfds_data_dir=args.tfds_data_dir,
                             validation_split=args.validation_split,
                             seed=args.seed, **options)
    if args.dataset or args.data_dir:
        raise InputError("--images reads your own folder; leave out --dataset "
                         "and --data-dir.")
    image_size, color, resize = args.image_size, args.color, args.resize
    if model_shape is not None:  # as the model takes its images
        image_size = image_size or tuple(model_shape[:2])
        color = color or {1: "grayscale", 3: "rgb"}.get(model_shape[2])
        resize = resize or (recorded or {}).get("resize")
    elif resize and image_size is None:
        raise InputError("--resize says how --image-size is reached; give "
                         "--image-size HxW too.")
    # keras_ae names the files that do not decode; TensorFlow's decoders
    # would also log each one, from C++.
    with image_decoder_log_dropped(bool(args.verbose)):
        return data_lib.from_directory(
            args.images, image_size=image_size, resize=resize or DEFAULT_RESIZE,
            color_mode=color or "auto", validation_split=args.validation_split,
            test_split=0.1 if args.test_split is None else args.test_split,
            seed=args.seed, cache=args.cache or "auto",
            skip_bad_images=args.skip_bad_images,
            max_image_pixels=args.max_image_pixels, **options)


def class_labels(tokens, data, known, flag):
    """Class tokens of a flag (label numbers, or class folder names) as
    sorted labels; a one-line error naming the classes there are.

    Args:
        tokens: the flag's values, e.g. ``("0", "coat")``.
        data: the ``ImageData`` (its ``class_names`` and ``source``).
        known: the labels the data holds.
        flag: the flag's name, for the message.
    """
    names = list(data.class_names or ())
    labels = []
    for token in tokens:
        if token in names:
            labels.append(names.index(token))
        elif token.isdigit() and int(token) in known:
            labels.append(int(token))
        else:
            named = f"; class names: {', '.join(names)}" if names else ""
            raise InputError(
                f"{flag} {token!r} is not a class of {data.source}: "
                f"labels are {sorted(known)}{named}.")
    return sorted(set(labels))


def labels_of(data, split="test"):
    """The labels a split of ``data`` holds, a sorted list."""
    import numpy as np

    return sorted(set(np.concatenate(
        [labels for _, labels in data.labeled(split).as_numpy_iterator()]).tolist()))


def image_settings(args):
    """The ``--images`` flags that make a run's data what it is (for run.json
    and search.json, which a resume must match); ``{}`` for other sources."""
    if args.images is None:
        return {}
    return {"images": {
        "directory": os.path.abspath(args.images),
        "image_size": None if args.image_size is None else list(args.image_size),
        "resize": args.resize, "color": args.color,
        "test_split": args.test_split, "skip_bad_images": args.skip_bad_images}}


def data_report(data):
    """What metrics.json says of the data: counts, classes, sizing, skips."""
    return {
        "source": data.source,
        "images": {"train": data.num_train, "validation": data.num_validation,
                   "test": data.num_test},
        "image_shape": list(data.image_shape),
        "class_names": None if data.class_names is None else list(data.class_names),
        "preprocessing": data.preprocessing,
        "skipped_images": len(data.skipped),
        "skipped_files": [{"path": path, "reason": reason}
                          for path, reason in data.skipped[:100]],
    }


def say_data(data):
    print(f"data: {data.source}, {data.num_train} train / {data.num_validation} "
          f"validation / {data.num_test} test images of shape {data.image_shape}"
          + (f"; skipped {len(data.skipped)} unreadable files" if data.skipped
             else ""))


def run_metrics(model_path):
    """The metrics.json that ``train`` or ``tune`` wrote beside a .keras
    model, or ``{}``."""
    import json

    path = os.path.join(os.path.dirname(model_path), "metrics.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def export_formats(text):
    """``--formats``: ``saved_model``, ``onnx`` or both, comma-separated."""
    formats = name_tuple(text)
    unknown = sorted(set(formats) - {"saved_model", "onnx"})
    if unknown or not formats:
        raise argparse.ArgumentTypeError(
            f"expected saved_model, onnx or both (comma-separated); got {text!r}")
    return formats


def quantization_images(args, model, metrics):
    """``calibration_images`` (the first ``--calibration-images`` training
    images of the pipeline's seeded shuffle) and ``test_images`` (the test
    split) for ``keras-ae export --quantize``, from the data flags if any are
    given, else from the data the run trained on (its metrics.json
    settings)."""
    import numpy as np

    count = positive_int("--calibration-images", args.calibration_images)
    if not (args.images or args.data_dir or args.dataset):
        _recorded_data_flags(args, metrics.get("settings") or {})
    shape = tuple(model.input_shape[1:])
    data = load_data(args, model_shape=shape, recorded=metrics.get("preprocessing"))
    print(f"int8 calibration and test images: {data.source}")
    calibration, taken = [], 0
    for _, targets in data.train.as_numpy_iterator():  # shuffled: a random draw
        calibration.append(targets[:count - taken])
        taken += len(calibration[-1])
        if taken == count:
            break
    return {"calibration_images": np.concatenate(calibration),
            "test_images": np.concatenate(
                [targets for _, targets in data.test.as_numpy_iterator()])}


def _recorded_data_flags(args, settings):
    """Sets the data flags to what a run's settings record (``data``: its
    source, ``images``: the folder flags)."""
    # e.g. "idx:/usr/share/datasets/fashion-mnist (fashion_mnist)"
    source = str(settings.get("data") or "").split(" (")[0]
    images = settings.get("images")
    if images:
        args.images = images["directory"]
        args.image_size = tuple(images["image_size"]) if images.get("image_size") else None
        args.resize, args.color = images.get("resize"), images.get("color")
        args.test_split = images.get("test_split")
        args.skip_bad_images = bool(images.get("skip_bad_images"))
    elif source.startswith("idx:"):
        args.data_dir = source.removeprefix("idx:")
    elif source.startswith("tfds:"):
        args.dataset = source.removeprefix("tfds:").split(" ")[0]
    elif source:
        raise InputError(
            f"the run trained on {source!r}, which keras-ae cannot read again; "
            "give --images, --data-dir or --dataset for the int8 calibration.")
    # nothing recorded (a model from elsewhere): load_data's default dataset
