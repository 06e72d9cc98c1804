"""The ``keras-ae`` command line.

Subcommands:

- ``keras-ae train``: train an autoencoder on a dataset (Fashion-MNIST by
  default) into a resumable run folder, then measure it on the test split:
  ``model.keras``, ``history.csv``, ``metrics.json``, ``reconstructions.png``
  and ``loss_curves.png``.
- ``keras-ae export``: write a trained model as a SavedModel and ONNX, each
  checked against the Keras model, with a ``model_card.json``.
- ``keras-ae predict``: reconstruct image files (any size and colour with
  ``--resize``) with an exported ``.onnx`` model through onnxruntime (no
  TensorFlow), printing each image's error.
- ``keras-ae tune``: search for the autoencoder that reconstructs a dataset
  best (KerasTuner: hyperband, random or bayesian), resumable and
  distributable; writes ``best_model.keras`` (ready for ``keras-ae export``),
  ``trials.csv``, ``best_hyperparameters.json``, ``metrics.json`` and
  pictures.
- ``keras-ae features``, ``cluster``, ``anomaly``, ``generate``: use what a
  trained model (``.keras`` or exported ``.onnx``) learned: a linear probe
  on its codes, k-means on them, anomaly scores from reconstruction error,
  and new images from its decoder; each writes JSON and pictures.
- ``keras-ae summary``: build the dense autoencoder and the conv autoencoder
  with each decoder, check that each gives back images of the input's shape,
  and print their layers, parameter counts and code sizes.

Run ``keras-ae SUBCOMMAND --help`` for the options of each.
"""

import argparse
import errno
import math
import os
import signal
import sys
from pathlib import Path

from keras_ae.cli import anomaly as cli_anomaly
from keras_ae.cli import export as cli_export
from keras_ae.cli import predict as cli_predict
from keras_ae.cli import uses as cli_uses
from keras_ae.training import precision
from keras_ae.cli.options import (add_data_options, data_request, float_tuple, int_tuple,
                                  name_tuple)
from keras_ae.cli.quiet import image_decoder_log_dropped
from keras_ae.errors import DatasetUnavailableError, InputError, Interrupted
from keras_ae.public import needs_full_install
from keras_ae.cli.quiet import start_tensorflow



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
                    "with each decoder and pooling; print layers, parameters "
                    "and code sizes.")
    summary.add_argument("--input-shape", type=int_tuple, default=(28, 28, 1),
                         metavar="H,W,C", help="image shape (default 28,28,1)")
    summary.add_argument("--filters", type=int_tuple, default=None,
                         metavar="F1,F2,...",
                         help="conv filters per encoder stage (default: the builder's)")
    summary.add_argument("--kernel-size", type=int, default=None,
                         help="conv kernel size (default: the builder's)")
    summary.add_argument("--convs-per-stage", type=int, default=None,
                         help="convolutions per stage (default: the builder's)")
    summary.add_argument("--code-size", type=int, default=None,
                         help="dense code length for the conv models "
                              "(default: the last feature map is the code)")
    summary.add_argument("--dense-code-size", type=int, default=32,
                         help="code length of the dense model (default 32)")
    summary.add_argument("--brief", action="store_true",
                         help="print only the final table, not each model's layers")
    summary.set_defaults(run=_summary)
    _add_train_parser(commands)
    cli_export.add_parser(commands)
    cli_predict.add_parser(commands)
    _add_tune_parser(commands)
    cli_uses.add_parsers(commands)
    cli_anomaly.add_parser(commands)
    for name, command in commands.choices.items():
        if name != "tune":  # tune's --verbose takes a level
            command.add_argument("--verbose", action="store_true",
                                 help="show TensorFlow's start-up log too")
    return parser


def _add_train_parser(commands):
    train = commands.add_parser(
        "train", help="train an autoencoder and measure it",
        description="Train an autoencoder with Adam and MSE into a run folder "
                    "(resumable: the same command continues an interrupted "
                    "run), then write test metrics and pictures. Model options "
                    "left out take the builders' defaults.")
    data = add_data_options(train)
    data.add_argument("--noise-factor", type=float, default=0.0,
                      help="denoising: Gaussian noise on the input (default 0)")
    data.add_argument("--normal-classes", type=name_tuple, default=None,
                      metavar="C1,C2,...",
                      help="train (and validate) on these classes only, label "
                           "numbers or class folder names; the test split "
                           "keeps every class, for keras-ae anomaly")
    model = train.add_argument_group("model (defaults: the builders')")
    model.add_argument("--model", choices=("conv", "dense"), default="conv")
    model.add_argument("--decoder", default=None,
                       help="conv decoder: transpose, upsample or unpool")
    model.add_argument("--pooling", default=None,
                       help="conv pooling: max or average (unpool undoes it "
                            "in kind)")
    model.add_argument("--filters", type=int_tuple, default=None,
                       metavar="F1,F2,...")
    model.add_argument("--intensity", default=None,
                       help="conv: what the encoder sees of each pixel, linear "
                            "(default) or sqrt (the model anomaly detection "
                            "recommends)")
    model.add_argument("--kernel-size", type=int, default=None)
    model.add_argument("--convs-per-stage", type=int, default=None)
    model.add_argument("--code-size", type=int, default=None)
    model.add_argument("--hidden-units", type=int_tuple, default=None,
                       metavar="U1,U2,...", help="dense model's hidden layers")
    fit = train.add_argument_group("training")
    fit.add_argument("--epochs", type=int, default=10)
    fit.add_argument("--batch-size", type=int, default=256)
    fit.add_argument("--learning-rate", type=float, default=None,
                     help="Adam's step size (default: "
                          "keras_ae.training.loop.DEFAULT_LEARNING_RATE)")
    fit.add_argument("--patience", type=int, default=None,
                     help="stop after this many epochs without improvement")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--xla", action="store_true", help="compile with XLA")
    _add_mixed_precision(fit)
    _add_resumable_output(train, "run", _train)


# keras-ae tune's space options beyond --code-size: flag, type, metavar, help.
# Left out, each takes keras_ae.tuning.AutoencoderHyperModel's default.
_SPACE_OPTIONS = (
    ("--families", name_tuple, "F1,F2", "conv, dense (default both)"),
    ("--decoders", name_tuple, "D1,D2,...",
     "conv decoders: transpose, upsample, unpool (default all three)"),
    ("--poolings", name_tuple, "P1,P2", "conv poolings: max, average (default max)"),
    ("--stages", int_tuple, "FEWEST,MOST", "conv pooling stages (default 2,3)"),
    ("--filters", int_tuple, "F1,F2,...", "filter choices per conv stage (default 16,32,64)"),
    ("--batch-sizes", int_tuple, "B1,B2,...", "default 64,128,256"),
    ("--learning-rate", float_tuple, "LOW,HIGH",
     "Adam's step size range, log scale (default 3e-4,1e-2); one number fixes it"),
    ("--noise-factors", float_tuple, "N1,N2,...",
     "denoising: search the training noise among these"),
)


def _add_tune_parser(commands):
    tune = commands.add_parser(
        "tune", help="search hyperparameters with KerasTuner",
        description="Search for the autoencoder that reconstructs the "
                    "validation images best (KerasTuner), then measure the "
                    "best one on the test split. Resumable: the same command "
                    "continues an interrupted search. Distributed: run the "
                    "same command on every machine with KERASTUNER_TUNER_ID "
                    "(chief, tuner0, tuner1, ...), KERASTUNER_ORACLE_IP and "
                    "KERASTUNER_ORACLE_PORT set, and --output on a shared "
                    "filesystem. Space options left out take "
                    "keras_ae.tuning.AutoencoderHyperModel's defaults.")
    add_data_options(tune)
    space = tune.add_argument_group("search space")
    space.add_argument("--code-size", type=int, default=None,
                       help="pin the code to this many floats (compare models "
                            "at one compression); default: searched")
    for flag, kind, metavar, text in _SPACE_OPTIONS:
        space.add_argument(flag, type=kind, default=None, metavar=metavar,
                           help=text)
    run = tune.add_argument_group("search")
    run.add_argument("--tuner", choices=("hyperband", "random", "bayesian"),
                     default="hyperband")
    run.add_argument("--max-trials", type=int, default=20)
    run.add_argument("--max-epochs", type=int, default=10,
                     help="epochs of a fully trained trial (default 10)")
    run.add_argument("--seed", type=int, default=0)
    _add_mixed_precision(run)
    run.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                     nargs="?", const=2,
                     help="0 quiet, 1 a line per trial (default), 2 (or the "
                          "flag alone) also epochs and TensorFlow's own log")
    _add_resumable_output(tune, "search", _tune)


def _add_mixed_precision(group):
    group.add_argument("--mixed-precision", choices=precision.CHOICES,
                       default="auto", metavar="{auto,on,off,POLICY}",
                       help="16-bit compute: auto (the default) trains in "
                            "mixed_float16 on a GPU, mixed_bfloat16 on a CPU "
                            "with bfloat16 instructions (AVX-512 BF16, AMX), "
                            "else float32; on, off, or a Keras policy: "
                            + ", ".join(precision.POLICIES))


def _add_resumable_output(parser, kind, run):
    """``--output``, the folder of a ``kind`` the same command resumes, and
    ``--overwrite``, which starts it over."""
    parser.add_argument(
        "--output", required=True, metavar="DIR",
        help=f"{kind} folder; the rule for every command: it is new, empty, "
             f"or this command's earlier {kind} (the same {kind} is resumed), "
             f"else refused (--overwrite: start over, replacing only the "
             f"earlier {kind}'s own files)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help=f"start the {kind} over: delete the earlier {kind}'s own files "
             f"in --output (never a file it did not write) and write beside "
             f"any other files")
    parser.set_defaults(run=run)


def _model_options(args):
    """The builder arguments the user gave; the rest keep the builders' defaults."""
    names = (["decoder", "pooling", "filters", "kernel_size", "convs_per_stage",
              "code_size", "intensity"]
             if args.model == "conv" else ["code_size", "hidden_units"])
    given = {name: getattr(args, name) for name in names
             if getattr(args, name) is not None}
    wrong = [name for name in ("decoder", "pooling", "filters", "kernel_size",
                               "convs_per_stage", "hidden_units", "intensity")
             if name not in names and getattr(args, name) is not None]
    if wrong:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
        raise InputError(f"{flags} do not apply to --model {args.model}.")
    return given


def _train(args):
    from keras_ae import training

    run = training.TrainingRun(
        data=data_request(args), model=args.model, model_options=_model_options(args),
        normal_classes=tuple(args.normal_classes or ()), epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        patience=args.patience, noise_factor=args.noise_factor, seed=args.seed,
        xla=args.xla, mixed_precision=args.mixed_precision)
    # keras_ae names image files that do not decode; TensorFlow's decoders
    # would also log each one, from C++.
    with image_decoder_log_dropped(bool(args.verbose)):
        result = training.run_training(run, args.output, overwrite=args.overwrite)
    _say_trained(args.output, result)
    return 0


def _say_trained(output, result):
    """What ``keras-ae train`` prints of a ``TrainResult``."""
    if result.finished_before:
        print(f"{output} holds this run, finished: measured its model "
              "again. To train further, start a new --output folder.")
    else:
        print(f"devices: {result.devices.description}"
              + (" (resumed an interrupted run)" if result.resumed else ""))
    if result.devices.workers > 1 and not result.finished_before:
        print(f"{result.devices.task}: weights fingerprint {result.weights_fingerprint}")
    if result.metrics is None:  # a cluster's worker: the chief writes the record
        return
    metrics, test = result.metrics, result.metrics["test"]
    print(f"test: MSE {test['mse']:.5f}, PSNR {test['psnr']:.2f} dB, "
          f"SSIM {test['ssim']:.4f} on {test['images']} images; "
          f"{metrics['parameters']:,} parameters, code {metrics['code_floats']} "
          f"floats; {metrics['train_images_per_second'] or float('nan'):,.0f} "
          "train images/s")
    skipped = metrics["data"]["skipped_files"]
    if skipped:
        print(f"skipped {metrics['data']['skipped_images']} unreadable files (listed in "
              f"{output}/metrics.json), e.g. {skipped[0]['path']}")
    print(f"wrote {output}/model.keras, history.csv, metrics.json, "
          "reconstructions.png, loss_curves.png")


def _search_space(args):
    """The ``AutoencoderHyperModel`` arguments the user gave."""
    space = {name: getattr(args, name) for name in (
        "code_size", "families", "decoders", "poolings", "stages", "filters",
        "batch_sizes", "learning_rate", "noise_factors") if getattr(args, name) is not None}
    for name in ("stages", "learning_rate"):  # one value fixes it
        if name in space and len(space[name]) == 1:
            space[name] = space[name][0]
    return space


def _tune(args):
    from keras_ae import tuning

    run = tuning.SearchRun(
        data=data_request(args), space=_search_space(args), tuner=args.tuner,
        max_trials=args.max_trials, max_epochs=args.max_epochs, seed=args.seed,
        mixed_precision=args.mixed_precision)
    with image_decoder_log_dropped(bool(args.verbose)):
        outcome = tuning.run_search(run, args.output, overwrite=args.overwrite,
                                    verbose=args.verbose)
    _say_searched(Path(args.output), outcome)
    return 0


def _say_searched(output, outcome):
    """What ``keras-ae tune`` prints of a ``SearchOutcome``."""
    from keras_ae import tuning

    result = outcome.result
    if outcome.metrics is None:
        print(f"worker {os.environ.get('KERASTUNER_TUNER_ID')}: no trials left; "
              f"the chief writes the results to {output}/")
        return
    best, test = result.best_hyperparameters, outcome.metrics["test"]
    print()
    print(tuning.summary_table(result.trials))
    print(f"\nbest: trial {best['trial_id']}, {best['builder']}"
          f"({', '.join(f'{k}={v}' for k, v in best['builder_arguments'].items())}), "
          f"learning rate {best['learning_rate']:.3g}, batch {best['batch_size']}")
    print(f"test: MSE {test['mse']:.5f}, PSNR {test['psnr']:.2f} dB, "
          f"SSIM {test['ssim']:.4f} on {test['images']} images "
          f"(validation MSE {best['val_mse']:.5f})")
    print(f"wrote {output}/best_model.keras, best_hyperparameters.json, "
          "trials.csv, metrics.json, trials.png, reconstructions.png")
    print(f"export it: keras-ae export {output}/best_model.keras --output "
          f"exported/{output.name}")


def _summary(args):
    import numpy as np

    import keras_ae

    models = [keras_ae.build_dense_autoencoder(
        args.input_shape, code_size=args.dense_code_size)]
    given = {name: getattr(args, name) for name in
             ("filters", "kernel_size", "convs_per_stage", "code_size")
             if getattr(args, name) is not None}
    for pooling in keras_ae.POOLINGS:  # max first
        for decoder in sorted(keras_ae.DECODERS):
            models.append(keras_ae.build_conv_autoencoder(
                args.input_shape, decoder=decoder, pooling=pooling, **given))

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
        code = keras_ae.code_floats(model)
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
    # File names that are not UTF-8 reach Python as surrogates; shown
    # escaped rather than failing the print.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    who = f"keras-ae {args.command}"
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        if args.command != "predict":  # predict runs on onnxruntime alone
            start_tensorflow(verbose=args.verbose is True or args.verbose == 2)
        return args.run(args)
    except (KeyboardInterrupt, Interrupted) as interruption:
        # Every writer's temporaries and lock go as the stack unwinds; what
        # is finished stays, and the same command goes on from it.
        number = getattr(interruption, "signal_number", signal.SIGINT)
        where = getattr(interruption, "where", "")
        print(f"\n{who}: interrupted{' ' + where if where else ''} "
              f"({signal.Signals(number).name}); the same command resumes",
              file=sys.stderr)
        return 128 + number
    except Exception as error:
        full = _disk_full(error)
        if full:
            print(f"{who}: error: no space left on the device of "
                  f"{_output_of(args)}: could not write {full}; nothing half-written "
                  f"was kept and what was there before is intact. Free some space "
                  f"and run the same command again.", file=sys.stderr)
            return 2
        missing = needs_full_install(error, who)
        if missing is None and not _is_user_error(error):
            raise
        print(f"{who}: error: {missing or error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupted(number, frame):
    raise Interrupted(number)


# What a full disk or quota is called by the OS and by TensorFlow's writers.
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded")


def _disk_full(error):
    """What could not be written, where ``error`` (or what caused it) is a
    full disk or quota; else ``None``."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
            return error.filename or "a file"
        text = str(error)
        if any(words in text for words in _DISK_FULL_WORDS):
            return "a file (TensorFlow: " + text.splitlines()[0][:200] + ")"
        error = error.__cause__ or error.__context__
    return None


def _output_of(args):
    """The output folder a command writes, for messages."""
    output = getattr(args, "output", None)
    return repr(str(output)) if output else "the output folder"


def _is_user_error(error):
    """Bad input the user can fix: reported in one line, no traceback.
    Anything else is a bug in keras_ae or below it and keeps its traceback."""
    if isinstance(error, (InputError, FileNotFoundError, DatasetUnavailableError)):
        return True
    # missing, unreadable or misplaced files, named by the OS
    return isinstance(error, OSError) and error.filename is not None


