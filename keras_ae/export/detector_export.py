"""An ``AnomalyDetector`` as one ONNX file that onnxruntime runs alone.

The graph maps ``image`` (float32 ``[batch, H, W, C]`` in [0, 1]) to
``score`` ``[batch]``, ``map`` ``[batch, H, W]`` and ``reconstruction``: the
autoencoder, then ``keras_ae.anomaly.scores``' arithmetic with the fitted
reference codes, Gaussian and normalisation as constants. The threshold,
its rule and the score's name travel in the file's metadata, beside the
autoencoder's own (input shape, preprocessing), so that
``keras_ae.runtime.onnx_detector.OnnxAnomalyDetector`` and ``keras-ae predict
--anomaly`` need nothing else.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_ae.export import exporter
from keras_ae import files
from keras_ae.models import facts as model_facts
from keras_ae.models.loading import as_float32
from keras_ae.errors import InputError
from keras_ae.runtime.images import check_preprocessing
from keras_ae.runtime.pixels import to_unit_float

DETECTOR_FILE = "detector.onnx"
ROLE = "anomaly_detector"


def export_detector(detector, path, *, opset=exporter.DEFAULT_OPSET, images=None,
                    preprocessing=None, card=None):
    """Writes ``detector`` as one ONNX file and checks it against Keras.

    Args:
        detector: a ``keras_ae.anomaly.detector.AnomalyDetector`` over a Keras
            autoencoder.
        path: the ``.onnx`` file to write (atomically).
        opset: as for ``keras_ae.export.exporter.export_onnx``.
        images: images to check parity on, float in [0, 1] or uint8, besides
            ``keras_ae.export.exporter.parity_images``.
        preprocessing: how training images were made from files
            (``ImageData.preprocessing``), for serving photos of other sizes.
        card: more facts for the model card (e.g. where the model came from,
            what the detector measured), JSON-serialisable.

    Writes beside ``path`` its model card, ``<name>_card.json``: the
    detector (score, threshold, rule, maps, normalisation), the model's
    facts, the parity figures and ``card``.

    Returns:
        The largest differences from Keras, ``{"score": ..., "map": ...}``:
        absolute, relative for values over 1.

    Raises:
        ValueError: for a detector over an exported (ONNX) model, or a path
            not ending in ``.onnx``.
        keras_ae.export.exporter.ExportParityError: when the file differs from Keras
            by over ``keras_ae.export.exporter.PARITY_TOLERANCE``; nothing is
            written then.

    Example::

        detector = AnomalyDetector.fit(model, normal_images)
        export_detector(detector, "exported/shoes/detector.onnx")
    """
    import onnx
    import onnxruntime

    model = detector.model
    if not hasattr(model, "get_layer"):
        raise InputError(
            f"export_detector needs a detector over a Keras model, got one over "
            f"{model!r}; fit the detector on the .keras model to export it.")
    path = Path(path)
    if path.suffix != ".onnx":
        raise InputError(f"expected a path ending in .onnx, got {str(path)!r}.")
    preprocessing = check_preprocessing(preprocessing)
    model = as_float32(model)
    opset = exporter._check_opset(model, opset)
    shape = model_facts.image_input_shape(model)
    proto = exporter.convert_function(_detector_function(detector, model, shape), opset)
    facts = {**model_facts.describe(model), "preprocessing": preprocessing}
    exporter._add_metadata(proto, ROLE, facts, {})
    for key, value in {**detector.describe(), "role": ROLE}.items():
        exporter.set_metadata(proto, f"keras_ae.{key}", value)
    onnx.checker.check_model(proto, full_check=True)
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    check = exporter.parity_images(shape)
    if images is not None:
        check = np.concatenate([check, to_unit_float(
            np.asarray(images).reshape(-1, *shape))])
    expected = detector.scores_and_maps(check)
    found = session.run(["score", "map"], {"image": check})
    differences = {name: _largest_difference(a, b)
                   for name, a, b in zip(("score", "map"), found, expected)}
    if not max(differences.values()) <= exporter.PARITY_TOLERANCE:
        raise exporter.ExportParityError(
            f"the ONNX detector differs from Keras by {differences['score']:.3g} "
            f"in scores and {differences['map']:.3g} in maps (relative to values "
            f"over 1), over {exporter.PARITY_TOLERANCE:g}; nothing was written.")
    exporter.set_metadata(proto, "keras_ae.max_abs_diff", differences)
    files.write_bytes(path, proto.SerializeToString())
    files.write_json(path.with_name(f"{path.stem}_card.json"), {
        "file": path.name, "role": ROLE, "detector": detector.describe(),
        "model": facts, "max_abs_diff": differences, **(card or {})})
    return differences


def _largest_difference(found, expected):
    """The largest |found - expected|, relative where |expected| > 1: scores
    are in standard deviations of normal images, and float32 itself rounds a
    score of 1,000 (a very strange image) to 6e-5."""
    expected = np.asarray(expected, np.float64)
    scale = np.maximum(np.abs(expected), 1.0)
    return float(np.max(np.abs(np.asarray(found, np.float64) - expected) / scale))


def _detector_function(detector, model, shape):
    """The ``tf.function`` exported: image to score, map and reconstruction."""
    model = exporter.for_onnx(model)
    encoder, _ = model_facts.parts(model)
    needs_codes = detector.scoring.needs_codes
    spec = tf.TensorSpec((None, *shape), tf.float32, name="image")

    def detect(image):
        reconstruction = model(image, training=False)
        if needs_codes:
            codes = encoder(image, training=False)
            codes = codes[0] if isinstance(codes, (list, tuple)) else codes
        else:
            codes = tf.zeros([tf.shape(image)[0], 0])
        score, where = detector.scoring(image, reconstruction, codes)
        return {"score": score, "map": where, "reconstruction": reconstruction}

    return tf.function(detect, input_signature=[spec])
