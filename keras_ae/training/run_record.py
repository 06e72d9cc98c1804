"""The run record: what a training run or a search measured and where its
images came from, written by the library and read back through one function.

A run folder (``keras_ae.training.train``) or a search folder
(``keras_ae.tuning.search``, through ``keras-ae tune``) holds
``metrics.json``::

    {"test": {"mse": ..., "psnr": ..., "ssim": ..., "images": ...},
     "data": {"source": "images:/home/me/photos", "origin": {DataSource fields},
              "images": {"train": ..., "validation": ..., "test": ...}, ...},
     "preprocessing": {"image_size": [H, W], "resize": ..., "color_mode": ...},
     "parameters": ..., "code_floats": ..., "settings": {...}, ...}

``read_run_record(path)`` takes a model file or its folder and returns a
``RunRecord``: the settings, the metrics, the image recipe and the
``DataSource`` that reads the same images again (export's int8 calibration,
anomaly detection on the run's classes).
"""

import dataclasses
import json
import os
from pathlib import Path

from keras_ae import files
from keras_ae.errors import InputError

METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"


def data_record(data):
    """What ``metrics.json`` says of the data: where from (structured),
    counts, classes, sizing, skipped files."""
    return {
        "source": data.source,
        "origin": None if data.origin is None else data.origin.to_json(),
        "images": {"train": data.num_train, "validation": data.num_validation,
                   "test": data.num_test},
        "image_shape": list(data.image_shape),
        "class_names": None if data.class_names is None else list(data.class_names),
        "preprocessing": data.preprocessing,
        "skipped_images": len(data.skipped),
        "skipped_files": [{"path": path, "reason": reason}
                          for path, reason in data.skipped[:100]],
    }


def measure(model, data, folder, *, title, **fields):
    """Measures ``model`` on ``data``'s test split and writes the record.

    Writes ``reconstructions.png`` (the first test images and their
    reconstructions) and ``metrics.json``: the test metrics, the data
    record, the image recipe, parameters and code size, and ``fields``.

    Args:
        model: the trained ``keras.Model``, computing in float32 (as served).
        data: the run's ``ImageData``.
        folder: the run or search folder.
        title: the picture's title.
        **fields: more JSON-ready entries (settings, speed, ...).

    Returns:
        The record written, a dict.
    """
    import keras_ae
    from keras_ae.training import evaluation

    test = evaluation.evaluate(model, data.test)
    evaluation.save_reconstruction_grid(model, data.test, Path(folder) / "reconstructions.png",
                                        title=title)
    record = {"test": test, "data": data_record(data), "preprocessing": data.preprocessing,
              "parameters": model.count_params(), "code_floats": keras_ae.code_floats(model),
              **fields, "keras_ae_version": keras_ae.__version__}
    files.write_json(Path(folder) / METRICS_FILE, record)
    return record


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What a run or search folder recorded (empty where it recorded nothing).

    Attributes:
        folder: the folder, or ``None`` for a model file with no record.
        settings: what was asked for (``run.json``, or ``metrics.json``'s
            ``settings``).
        metrics: ``metrics.json``.
        origin: the ``keras_ae.data.DataSource`` of its images, or ``None``.
        preprocessing: the image recipe its images were read with, or ``None``.
    """

    folder: Path | None
    settings: dict
    metrics: dict
    origin: object
    preprocessing: dict | None

    @property
    def normal_classes(self):
        """The classes the model was trained on, or ``None`` for all."""
        classes = self.settings.get("normal_classes")
        return None if classes is None else list(classes)


def read_run_record(path):
    """The record beside a ``.keras`` model (or in a run folder).

    Args:
        path: a model file (its folder is read) or a run or search folder.

    Returns:
        A ``RunRecord``; an empty one (``folder=None``) where the folder
        holds no ``metrics.json`` nor ``run.json`` (a model from elsewhere).

    Raises:
        InputError: a record that is not JSON.
    """
    folder = Path(path) if os.path.isdir(path) else Path(path).parent
    metrics, settings = _json(folder / METRICS_FILE), _json(folder / RUN_FILE)
    if not metrics and not settings:
        return RunRecord(None, {}, {}, None, None)
    settings = {**(metrics.get("settings") or {}), **settings}
    return RunRecord(folder, settings, metrics, _origin(metrics, settings),
                     metrics.get("preprocessing") or settings.get("preprocessing"))


def _json(path):
    if not path.exists():
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not the JSON keras_ae wrote: {error}") from None


def _origin(metrics, settings):
    from keras_ae.data.source import DataSource

    recorded = (metrics.get("data") or {}).get("origin") or settings.get("data")
    # keras_ae 0.1 kept only display text (read no more since 0.3: CHANGELOG.md)
    return DataSource.from_json(recorded) if isinstance(recorded, dict) else None
