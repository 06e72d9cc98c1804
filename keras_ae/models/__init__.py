"""The autoencoders themselves: builders, the pooling and unpooling layers,
the conv size arithmetic, what a model is made of, and loading one.

``build_conv_autoencoder`` and ``build_dense_autoencoder`` return uncompiled
Keras models made of a nested ``encoder`` and ``decoder``; the layers are
registered for ``.keras`` files, so ``keras.models.load_model`` reads them
after ``import keras_ae``::

    from keras_ae.models import build_conv_autoencoder
    model = build_conv_autoencoder((28, 28, 1), decoder="unpool")
"""

from keras_ae.public import lazy_exports

# Public name -> the module (in this package) that defines it.
_EXPORTS = {
    "DECODERS": "builders",
    "INTENSITIES": "builders",
    "POOLINGS": "builders",
    "build_conv_autoencoder": "builders",
    "build_dense_autoencoder": "builders",
    "code_floats": "builders",
    "describe": "facts",
    "AverageUnpooling2D": "layers",
    "MaxPoolingWithArgmax2D": "layers",
    "MaxUnpooling2D": "layers",
    "PowerScaling": "layers",
    "as_float32": "loading",
    "load_keras_model": "loading",
    "load_model": "loading",
    "conv_output_size": "shapes",
    "conv_transpose_output_size": "shapes",
    "pooled_sizes": "shapes",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
