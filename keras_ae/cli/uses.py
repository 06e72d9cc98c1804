"""``keras-ae features``, ``cluster`` and ``generate``: using
what a trained model (``.keras``, or an exported ``.onnx`` on onnxruntime)
learned. Each reads its data as the model takes images and writes JSON and
pictures into ``--output``."""

import os

from keras_ae.cli.options import (add_data_options, add_output_options,
                                  load_data, writing_output)


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
        command.set_defaults(run=writing_output(name, OUTPUTS[name], run))


# What each command writes into --output.
OUTPUTS = {"features": ("features.json",),
           "cluster": ("cluster.json", "code_map.png"),
           "generate": ("generate.json", "interpolation.png", "samples.png")}


def _labeled_splits(args, model, *splits, need_labels=True):
    """The data (read as ``model`` takes images) and ``(images, labels)``
    arrays of each split; labels ``None`` where the data has none and
    ``need_labels`` is False."""
    import numpy as np

    from keras_ae.codes import adapter as downstream

    if hasattr(model, "can_encode"):  # OnnxAutoencoder
        shape, recorded = model.input_shape, model.preprocessing
    else:
        shape = tuple(model.input_shape[1:])
        from keras_ae.training.run_record import read_run_record

        recorded = read_run_record(args.model).preprocessing
    data = load_data(args, model_shape=shape, recorded=recorded)
    print(f"data: {data.source}")
    if not need_labels and data.class_names is None and data.source.startswith("images:"):
        return data, [(np.concatenate([targets for _, targets in getattr(
            data, split).as_numpy_iterator()]), None) for split in splits]
    return data, [downstream.labeled_arrays(data.labeled(split), f"the {split} split")
                  for split in splits]


def write_result(args, name, result):
    from keras_ae import files

    path = os.path.join(args.output, name)
    files.write_json(path, {"model": args.model, **result})
    return path


def _features(args):
    import numpy as np

    from keras_ae.codes import probes

    from keras_ae.models.loading import load_model

    model = load_model(args.model)
    _, [(train_x, train_y), (test_x, test_y)] = _labeled_splits(
        args, model, "train", "test")
    chosen = np.random.default_rng(args.seed).permutation(len(train_x))[
        :args.train_images]
    train_x, train_y = train_x[chosen], train_y[chosen]
    results = {"codes": probes.linear_probe(model, (train_x, train_y),
                                                (test_x, test_y)),
               "raw_pixels": probes.probe_features(
                   probes.flat_pixels(train_x), train_y,
                   probes.flat_pixels(test_x), test_y)}
    if not hasattr(model, "can_encode"):  # a Keras model: same layers, new weights
        import keras
        keras.utils.set_random_seed(args.seed)
        results["random_encoder"] = probes.linear_probe(
            keras.models.clone_model(model), (train_x, train_y), (test_x, test_y))
    for name, result in results.items():
        print(f"{name:<15} test accuracy {result['test_accuracy']:.4f} "
              f"({result['features']} features, {result['train_images']} labeled "
              "training images)")
    print(f"wrote {write_result(args, 'features.json', results)}")
    return 0


def _cluster(args):
    from keras_ae.codes import adapter as downstream
    from keras_ae.codes import probes

    from keras_ae.models.loading import load_model

    model = load_model(args.model)
    _, [(images, labels)] = _labeled_splits(args, model, "test")
    images, labels = images[:args.max_images], labels[:args.max_images]
    codes = downstream.encode(model, images)
    results = {}
    for name, features in (("codes", codes),
                           ("raw_pixels", probes.flat_pixels(images))):
        result = probes.cluster_features(features, labels,
                                             clusters=args.clusters, seed=args.seed)
        result.pop("assignments")
        results[name] = result
        print(f"{name:<11} adjusted Rand index {result['adjusted_rand_index']:.4f}, "
              f"NMI {result['normalized_mutual_information']:.4f} "
              f"({result['clusters']} clusters of {result['images']} images)")
    picture = probes.save_code_map(codes, labels,
                                       os.path.join(args.output, "code_map.png"),
                                       title=f"codes of {os.path.basename(args.model)}, PCA")
    print(f"wrote {write_result(args, 'cluster.json', results)}, {picture}")
    return 0


def _generate(args):
    from keras_ae.codes import adapter as downstream
    from keras_ae.codes import generation

    from keras_ae.models.loading import load_model

    model = load_model(args.model)
    downstream.check_decoder_runs_alone(model)  # before reading any data
    _, [(train_x, _), (test_x, _)] = _labeled_splits(args, model, "train", "test",
                                                     need_labels=False)
    line = generation.interpolate(model, test_x[0], test_x[1], steps=args.steps)
    drawn = generation.sample(model, train_x, args.count, seed=args.seed)
    pictures = [
        generation.save_image_grid(line, os.path.join(args.output, "interpolation.png"),
                                   columns=args.steps, title="interpolation"),
        generation.save_image_grid(drawn, os.path.join(args.output, "samples.png"),
                                   title="samples from the training codes' Gaussian")]
    result = {"interpolation": {"steps": args.steps, "between": "test images 0 and 1"},
              "samples": {"count": args.count, "seed": args.seed,
                          "fitted_to": f"{len(train_x)} training images' codes"}}
    print(f"wrote {write_result(args, 'generate.json', result)}, "
          f"{', '.join(pictures)}")
    return 0
