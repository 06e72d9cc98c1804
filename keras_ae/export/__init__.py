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

# Module (in this package) -> the public names it defines.
_EXPORTS = {
    "exporter": ("DEFAULT_OPSET", "ExportParityError", "MODEL_CARD_FILE", "PARITY_TOLERANCE",
                 "export_model", "export_onnx", "export_saved_model"),
    "quantize": ("DEFAULT_CALIBRATION_IMAGES", "DEFAULT_MAX_MSE_INCREASE",
                 "QuantizationRefused", "RECIPE", "int8_path", "quantize_onnx"),
    "detector_export": ("export_detector",),
    "trained": ("calibration_images", "export_trained"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
