"""Functional builders for dense and convolutional autoencoders.

Every builder returns an uncompiled ``keras.Model`` made of two nested
models, ``encoder`` (image to code) and ``decoder`` (code to image), so that
after training ``model.get_layer("encoder")`` turns images into codes. The
output is a sigmoid, since images are scaled to [0, 1]; train with MSE.

The convolutional decoder mirrors the encoder's stages, and its kind is
chosen by name (see ``DECODERS``):

- ``"transpose"``: a learned ``Conv2DTranspose`` (kernel 2, stride 2);
- ``"upsample"``: ``UpSampling2D`` (nearest neighbour), then a convolution;
- ``"unpool"``: the encoder's pooling undone, then a convolution. After max
  pooling (SegNet), ``MaxUnpooling2D`` puts each value back where the
  pooling found it and leaves the rest at zero; the encoder then also
  returns its argmax indices and the decoder takes them. After average
  pooling, ``AverageUnpooling2D`` copies each value into its window.

The encoder's pooling is chosen by name too (see ``POOLINGS``): ``"max"``
(the default) or ``"average"``.

Layers are named by stage: ``encoder_stage1_conv``, ``encoder_stage1_pool``,
``decoder_stage1_unpool``, ``decoder_stage1_conv``, ... Decoder stages are
numbered in the order they run, so ``decoder_stage1`` mirrors the deepest
encoder stage.
"""

import math

import keras

from keras_ae.models import shapes
from keras_ae.errors import positive_int
from keras_ae.errors import InputError
from keras_ae.models.layers import (AverageUnpooling2D, MaxPoolingWithArgmax2D,
                             MaxUnpooling2D, PowerScaling)

POOL = 2  # every stage halves height and width (odd sizes round up)


def _positive_ints(name, values, allow_empty):
    try:
        values = tuple(values)
    except TypeError:
        raise InputError(
            f"{name} must be a sequence of positive integers, got {values!r}."
        ) from None
    if not values and not allow_empty:
        raise InputError(f"{name} must not be empty, got {values!r}.")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1
           for v in values):
        raise InputError(
            f"{name} must be a sequence of positive integers, got {values!r}.")
    return values


def image_shape(input_shape):
    """``input_shape`` as ``(height, width, channels)`` of positive ints, or
    an ``InputError`` naming what was given."""
    shape = _positive_ints("input_shape", input_shape, allow_empty=False)
    if len(shape) != 3:
        raise InputError(
            f"input_shape must be (height, width, channels), got {input_shape!r}.")
    return shape


# --- dense -----------------------------------------------------------------

def build_dense_autoencoder(input_shape=(28, 28, 1), code_size=32,
                            hidden_units=(), name="dense_autoencoder"):
    """A multilayer-perceptron autoencoder.

    The encoder flattens the image, applies one ``Dense`` + ReLU layer per
    entry of ``hidden_units`` and a linear ``Dense`` to the code; the decoder
    mirrors it and ends in a sigmoid ``Dense`` reshaped to ``input_shape``.

    Args:
        input_shape: shape of one image (any rank), values in [0, 1].
        code_size: length of the code, the compressed representation.
        hidden_units: widths of the hidden layers between image and code,
            outermost first, e.g. ``(256, 128)``.
        name: name of the returned model.

    Returns:
        An uncompiled ``keras.Model`` with nested models ``encoder`` (image to
        a ``(code_size,)`` vector) and ``decoder`` (back to ``input_shape``).

    Raises:
        ValueError: for a non-positive size or an empty ``input_shape``.

    Example:

    >>> model = build_dense_autoencoder(code_size=32, hidden_units=(128,))
    >>> model.compile(optimizer="adam", loss="mse")
    >>> model.get_layer("encoder").output.shape
    (None, 32)
    """
    input_shape, code_size, hidden_units = check_dense_arguments(
        input_shape, code_size, hidden_units, name)
    pixels = math.prod(input_shape)

    image = keras.Input(input_shape, name="image")
    x = keras.layers.Flatten(name="encoder_flatten")(image)
    for i, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(units, activation="relu",
                               name=f"encoder_dense{i}")(x)
    code = keras.layers.Dense(code_size, name="encoder_code")(x)
    encoder = keras.Model(image, code, name="encoder")

    code_in = keras.Input((code_size,), name="code")
    x = code_in
    for i, units in enumerate(reversed(hidden_units), start=1):
        x = keras.layers.Dense(units, activation="relu",
                               name=f"decoder_dense{i}")(x)
    x = keras.layers.Dense(pixels, name="decoder_output_dense")(x)
    x = keras.layers.Reshape(input_shape, name="decoder_reshape")(x)
    decoder = keras.Model(code_in, _sigmoid_output(x), name="decoder")

    return _join(encoder, decoder, input_shape, name)


# --- convolutional ---------------------------------------------------------

def _transpose_stage(x, stage, filters, indices, size):
    del indices, size  # kernel 2, stride 2 undoes one pooling
    return keras.layers.Conv2DTranspose(
        filters, kernel_size=POOL, strides=POOL, activation="relu",
        name=f"decoder_stage{stage}_transpose")(x)


def _upsample_stage(x, stage, filters, indices, size):
    del filters, indices, size  # the stage's convolutions set the filters
    return keras.layers.UpSampling2D(POOL, interpolation="nearest",
                                     name=f"decoder_stage{stage}_upsample")(x)


def _unpool_stage(x, stage, filters, indices, size):
    del filters
    # output_size settles what "same" pooling made ambiguous (29 and 30 both
    # pool to 15), so no cropping is needed. No indices: average pooling.
    name = f"decoder_stage{stage}_unpool"
    if indices is None:
        return AverageUnpooling2D(POOL, name=name)(x, output_size=size)
    return MaxUnpooling2D(POOL, name=name)(x, indices, output_size=size)


# Each decoder kind is one function that undoes one pooling:
# (x, stage, filters, max pooling's argmax indices or None, (H, W) to reach) -> x.
# The stage's convolutions follow it (none after a transposed convolution
# unless convs_per_stage > 1: it is a learned convolution itself).
DECODERS = {
    "transpose": _transpose_stage,
    "upsample": _upsample_stage,
    "unpool": _unpool_stage,
}


def _max_pool_stage(x, stage):
    return keras.layers.MaxPooling2D(POOL, padding="same",
                                     name=f"encoder_stage{stage}_pool")(x)


def _average_pool_stage(x, stage):
    return keras.layers.AveragePooling2D(POOL, padding="same",
                                         name=f"encoder_stage{stage}_pool")(x)


# Each pooling kind is one function: (x, stage) -> x. Max pooling feeding an
# "unpool" decoder uses MaxPoolingWithArgmax2D instead, to keep its indices.
POOLINGS = {
    "max": _max_pool_stage,
    "average": _average_pool_stage,
}

# What the encoder sees of each pixel: the exponent of a PowerScaling layer
# before the encoder (its inverse follows the decoder), or None for pixels
# as they are.
INTENSITIES = {"linear": None, "sqrt": 0.5}


def _crop_to(x, size, stage):
    """Trims the extra row/column that doubling an odd-sized map adds."""
    extra_h, extra_w = x.shape[1] - size[0], x.shape[2] - size[1]
    if not extra_h and not extra_w:
        return x
    return keras.layers.Cropping2D(((0, extra_h), (0, extra_w)),
                                   name=f"decoder_stage{stage}_crop")(x)


def build_conv_autoencoder(input_shape=(28, 28, 1), filters=(32, 4),
                           decoder="transpose", kernel_size=3, code_size=None,
                           convs_per_stage=2, pooling="max", intensity="linear",
                           name=None):
    """A convolutional autoencoder with a mirrored decoder.

    Encoder: per entry of ``filters``, ``convs_per_stage`` ``Conv2D`` layers
    (same padding, ReLU) then 2x2 pooling (max or average), so the code of
    the default ``(32, 4)`` on 28x28 images is 7x7x4 = 196 floats (4x
    compression). The code is linear, as the dense builder's is: the
    convolution that makes it has no ReLU, which would zero about half its
    values. An optional
    ``code_size`` adds a linear ``Dense`` bottleneck instead. Decoder: one
    stage per encoder stage, of the kind named by ``decoder``, then a
    convolution with a sigmoid and as many channels as the input.

    The decoder is the encoder's mirror image: the stage that undoes encoder
    stage ``i`` maps ``filters[i]`` channels back to ``filters[i - 1]`` (the
    outermost to ``filters[0]``), so ``filters=(16, 4), convs_per_stage=1``
    runs 1->16->4 in the encoder and 4->16->16->1 in the decoder. That is also
    what each unpooling needs: the channel count its encoder stage pooled.

    The defaults were chosen on Fashion-MNIST, compiled with
    ``keras_ae.training.compile_autoencoder`` and trained 10 epochs at batch
    256 (docs/benchmarks.md, "Training"). ``filters=(16, 4),
    convs_per_stage=1`` is the smaller model of the TensorFlow tutorials.

    Any height and width of at least ``2 ** len(filters)`` comes back at its
    own size, odd ones included.

    Larger images keep the two default stages: the code stays at a quarter
    of the image's height and width with 4 channels, so colour images are
    compressed 12x at any size (1,024 floats at 64x64, 4,096 at 128x128).
    On colour photos they were compared with one stage more at the same
    code (``filters=(32, 64, 16)``) and with a code four times smaller
    (``filters=(32, 64, 4)``): docs/benchmarks.md, "Your own images"
    (``tools/benchmark_images.py``). Pass more stages, or ``code_size``,
    where a smaller code matters more than fidelity.

    Args:
        input_shape: ``(height, width, channels)`` of one image in [0, 1].
        filters: convolution filters of each encoder stage, outermost first.
        decoder: ``"transpose"``, ``"upsample"`` or ``"unpool"``.
        kernel_size: kernel of every convolution but the transposed ones.
        code_size: length of a dense code between encoder and decoder, or
            ``None`` to use the last feature map itself as the code.
        convs_per_stage: convolutions in each encoder and decoder stage.
        pooling: the encoder's pooling, ``"max"`` or ``"average"``; the
            ``"unpool"`` decoder undoes it in kind.
        intensity: what the encoder sees of each pixel: ``"linear"`` (the
            pixel) or ``"sqrt"`` (its square root, through a
            ``PowerScaling`` layer; the decoder's output is squared back, so
            the model still maps images to images). ``"sqrt"`` is the model
            anomaly detection recommends: its codes tell one class from
            others better (docs/benchmarks.md).
        name: name of the returned model; defaults to
            ``"conv_<decoder>_autoencoder"``, or
            ``"conv_<decoder>_average_autoencoder"`` with average pooling.

    Returns:
        An uncompiled ``keras.Model`` with nested models ``encoder`` and
        ``decoder``. With ``decoder="unpool"`` and max pooling the encoder
        returns ``[code, indices_stage1, ..., indices_stageN]`` and the
        decoder takes the same list.

    Raises:
        ValueError: for an unknown decoder or pooling, empty filters,
            non-positive sizes, or an input smaller than ``2 ** len(filters)``.

    Example:

    >>> model = build_conv_autoencoder((32, 32, 3), decoder="upsample")
    >>> model.compile(optimizer="adam", loss="mse")
    >>> model.output.shape
    (None, 32, 32, 3)
    """
    input_shape, filters, kernel_size, code_size, convs_per_stage = check_conv_arguments(
        input_shape, filters, decoder, kernel_size, code_size, convs_per_stage, pooling,
        intensity, name)

    heights = shapes.pooled_sizes(input_shape[0], len(filters), POOL)
    widths = shapes.pooled_sizes(input_shape[1], len(filters), POOL)
    sizes = list(zip(heights, widths))  # sizes[i]: input of encoder stage i+1
    with_indices = decoder == "unpool" and pooling == "max"

    power = INTENSITIES[intensity]
    encoder = _conv_encoder(input_shape, filters, kernel_size, convs_per_stage,
                            code_size, pooling, with_indices, power)
    decoder_model = _conv_decoder(encoder, input_shape[2], filters, kernel_size,
                                  convs_per_stage, sizes, decoder, code_size, power)
    default_name = (f"conv_{decoder}_autoencoder" if pooling == "max"
                    else f"conv_{decoder}_{pooling}_autoencoder")
    return _join(encoder, decoder_model, input_shape, name or default_name)


def _convs(x, prefix, filters, kernel_size, count, linear_last=False):
    """``count`` same-padded convolutions, ReLU but for a ``linear_last`` one:
    ``prefix_conv``, ``prefix_conv2``, ..."""
    for i in range(1, count + 1):
        linear = linear_last and i == count
        x = keras.layers.Conv2D(
            filters, kernel_size, padding="same",
            activation=None if linear else "relu",
            name=f"{prefix}_conv" if i == 1 else f"{prefix}_conv{i}")(x)
    return x


def check_conv_arguments(input_shape=(28, 28, 1), filters=(32, 4),
                         decoder="transpose", kernel_size=3, code_size=None,
                         convs_per_stage=2, pooling="max", intensity="linear",
                         name=None):
    """What ``build_conv_autoencoder`` refuses, refused the same way, with
    nothing built (a command checks its flags before it reads any data).

    Returns:
        ``(input_shape, filters, kernel_size, code_size, convs_per_stage)``
        as the builder uses them.

    Raises:
        InputError: as ``build_conv_autoencoder``.

    Example:

    >>> check_conv_arguments((28, 28, 1), filters=(8, 4))[:2]
    ((28, 28, 1), (8, 4))
    >>> check_conv_arguments((6, 6, 1), filters=(8, 4, 2))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_ae.errors.InputError: input_shape (6, 6, 1) is too small for 3 pooling stages: ...
    """
    if decoder not in DECODERS:
        raise InputError(
            f"decoder must be one of {sorted(DECODERS)}, got {decoder!r}.")
    if pooling not in POOLINGS:
        raise InputError(
            f"pooling must be one of {sorted(POOLINGS)}, got {pooling!r}.")
    if intensity not in INTENSITIES:
        raise InputError(
            f"intensity must be one of {sorted(INTENSITIES)}, got {intensity!r}.")
    input_shape = image_shape(input_shape)
    filters = _positive_ints("filters", filters, allow_empty=False)
    kernel_size = positive_int("kernel_size", kernel_size)
    convs_per_stage = positive_int("convs_per_stage", convs_per_stage)
    if code_size is not None:
        code_size = positive_int("code_size", code_size)
    smallest = POOL ** len(filters)
    if min(input_shape[:2]) < smallest:
        raise InputError(
            f"input_shape {input_shape} is too small for {len(filters)} "
            f"pooling stages: height and width must be at least {smallest}.")
    return input_shape, filters, kernel_size, code_size, convs_per_stage


def check_dense_arguments(input_shape=(28, 28, 1), code_size=32, hidden_units=(),
                          name="dense_autoencoder"):
    """What ``build_dense_autoencoder`` refuses, with nothing built.

    Returns:
        ``(input_shape, code_size, hidden_units)`` as the builder uses them.
    """
    return (_positive_ints("input_shape", input_shape, allow_empty=False),
            positive_int("code_size", code_size),
            _positive_ints("hidden_units", hidden_units, allow_empty=True))


def _conv_encoder(input_shape, filters, kernel_size, convs_per_stage, code_size,
                  pooling, with_indices, power=None):
    image = keras.Input(input_shape, name="image")
    x, indices = image, []
    if power is not None:
        x = PowerScaling(power, name="encoder_intensity")(x)
    for stage, n in enumerate(filters, start=1):
        # The code is linear, as the dense builder's is: a ReLU would zero
        # about half of its values. With a dense code, that Dense is linear.
        code_conv = stage == len(filters) and code_size is None
        x = _convs(x, f"encoder_stage{stage}", n, kernel_size, convs_per_stage,
                   linear_last=code_conv)
        if with_indices:
            x, argmax = MaxPoolingWithArgmax2D(
                POOL, name=f"encoder_stage{stage}_pool")(x)
            indices.append(argmax)
        else:
            x = POOLINGS[pooling](x, stage)
    if code_size is not None:
        x = keras.layers.Flatten(name="encoder_flatten")(x)
        x = keras.layers.Dense(code_size, name="encoder_code")(x)
    outputs = [x, *indices] if with_indices else x
    return keras.Model(image, outputs, name="encoder")


def _conv_decoder(encoder, channels, filters, kernel_size, convs_per_stage,
                  sizes, decoder, code_size, power=None):
    encoder_outputs = encoder.outputs
    code_in = keras.Input(encoder_outputs[0].shape[1:], name="code")
    index_inputs = [
        keras.Input(t.shape[1:], dtype="int64", name=f"indices_stage{i}")
        for i, t in enumerate(encoder_outputs[1:], start=1)
    ]
    x = code_in
    if code_size is not None:
        h, w = sizes[-1]
        x = keras.layers.Dense(h * w * filters[-1], activation="relu",
                               name="decoder_dense")(x)
        x = keras.layers.Reshape((h, w, filters[-1]), name="decoder_reshape")(x)

    unpool = bool(index_inputs)  # max unpooling: positions come along
    # a transposed convolution is the stage's first convolution
    convs = convs_per_stage - 1 if decoder == "transpose" else convs_per_stage
    depth = len(filters)
    for stage in range(1, depth + 1):
        level = depth - stage  # the encoder stage this one mirrors (0-based)
        out_filters = filters[level - 1] if level else filters[0]
        indices = index_inputs[level] if unpool else None
        x = DECODERS[decoder](x, stage, out_filters, indices, sizes[level])
        x = _crop_to(x, sizes[level], stage)
        x = _convs(x, f"decoder_stage{stage}", out_filters, kernel_size, convs)

    x = keras.layers.Conv2D(channels, kernel_size, padding="same",
                            name="decoder_output_conv")(x)
    inputs = [code_in, *index_inputs] if unpool else code_in
    x = _sigmoid_output(x)
    if power is not None:  # back to pixels; float32 as the sigmoid
        x = PowerScaling(1 / power, dtype="float32", name="decoder_intensity")(x)
    return keras.Model(inputs, x, name="decoder")


# --- shared ----------------------------------------------------------------

def code_floats(model):
    """Floats in one image's code: the encoder's first output, per image.

    Args:
        model: an autoencoder from ``build_dense_autoencoder`` or
            ``build_conv_autoencoder`` (a model with a nested ``encoder``).

    Returns:
        The code's length; an ``"unpool"`` decoder's argmax indices are
        not counted.

    Example:

    >>> code_floats(build_conv_autoencoder((28, 28, 1)))
    196
    """
    return math.prod(model.get_layer("encoder").outputs[0].shape[1:])


def _sigmoid_output(x):
    # float32 even under a mixed_float16 policy: the loss is computed on it.
    return keras.layers.Activation("sigmoid", dtype="float32",
                                   name="reconstruction")(x)


def _join(encoder, decoder, input_shape, name):
    image = keras.Input(input_shape, name="image")
    return keras.Model(image, decoder(encoder(image)), name=name)
