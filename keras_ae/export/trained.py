"""Exporting a trained run's model as one call: what ``keras-ae export`` does.

``export_trained`` loads a ``.keras`` model, reads the run record beside it
(``keras_ae.training.read_run_record``) into the model card, reads the images
an int8 export calibrates on (the run's own, through its recorded
``DataSource``, unless others are given), and calls ``export_model``.
"""

import numpy as np

from keras_ae.errors import positive_int
from keras_ae.export.exporter import DEFAULT_OPSET, export_model
from keras_ae.export.quantize import DEFAULT_CALIBRATION_IMAGES, DEFAULT_MAX_MSE_INCREASE

# What a model card keeps of the run record's metrics.
CARD_TRAINING = ("settings", "epochs_run", "train_images_per_second", "devices",
                 "precision_policy", "seconds")


def export_trained(model_path, output, *, data=None, quantize=None,
                   max_mse_increase=DEFAULT_MAX_MSE_INCREASE,
                   calibration_count=DEFAULT_CALIBRATION_IMAGES, opset=DEFAULT_OPSET,
                   saved_model=True, onnx=True, overwrite=False, verbose=True):
    """Exports the model of a training run or search into ``output``.

    Args:
        model_path: the ``.keras`` file (``model.keras`` of a run,
            ``best_model.keras`` of a search, or one from elsewhere).
        output: the export folder (``export_model``'s).
        data: a ``keras_ae.data.DataSource`` for the int8 calibration and
            test images; ``None`` for the run's own (its record), or
            Fashion-MNIST for a model without one.
        quantize, max_mse_increase, opset, saved_model, onnx, overwrite:
            as for ``export_model``.
        calibration_count: training images the int8 files calibrate on.
        verbose: say where the calibration images come from.

    Returns:
        The model card, a dict.

    Raises:
        keras_ae.export.QuantizationRefused: after the float files are
            written, when an int8 file lost more than ``max_mse_increase``.
    """
    from keras_ae.models.loading import load_keras_model
    from keras_ae.training.run_record import read_run_record

    model = load_keras_model(model_path)
    record = read_run_record(model_path)
    card = {"source": str(model_path)}
    if record.metrics:
        card["training"] = {key: record.metrics[key] for key in CARD_TRAINING
                            if key in record.metrics}
        card["test"] = record.metrics.get("test")
        card["data"] = record.metrics.get("data")
    images = {}
    if quantize:
        images = calibration_images(model, record, data, calibration_count, verbose)
    return export_model(model, output, opset=opset, saved_model=saved_model, onnx=onnx,
                        card=card, preprocessing=record.preprocessing, source=model_path,
                        overwrite=overwrite, quantize=quantize,
                        max_mse_increase=max_mse_increase, **images)


def calibration_images(model, record, data, count, verbose=True):
    """``calibration_images`` (the first ``count`` training images of the
    pipeline's seeded shuffle: a random draw) and ``test_images`` (the test
    split) for an int8 export, as ``model`` takes its images."""
    from keras_ae.data.source import DataSource

    count = positive_int("calibration_count (--calibration-images)", count)
    if data is None:
        data = record.origin or DataSource()
    images = data.load(model_shape=tuple(model.input_shape[1:]),
                       recorded=record.preprocessing, verbose=verbose)
    if verbose:
        print(f"int8 calibration and test images: {images.source}")
    calibration, taken = [], 0
    for _, targets in images.train.as_numpy_iterator():
        calibration.append(targets[:count - taken])
        taken += len(calibration[-1])
        if taken == count:
            break
    return {"calibration_images": np.concatenate(calibration),
            "test_images": np.concatenate(
                [targets for _, targets in images.test.as_numpy_iterator()])}
