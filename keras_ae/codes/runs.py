"""The uses of the codes as one call each: what ``keras-ae features``,
``cluster`` and ``generate`` do.

Each takes a trained model's file (``.keras``, or an exported ``.onnx`` on
onnxruntime), a ``keras_ae.data.DataSource`` read as the model takes its
images, and an output folder, which it claims (``keras_ae.outputs``: never
a file it did not write); it writes its JSON and pictures there and returns
the result it wrote.
"""

import os
from pathlib import Path

import numpy as np

from keras_ae import files, outputs
from keras_ae.codes import adapter, generation, probes

# What each command writes into its output folder.
OUTPUTS = {"features": ("features.json",),
           "cluster": ("cluster.json", "code_map.png"),
           "generate": ("generate.json", "interpolation.png", "samples.png")}


def model_data(model, model_path, request, *, verbose=True):
    """``request``'s images as ``model`` takes them: at its size and colour,
    resized by the recipe its export or run recorded."""
    if hasattr(model, "can_encode"):  # OnnxAutoencoder: the export records it
        shape, recorded = model.input_shape, model.preprocessing
    else:
        from keras_ae.training.run_record import read_run_record

        shape, recorded = tuple(model.input_shape[1:]), read_run_record(model_path).preprocessing
    data = request.load(model_shape=shape, recorded=recorded, verbose=verbose)
    if verbose:
        print(f"data: {data.source}")
    return data


def split_arrays(data, split, need_labels=True):
    """``(images, labels)`` of one split; labels ``None`` for an unlabeled
    image folder when ``need_labels`` is False."""
    folder = data.origin is not None and data.origin.images is not None
    if not need_labels and data.class_names is None and folder:
        return np.concatenate([t for _, t in getattr(data, split).as_numpy_iterator()]), None
    return adapter.labeled_arrays(data.labeled(split), f"the {split} split")


def _claimed(command, model_path, output, overwrite):
    folder = outputs.claim(output, command, os.path.abspath(model_path),
                           names=OUTPUTS[command], overwrite=overwrite, reads=[model_path])
    return folder.in_place(OUTPUTS[command])


def _write(output, name, model_path, result):
    return files.write_json(Path(output) / name, {"model": str(model_path), **result})


def run_features(model_path, output, *, data, train_images=5000, seed=0, overwrite=False,
                 verbose=True):
    """A linear probe on the frozen codes of ``train_images`` labeled
    training images, against raw pixels and (for a Keras model) the same
    encoder with random weights; writes ``features.json``.

    Returns:
        ``{"codes": ..., "raw_pixels": ..., ["random_encoder": ...]}``, each
        ``probe_features``' result.
    """
    from keras_ae.models.loading import load_model

    with _claimed("features", model_path, output, overwrite):
        model = load_model(model_path)
        images = model_data(model, model_path, data, verbose=verbose)
        (train_x, train_y), (test_x, test_y) = (split_arrays(images, "train"),
                                                split_arrays(images, "test"))
        chosen = np.random.default_rng(seed).permutation(len(train_x))[:train_images]
        train_x, train_y = train_x[chosen], train_y[chosen]
        results = {"codes": probes.linear_probe(model, (train_x, train_y), (test_x, test_y)),
                   "raw_pixels": probes.probe_features(
                       probes.flat_pixels(train_x), train_y, probes.flat_pixels(test_x),
                       test_y)}
        if not hasattr(model, "can_encode"):  # a Keras model: same layers, new weights
            import keras

            keras.utils.set_random_seed(seed)
            results["random_encoder"] = probes.linear_probe(
                keras.models.clone_model(model), (train_x, train_y), (test_x, test_y))
        _write(output, "features.json", model_path, results)
    return results


def run_cluster(model_path, output, *, data, max_images=10000, clusters=None, seed=0,
                overwrite=False, verbose=True):
    """k-means on the test codes (at most ``max_images``) against the labels,
    and on raw pixels; writes ``cluster.json`` and ``code_map.png``.

    Returns:
        ``{"codes": ..., "raw_pixels": ...}``, each ``cluster_features``'
        result without the assignments.
    """
    from keras_ae.models.loading import load_model

    with _claimed("cluster", model_path, output, overwrite):
        model = load_model(model_path)
        images, labels = split_arrays(model_data(model, model_path, data, verbose=verbose),
                                      "test")
        images, labels = images[:max_images], labels[:max_images]
        codes = adapter.encode(model, images)
        results = {}
        for name, features in (("codes", codes), ("raw_pixels", probes.flat_pixels(images))):
            result = probes.cluster_features(features, labels, clusters=clusters, seed=seed)
            result.pop("assignments")
            results[name] = result
        probes.save_code_map(codes, labels, Path(output) / "code_map.png",
                             title=f"codes of {os.path.basename(model_path)}, PCA")
        _write(output, "cluster.json", model_path, results)
    return results


def run_generate(model_path, output, *, data, count=16, steps=8, seed=0, overwrite=False,
                 verbose=True):
    """An interpolation between two test images' codes and ``count``
    samples from a Gaussian fitted to the training codes; writes
    ``interpolation.png``, ``samples.png`` and ``generate.json``.

    Raises:
        InputError: a decoder that cannot run alone (unpool after max
            pooling), before any data is read.
    """
    from keras_ae.models.loading import load_model

    with _claimed("generate", model_path, output, overwrite):
        model = load_model(model_path)
        adapter.check_decoder_runs_alone(model)  # before reading any data
        images = model_data(model, model_path, data, verbose=verbose)
        train_x, _ = split_arrays(images, "train", need_labels=False)
        test_x, _ = split_arrays(images, "test", need_labels=False)
        line = generation.interpolate(model, test_x[0], test_x[1], steps=steps)
        drawn = generation.sample(model, train_x, count, seed=seed)
        generation.save_image_grid(line, Path(output) / "interpolation.png", columns=steps,
                                   title="interpolation")
        generation.save_image_grid(drawn, Path(output) / "samples.png",
                                   title="samples from the training codes' Gaussian")
        result = {"interpolation": {"steps": steps, "between": "test images 0 and 1"},
                  "samples": {"count": count, "seed": seed,
                              "fitted_to": f"{len(train_x)} training images' codes"}}
        _write(output, "generate.json", model_path, result)
    return result
