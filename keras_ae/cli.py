"""The ``keras-ae`` command line.

Subcommands:

- ``keras-ae summary``: build the dense autoencoder and the conv autoencoder
  with each decoder, check that each gives back images of the input's shape,
  and print their layers, parameter counts and code sizes.

Run ``keras-ae SUBCOMMAND --help`` for the options of each.
"""

import argparse
import math
import os
import sys


def _int_tuple(text):
    """``"16,4"`` -> ``(16, 4)``, for argparse."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 16,4; got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one integer; got {text!r}")
    return values


def _parser():
    parser = argparse.ArgumentParser(
        prog="keras-ae", description="Autoencoders for Keras 3 on TensorFlow.")
    from keras_ae import __version__
    parser.add_argument("--version", action="version",
                        version=f"keras_ae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="COMMAND")

    summary = commands.add_parser(
        "summary", help="build every autoencoder kind and summarize it",
        description="Build the dense autoencoder and the conv autoencoder "
                    "with each decoder; print layers, parameters and code sizes.")
    summary.add_argument("--input-shape", type=_int_tuple, default=(28, 28, 1),
                         metavar="H,W,C", help="image shape (default 28,28,1)")
    summary.add_argument("--filters", type=_int_tuple, default=(16, 4),
                         metavar="F1,F2,...",
                         help="conv filters per encoder stage (default 16,4)")
    summary.add_argument("--kernel-size", type=int, default=3,
                         help="conv kernel size (default 3)")
    summary.add_argument("--code-size", type=int, default=None,
                         help="dense code length for the conv models "
                              "(default: the last feature map is the code)")
    summary.add_argument("--dense-code-size", type=int, default=32,
                         help="code length of the dense model (default 32)")
    summary.add_argument("--brief", action="store_true",
                         help="print only the final table, not each model's layers")
    summary.set_defaults(run=_summary)
    return parser


def _code_floats(model):
    """Floats in one image's code: the encoder's first output, per sample."""
    encoder = model.get_layer("encoder")
    return math.prod(encoder.outputs[0].shape[1:])


def _summary(args):
    import numpy as np

    import keras_ae

    models = [keras_ae.build_dense_autoencoder(
        args.input_shape, code_size=args.dense_code_size)]
    for decoder in sorted(keras_ae.DECODERS):
        models.append(keras_ae.build_conv_autoencoder(
            args.input_shape, filters=args.filters, decoder=decoder,
            kernel_size=args.kernel_size, code_size=args.code_size))

    pixels = math.prod(args.input_shape)
    batch = np.random.default_rng(0).random((2, *args.input_shape), "float32")
    rows = []
    for model in models:
        if not args.brief:
            model.summary(expand_nested=True)
        output = np.asarray(model(batch))
        if output.shape != batch.shape:  # a builder bug, not a user error
            raise RuntimeError(
                f"{model.name} returned {output.shape} for input {batch.shape}")
        code = _code_floats(model)
        rows.append((model.name, model.count_params(), code, pixels / code))

    print(f"\nAutoencoders for images of shape {args.input_shape} "
          f"({pixels} floats each):")
    header = ("model", "parameters", "code floats", "compression")
    print(f"{header[0]:<32} {header[1]:>10} {header[2]:>12} {header[3]:>12}")
    for name, params, code, ratio in rows:
        print(f"{name:<32} {params:>10,} {code:>12,} {ratio:>11.1f}x")
    return 0


def main(argv=None):
    """Entry point of the ``keras-ae`` console script; returns an exit code."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ chatter
    try:
        return args.run(args)
    except ValueError as error:
        print(f"keras-ae {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
