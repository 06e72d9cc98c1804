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

from keras_ae import registration
from keras_ae.public import lazy_exports

__version__ = "0.3.0"

# Module (in keras_ae) -> the public names it defines. The Keras parts load
# on first use, so that importing keras_ae in a serving process
# (keras_ae.runtime: NumPy, Pillow and onnxruntime) loads no TensorFlow.
_EXPORTS = {
    "models.builders": ("DECODERS", "INTENSITIES", "POOLINGS", "build_conv_autoencoder",
                        "build_dense_autoencoder", "code_floats"),
    "models.layers": ("AverageUnpooling2D", "MaxPoolingWithArgmax2D", "MaxUnpooling2D",
                      "PowerScaling"),
    "anomaly.detector": ("AnomalyDetector",),
    "runtime.onnx_autoencoder": ("OnnxAutoencoder",),
    "runtime.onnx_detector": ("OnnxAnomalyDetector",),
    "errors": ("InputError",),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

# `import keras_ae` is enough for keras.models.load_model to find the custom
# layers, in either import order, without loading TensorFlow here.
registration.register_when_keras_loads()
