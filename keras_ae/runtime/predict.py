"""Image files through an exported model, results written as PNGs: what
``keras-ae predict`` does, on onnxruntime alone.

``reconstruct_files`` writes each image's reconstruction, at the model's
size; ``score_files`` (an exported anomaly detector) each image's map over
it. Both write into one folder by ``keras_ae.outputs``' rule: names keep the
images' paths below their common folder, and a file written before is never
replaced without ``overwrite``.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image

from keras_ae import outputs
from keras_ae.runtime.images import MAX_IMAGE_PIXELS


@dataclasses.dataclass(frozen=True)
class Predictions:
    """What ``reconstruct_files`` or ``score_files`` did.

    Attributes:
        model: the ``OnnxAutoencoder`` or ``OnnxAnomalyDetector`` that ran.
        images: the image files, as given.
        written: the PNG written for each, in ``out``.
        values: each image's reconstruction error (MSE), or anomaly score.
        anomalous: for scores, whether each is above the threshold.
    """

    model: object
    images: list
    written: list
    values: np.ndarray
    anomalous: np.ndarray | None = None


def output_names(images, suffix):
    """Each image's output file, relative to the output folder: its path
    below the images' common folder with ``suffix`` for its extension, made
    unique (``a/x.png`` and ``b/x.png`` -> ``a/x...``, ``b/x...``; ``x.png``
    and ``x.jpg`` -> ``x...``, ``x_jpg...``).

    Example:

    >>> output_names(["a/x.png", "b/x.png", "b/x.jpg"], "_r.png")
    ['a/x_r.png', 'b/x_r.png', 'b/x_jpg_r.png']
    """
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


def _claimed(model_path, images, out, names, overwrite):
    return outputs.claim(out, "predict", os.path.abspath(model_path), names=names,
                         overwrite=overwrite, reads=[model_path, *images],
                         replace_own=False)


def _staged(folder, name):
    """``name``'s path in the staging folder, its subfolders made."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def reconstruct_files(model_path, images, out, *, resize=False,
                      max_pixels=MAX_IMAGE_PIXELS, overwrite=False):
    """Writes ``NAME_reconstruction.png`` for each image file into ``out``.

    Args:
        model_path: an exported ``model.onnx`` (or its int8 twin).
        images: image files; with ``resize``, of any size (resized as the
            model's training images were, ``OnnxAutoencoder.prepare``).
        out: the output folder.
        max_pixels: the largest image read (``keras_ae.runtime.images``).
        overwrite: replace this command's earlier reconstructions.

    Returns:
        ``Predictions``, ``values`` the reconstruction errors.
    """
    from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

    names = output_names(images, "_reconstruction.png")
    folder = _claimed(model_path, images, out, names, overwrite)
    # Written whole into a staging folder, then moved in: a full disk or a
    # kill leaves none of them, never some.
    with folder, folder.staging() as staged:
        model = OnnxAutoencoder(model_path)
        batch = model.prepare(list(images), resize=resize, max_pixels=max_pixels)
        reconstructions = model.reconstruct(batch)
        errors = model.reconstruction_error(batch)
        for name, reconstruction in zip(names, reconstructions):
            pixels = np.round(np.clip(reconstruction, 0, 1) * 255).astype(np.uint8)
            picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
            picture.save(_staged(staged, name), format="PNG")
        written = folder.commit_files(staged, names)
    return Predictions(model, list(images), written, errors)


def score_files(detector_path, images, out, *, resize=False, max_pixels=MAX_IMAGE_PIXELS,
                threshold=None, overwrite=False):
    """Writes ``NAME_anomaly_map.png`` (the image beside its map,
    ``keras_ae.runtime.save_overlay``) for each image file into ``out``.

    Args:
        detector_path: an exported ``detector.onnx``.
        images, out, resize, max_pixels, overwrite: as for
            ``reconstruct_files``.
        threshold: a threshold of your own in place of the detector's.

    Returns:
        ``Predictions``, ``values`` the anomaly scores, ``anomalous`` the
        verdicts at the detector's threshold.
    """
    from keras_ae.runtime.onnx_detector import OnnxAnomalyDetector
    from keras_ae.runtime.overlays import save_overlay

    names = output_names(images, "_anomaly_map.png")
    folder = _claimed(detector_path, images, out, names, overwrite)
    with folder, folder.staging() as staged:  # all or none, as reconstruct_files
        detector = OnnxAnomalyDetector(detector_path, threshold=threshold)
        batch = detector.prepare(list(images), resize=resize, max_pixels=max_pixels)
        scores, maps = detector.scores_and_maps(batch)
        for index, name in enumerate(names):
            save_overlay(batch[index], maps[index], _staged(staged, name),
                         score=scores[index], threshold=detector.threshold)
        written = folder.commit_files(staged, names)
    return Predictions(detector, list(images), written, scores, scores > detector.threshold)
