"""The module paths of keras_ae 0.1's flat layout, kept for one release.

keras_ae 0.1 was 41 modules side by side (``keras_ae.serving``,
``keras_ae.builders``, ...); they now live in subpackages by job. Importing
an old path still works and gives the new module, with a
``DeprecationWarning`` naming where it went. ``keras_ae.training``,
``keras_ae.data``, ``keras_ae.export`` and ``keras_ae.anomaly`` kept their
names as packages and need no alias. Saved models are unaffected: Keras
finds the layers by their registered names, which did not change.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# Old module -> where it lives now. To be removed in keras_ae 0.3.
MOVED = {
    "keras_ae.layers": "keras_ae.models.layers",
    "keras_ae.builders": "keras_ae.models.builders",
    "keras_ae.shapes": "keras_ae.models.shapes",
    "keras_ae.model_facts": "keras_ae.models.facts",
    "keras_ae.serving": "keras_ae.runtime.onnx_autoencoder",
    "keras_ae.serving_anomaly": "keras_ae.runtime.onnx_detector",
    "keras_ae.onnx_files": "keras_ae.runtime.onnx_files",
    "keras_ae.images": "keras_ae.runtime.images",
    "keras_ae.pixels": "keras_ae.runtime.pixels",
    "keras_ae.pipelines": "keras_ae.data.pipelines",
    "keras_ae.tfds_data": "keras_ae.data.tfds",
    "keras_ae.folders": "keras_ae.data.folders",
    "keras_ae.decoding": "keras_ae.data.decoding",
    "keras_ae.cluster": "keras_ae.training.multi_worker",
    "keras_ae.precision": "keras_ae.training.precision",
    "keras_ae.evaluation": "keras_ae.training.evaluation",
    "keras_ae.onnx_trace": "keras_ae.export.trace",
    "keras_ae.quantize": "keras_ae.export.quantize",
    "keras_ae.int8_graph": "keras_ae.export.int8_graph",
    "keras_ae.anomaly_export": "keras_ae.export.detector_export",
    "keras_ae.downstream": "keras_ae.codes",
    "keras_ae.generation": "keras_ae.codes.generation",
    "keras_ae.anomaly_scores": "keras_ae.anomaly.scores",
    "keras_ae.anomaly_options": "keras_ae.anomaly.options",
    "keras_ae.anomaly_pictures": "keras_ae.anomaly.pictures",
    "keras_ae.defects": "keras_ae.anomaly.defects",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers ``import keras_ae.<old>`` with the module's new home."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in keras_ae 0.3.",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass  # the new module ran when it was imported


def install():
    """Puts the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
