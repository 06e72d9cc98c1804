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

# Module (in this package) -> the public names it defines.
_EXPORTS = {
    "images": ("COLOR_MODES", "DEFAULT_RESIZE", "IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS",
               "RESIZE_MODES", "describe_size", "parse_image_size", "read_image"),
    "onnx_autoencoder": ("OnnxAutoencoder",),
    "onnx_detector": ("DETECTOR_FILE", "OnnxAnomalyDetector"),
    "onnx_files": ("MODEL_FILE", "metadata_of"),
    "overlays": ("save_overlay",),
    "predict": ("Predictions", "reconstruct_files", "score_files"),
    "pixels": ("add_noise", "per_image_mse", "to_unit_float"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
