"""keras_ae: autoencoders for Keras 3 on TensorFlow.

Builders return uncompiled Keras models made of a nested ``encoder`` and
``decoder``::

    import keras_ae
    model = keras_ae.build_conv_autoencoder((28, 28, 1), decoder="unpool")
    model.compile(optimizer="adam", loss="mse")

The package is a house with rooms by job (``docs/architecture.md``):
``runtime`` (serving, no TensorFlow), ``models``, ``data``, ``training``,
``tuning``, ``export``, ``codes``, ``anomaly`` and ``cli`` on top, each
importing only from the rooms below it.
"""

from keras_ae import _moved, registration
from keras_ae.public import lazy_exports

__version__ = "0.2.0"

# Public name -> the module (in keras_ae) that defines it. The Keras parts
# load on first use, so that importing keras_ae in a serving process
# (keras_ae.runtime: NumPy, Pillow and onnxruntime) loads no TensorFlow.
_EXPORTS = {
    "DECODERS": "models.builders",
    "POOLINGS": "models.builders",
    "INTENSITIES": "models.builders",
    "build_conv_autoencoder": "models.builders",
    "build_dense_autoencoder": "models.builders",
    "code_floats": "models.builders",
    "AverageUnpooling2D": "models.layers",
    "MaxPoolingWithArgmax2D": "models.layers",
    "MaxUnpooling2D": "models.layers",
    "PowerScaling": "models.layers",
    "AnomalyDetector": "anomaly.detector",
    "OnnxAutoencoder": "runtime.onnx_autoencoder",
    "OnnxAnomalyDetector": "runtime.onnx_detector",
    "InputError": "errors",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

# `import keras_ae` is enough for keras.models.load_model to find the custom
# layers, in either import order, without loading TensorFlow here.
registration.register_when_keras_loads()
_moved.install()
