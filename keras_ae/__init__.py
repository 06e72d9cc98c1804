"""keras_ae: autoencoders for Keras 3 on TensorFlow.

Builders return uncompiled Keras models made of a nested ``encoder`` and
``decoder``::

    import keras_ae
    model = keras_ae.build_conv_autoencoder((28, 28, 1), decoder="unpool")
    model.compile(optimizer="adam", loss="mse")
"""

import importlib

from keras_ae import registration as _registration

__version__ = "0.1.0"

# Public name -> module that defines it. The Keras parts load on first use so
# that a serving process (keras_ae.serving: numpy and onnxruntime only) never
# loads TensorFlow by importing this package.
_EXPORTS = {
    "DECODERS": "keras_ae.builders",
    "POOLINGS": "keras_ae.builders",
    "build_conv_autoencoder": "keras_ae.builders",
    "build_dense_autoencoder": "keras_ae.builders",
    "code_floats": "keras_ae.builders",
    "AverageUnpooling2D": "keras_ae.layers",
    "MaxPoolingWithArgmax2D": "keras_ae.layers",
    "MaxUnpooling2D": "keras_ae.layers",
    "PowerScaling": "keras_ae.layers",
    "INTENSITIES": "keras_ae.builders",
    "AnomalyDetector": "keras_ae.anomaly",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keras_ae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


# `import keras_ae` is enough for keras.models.load_model to find the custom
# layers, in either import order, without loading TensorFlow here.
_registration.register_when_keras_loads()
