"""Export to SavedModel and ONNX (float and int8), each file checked against
the Keras model, and the anomaly detector as one ONNX file.

``export_model(model, "exported/x")`` writes ``saved_model/``,
``model.onnx``, ``encoder.onnx``, ``decoder.onnx`` (where the decoder runs
alone), their int8 twins and ``model_card.json``; ``keras_ae.runtime``
serves them without TensorFlow::

    from keras_ae import export
    export.export_model(model, "exported/shoes", int8=True, calibration_images=images)
"""

from keras_ae.public import lazy_exports

# Public name -> the module (in this package) that defines it.
_EXPORTS = {
    "DEFAULT_OPSET": "exporter",
    "ExportParityError": "exporter",
    "MODEL_CARD_FILE": "exporter",
    "PARITY_TOLERANCE": "exporter",
    "export_model": "exporter",
    "export_onnx": "exporter",
    "export_saved_model": "exporter",
    "DEFAULT_CALIBRATION_IMAGES": "quantize",
    "DEFAULT_MAX_MSE_INCREASE": "quantize",
    "RECIPE": "quantize",
    "int8_path": "quantize",
    "QuantizationRefused": "quantize",
    "quantize_onnx": "quantize",
    "export_detector": "detector_export",
    "calibration_images": "trained",
    "export_trained": "trained",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
