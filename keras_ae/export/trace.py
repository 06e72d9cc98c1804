"""Layers traced into ONNX in place of Keras' own, for a faster graph.

``for_onnx(model)`` is a copy of a model, same weights, in which layers that
tf2onnx would turn into a slow ONNX graph are replaced by layers computing
the same thing another way; ``keras_ae.export.exporter`` traces that copy and checks
every file it writes against the original model (``PARITY_TOLERANCE``), so
a replacement that computed anything else would fail the export. The
replacements are never saved.

- ``StaticNearestUpSampling2D``: nearest ``UpSampling2D`` as one ``Resize``.
- ``PixelShuffleConv2DTranspose``: a ``Conv2DTranspose`` whose kernel equals
  its stride (the ``"transpose"`` decoder's kernel 2, stride 2) as a 1x1
  convolution to ``kernel * kernel * filters`` channels, the activation,
  then a pixel shuffle (reshape, transpose, reshape). onnxruntime runs
  ``ConvTranspose`` through a slow generic path and has no integer kernel
  for it, so an int8 graph would convert to float and back around it; a
  convolution and a shuffle stay in int8 (``keras_ae.export.quantize``).
"""

import keras
import tensorflow as tf

from keras_ae.models import facts as model_facts
from keras_ae.models.loading import rebuilt


@keras.saving.register_keras_serializable(package="keras_ae")
class StaticNearestUpSampling2D(keras.layers.UpSampling2D):
    """``UpSampling2D(interpolation="nearest")`` traced as one resize op.

    Keras traces nearest upsampling as ``repeat`` twice, which tf2onnx turns
    into Tile, Reshape and Transpose nodes plus shape arithmetic; at a static
    size this layer's ``ResizeNearestNeighbor`` becomes a single ONNX
    ``Resize``. Same output, bit for bit (the export's parity check compares
    with the original model); used only for the ONNX trace.
    """

    def call(self, inputs):
        height, width = inputs.shape[1:3]
        if (self.interpolation != "nearest" or self.data_format != "channels_last"
                or height is None or width is None):
            return super().call(inputs)
        return tf.raw_ops.ResizeNearestNeighbor(
            images=inputs, size=[height * self.size[0], width * self.size[1]],
            align_corners=False, half_pixel_centers=False)


@keras.saving.register_keras_serializable(package="keras_ae")
class PixelShuffleConv2DTranspose(keras.layers.Conv2DTranspose):
    """``Conv2DTranspose`` with ``kernel_size == strides`` traced as a 1x1
    convolution and a pixel shuffle.

    With kernel equal to stride the windows do not overlap: output pixel
    ``(h * s + i, w * s + j)`` is ``kernel[i, j]`` applied to input pixel
    ``(h, w)``. So one 1x1 convolution to ``s * s * filters`` channels
    computes every output pixel, and reshape-transpose-reshape puts each
    where it belongs. The activation is applied before the shuffle (it is
    elementwise), so that the convolution and its ReLU fuse. Layers with
    other settings fall back to ``Conv2DTranspose``. Used only for the ONNX
    trace.
    """

    def call(self, inputs):
        kernel_h, kernel_w = self.kernel_size
        height, width, channels = inputs.shape[1:]
        if (tuple(self.strides) != (kernel_h, kernel_w) or self.padding != "valid"
                or self.data_format != "channels_last"
                or tuple(self.dilation_rate) != (1, 1)
                or None in (height, width, channels)):
            return super().call(inputs)
        filters = self.filters
        # kernel (kh, kw, filters, in) -> (1, 1, in, kh * kw * filters),
        # output channel (i * kw + j) * filters + c
        kernel = tf.reshape(tf.transpose(self.kernel, (3, 0, 1, 2)),
                            (1, 1, channels, kernel_h * kernel_w * filters))
        x = tf.nn.conv2d(inputs, kernel, strides=1, padding="VALID")
        if self.use_bias:
            x = x + tf.tile(self.bias, [kernel_h * kernel_w])
        x = self.activation(x)
        x = tf.reshape(x, (-1, height, width, kernel_h, kernel_w, filters))
        x = tf.transpose(x, (0, 1, 3, 2, 4, 5))
        return tf.reshape(x, (-1, height * kernel_h, width * kernel_w, filters))


# Keras layer -> its ONNX-trace replacement (exact classes: subclasses of
# these, e.g. keras_ae's own, are left as they are)
REPLACEMENTS = {
    "UpSampling2D": StaticNearestUpSampling2D,
    "Conv2DTranspose": PixelShuffleConv2DTranspose,
}


def for_onnx(model):
    """``model`` with the layers of ``REPLACEMENTS`` replaced (a copy, same
    weights), or ``model`` itself if it has none."""
    if not any(type(layer).__name__ in REPLACEMENTS
               and type(layer).__module__.startswith("keras.")
               for layer in model_facts.all_layers(model)):
        return model
    return rebuilt(model, _replacement)


def _replacement(config):
    """A serialized Keras layer of ``REPLACEMENTS`` made its replacement."""
    layer = REPLACEMENTS.get(config.get("class_name"))
    if layer is None or config.get("module") != "keras.layers":
        return None
    return {**config, "module": __name__, "class_name": layer.__name__,
            "registered_name": f"keras_ae>{layer.__name__}"}
