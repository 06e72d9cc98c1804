"""Serving without TensorFlow: the ONNX files' contract, the image recipe in
Pillow, and the two models a server runs.

The bottom of keras_ae: it imports NumPy, Pillow and onnxruntime, the shared
helpers (``keras_ae.errors``, ``keras_ae.files``, ``keras_ae.compat``), and
nothing else of keras_ae, so that the serving install (``pip install
keras_ae``, no TensorFlow) runs it. ``OnnxAutoencoder`` opens an exported
``model.onnx`` (with its encoder and decoder), ``OnnxAnomalyDetector`` an
exported ``detector.onnx``, ``read_image`` prepares a file the way training
did::

    from keras_ae.runtime import OnnxAutoencoder
    model = OnnxAutoencoder("exported/fashion_mnist_conv_transpose/model.onnx")
    errors = model.reconstruction_error(model.prepare(["photo.jpg"], resize=True))
"""

from keras_ae.public import lazy_exports

# Public name -> the module (in this package) that defines it.
_EXPORTS = {
    "DEFAULT_RESIZE": "images",
    "IMAGE_EXTENSIONS": "images",
    "MAX_IMAGE_PIXELS": "images",
    "RESIZE_MODES": "images",
    "COLOR_MODES": "images",
    "parse_image_size": "images",
    "read_image": "images",
    "describe_size": "images",
    "OnnxAutoencoder": "onnx_autoencoder",
    "DETECTOR_FILE": "onnx_detector",
    "OnnxAnomalyDetector": "onnx_detector",
    "MODEL_FILE": "onnx_files",
    "metadata_of": "onnx_files",
    "save_overlay": "overlays",
    "add_noise": "pixels",
    "per_image_mse": "pixels",
    "to_unit_float": "pixels",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
