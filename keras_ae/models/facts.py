"""What an autoencoder is made of: its image shape, its nested encoder and
decoder, the kinds of its decoder and pooling.

``describe`` gives the facts an export records (in ONNX metadata and the
model card) and serving reads back; the other functions answer the
questions export and the command line ask of a model.
"""

import math

import keras

from keras_ae.errors import InputError
from keras_ae.models.layers import (AverageUnpooling2D, MaxPoolingWithArgmax2D,
                             MaxUnpooling2D)


def describe(model):
    """What an autoencoder takes and gives: the facts its exports record.

    Args:
        model: a ``keras.Model`` taking images ``(batch, H, W, C)`` and
            returning images of the same shape; from the keras_ae builders it
            also has nested ``encoder`` and ``decoder`` models.

    Returns:
        A dict: ``name``, ``input_shape`` ``[H, W, C]``, ``code_shape`` and
        ``code_size`` (``None`` without an ``encoder``), ``decoder`` (kind:
        ``"transpose"``, ``"upsample"``, ``"unpool"``, ``"dense"`` or
        ``"custom"``), ``pooling`` (``"max"``, ``"average"`` or ``None``
        where the model does not pool), ``decoder_runs_alone``,
        ``parameters`` and ``value_range`` ``[0, 1]``.

    Raises:
        ValueError: for a model that is not an image-to-image autoencoder.

    Example:

    >>> describe(keras_ae.build_conv_autoencoder())["code_shape"]
    [7, 7, 4]
    """
    input_shape = image_input_shape(model)
    encoder, decoder = parts(model)
    code_shape = (None if encoder is None
                  else [int(d) for d in encoder.outputs[0].shape[1:]])
    return {
        "name": model.name,
        "input_shape": list(input_shape),
        "code_shape": code_shape,
        "code_size": None if code_shape is None else math.prod(code_shape),
        "decoder": decoder_kind(model),
        "pooling": pooling_kind(model),
        "decoder_runs_alone": decoder is not None and len(decoder.inputs) == 1,
        "parameters": int(model.count_params()),
        "value_range": [0, 1],
    }


def image_input_shape(model):
    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a keras.Model, got {type(model).__name__}.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(
            f"expected an autoencoder with one image input and one image output; "
            f"{model.name} has {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs.")
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or None in shape:
        raise InputError(
            f"expected images of a fixed shape (H, W, C); {model.name} takes "
            f"{(None, *shape)}.")
    out = tuple(model.outputs[0].shape[1:])
    if out != shape:
        raise InputError(
            f"expected an output of the input's shape {shape}; {model.name} "
            f"returns {out}.")
    return shape


def parts(model):
    """The nested ``encoder`` and ``decoder`` models, or ``(None, None)``."""
    names = {layer.name: layer for layer in model.layers}
    encoder, decoder = names.get("encoder"), names.get("decoder")
    if isinstance(encoder, keras.Model) and isinstance(decoder, keras.Model):
        return encoder, decoder
    return None, None


def all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


def decoder_kind(model):
    kinds = {type(layer) for layer in all_layers(model)}
    if kinds & {MaxUnpooling2D, AverageUnpooling2D}:
        return "unpool"
    if keras.layers.Conv2DTranspose in kinds:
        return "transpose"
    if keras.layers.UpSampling2D in kinds:
        return "upsample"
    if not kinds & {keras.layers.Conv2D, keras.layers.Conv2DTranspose}:
        return "dense" if keras.layers.Dense in kinds else "custom"
    return "custom"


def pooling_kind(model):
    kinds = {type(layer) for layer in all_layers(model)}
    if keras.layers.AveragePooling2D in kinds:
        return "average"
    if kinds & {keras.layers.MaxPooling2D, MaxPoolingWithArgmax2D}:
        return "max"
    return None


def unpool_layers(model):
    return [layer for layer in all_layers(model)
            if isinstance(layer, MaxUnpooling2D)]
