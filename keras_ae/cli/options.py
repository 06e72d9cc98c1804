"""Options and argument types that the ``keras-ae`` commands share.

- Argument types: comma-separated lists (``int_tuple``, ``float_tuple``,
  ``name_tuple``) and image sizes (``image_size_argument``, ``"64x64"``).
- The data options (``add_data_options``): Fashion-MNIST, a
  tensorflow-datasets name, IDX files, or a folder of your own images
  (``--images``); ``data_request`` turns them into a
  ``keras_ae.data.DataSource``.
- The output options (``add_output_options``).
"""

import argparse

from keras_ae.errors import InputError
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
    own.add_argument("--tile", type=int, default=None, metavar="PIXELS",
                     help="train on overlapping PIXELSxPIXELS tiles of the images "
                          "(at their own size, or --image-size) instead of shrinking "
                          "them; anomaly detection then scores whole images tile by "
                          "tile and stitches the maps (default: the run's own)")
    own.add_argument("--tile-overlap", type=int, default=0, metavar="PIXELS",
                     help="pixels neighbouring tiles share (default 0)")
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


def add_output_options(parser, what, required=True):
    """``--output DIR`` and ``--overwrite``: the one rule of
    ``keras_ae.outputs``, said in one line (``required=False`` where the
    command checks it itself: predict's old ``--out``)."""
    parser.add_argument(
        "--output", required=required, metavar="DIR",
        help=f"{what} folder; the rule for every command: it is new, empty, "
             f"or this command's earlier output from the same source, else "
             f"refused (--overwrite: write beside other files, replacing "
             f"only this command's own)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="write into a folder of other files or another source's output, "
             "replacing only this command's own earlier files (never a "
             "file it did not write, never what it reads)")


def data_request(args, for_model=False):
    """The ``keras_ae.data.DataSource`` a command's data flags ask for; a
    one-line error for flags that do not go together (``--resize`` needs
    ``--image-size`` unless a model gives the size: ``for_model``)."""
    from keras_ae.data.source import DataSource
    from keras_ae.runtime.images import MAX_IMAGE_PIXELS

    folder_flags = {"--image-size": args.image_size, "--resize": args.resize,
                    "--color": args.color, "--test-split": args.test_split,
                    "--cache": args.cache, "--skip-bad-images": args.skip_bad_images,
                    "--max-image-pixels": args.max_image_pixels != MAX_IMAGE_PIXELS,
                    "--tile": args.tile is not None, "--tile-overlap": args.tile_overlap}
    if args.images is None:
        given = [flag for flag, value in folder_flags.items() if value]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise InputError(f"{', '.join(given)} {verb} to --images only.")
    elif args.dataset or args.data_dir:
        raise InputError("--images reads your own folder; leave out --dataset "
                         "and --data-dir.")
    elif args.resize and args.image_size is None and not for_model:
        raise InputError("--resize says how --image-size is reached; give "
                         "--image-size HxW too.")
    return DataSource(
        dataset=args.dataset, data_dir=args.data_dir, tfds_data_dir=args.tfds_data_dir,
        images=args.images, image_size=args.image_size, resize=args.resize,
        color_mode=args.color, test_split=args.test_split, cache=args.cache,
        skip_bad_images=args.skip_bad_images, max_image_pixels=args.max_image_pixels,
        tile=args.tile, tile_overlap=args.tile_overlap,
        validation_split=args.validation_split, seed=args.seed)


def export_formats(text):
    """``--formats``: ``saved_model``, ``onnx`` or both, comma-separated."""
    formats = name_tuple(text)
    unknown = sorted(set(formats) - {"saved_model", "onnx"})
    if unknown or not formats:
        raise argparse.ArgumentTypeError(
            f"expected saved_model, onnx or both (comma-separated); got {text!r}")
    return formats
