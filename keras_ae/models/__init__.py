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

# Module (in this package) -> the public names it defines.
_EXPORTS = {
    "builders": ("DECODERS", "INTENSITIES", "POOLINGS", "build_conv_autoencoder",
                 "build_dense_autoencoder", "code_floats"),
    "facts": ("describe",),
    "layers": ("AverageUnpooling2D", "MaxPoolingWithArgmax2D", "MaxUnpooling2D",
               "PowerScaling"),
    "loading": ("as_float32", "load_keras_model", "load_model"),
    "shapes": ("conv_output_size", "conv_transpose_output_size", "pooled_sizes"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
