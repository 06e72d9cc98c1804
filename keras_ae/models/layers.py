"""Max pooling that remembers where the maxima were, and the two unpoolings.

``MaxPoolingWithArgmax2D`` pools like ``keras.layers.MaxPooling2D`` and also
returns the flat position of each maximum. ``MaxUnpooling2D`` puts values
back at those positions and leaves every other pixel at zero, which is how a
SegNet-style decoder mirrors the encoder's pooling. ``AverageUnpooling2D``
mirrors average pooling: it copies each value into its window.

All three layers work on NHWC tensors with a dynamic batch size, inside
``tf.function`` and under XLA (``jit_compile=True``), and are registered for
``.keras`` serialization.

Positions follow ``tf.nn.max_pool_with_argmax(include_batch_in_index=False)``:
within one sample, the maximum at row ``y``, column ``x``, channel ``c`` of an
``H x W x C`` input is stored as ``(y * W + x) * C + c``.

Example:

>>> import numpy as np
>>> pool = MaxPoolingWithArgmax2D(pool_size=2)
>>> unpool = MaxUnpooling2D(pool_size=2)
>>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
>>> pooled, argmax = pool(x)
>>> np.asarray(pooled)[0, :, :, 0].tolist()
[[5.0, 7.0], [13.0, 15.0]]
>>> np.asarray(unpool(pooled, argmax))[0, :, :, 0].tolist()
[[0.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 7.0], [0.0, 0.0, 0.0, 0.0], [0.0, 13.0, 0.0, 15.0]]
"""

import keras
import tensorflow as tf

from keras_ae import compat
from keras_ae.models import shapes
from keras_ae.errors import InputError

def _pair(value, name):
    """``2`` -> ``(2, 2)``; ``(2, 3)`` stays; anything else is an error."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2 or any(v < 1 for v in pair) or any(
            isinstance(v, bool) for v in value):
        raise InputError(
            f"{name} must be a positive integer or a pair of them, got {value!r}."
        )
    return pair


def _check_output_size(output_size):
    """An unpooling's ``output_size``: ``None`` or a pair of positive ints."""
    if output_size is None:
        return None
    output_size = tuple(output_size)
    if len(output_size) != 2 or any(
            not isinstance(s, int) or isinstance(s, bool) or s < 1
            for s in output_size):
        raise InputError(
            f"output_size must be a pair of positive integers (H, W), "
            f"got {output_size!r}.")
    return output_size


def _given_size(output_size, axis, pooled, window, stride, padding, pooling):
    """``output_size[axis]``, if pooling it gives ``pooled`` back."""
    size = output_size[axis]
    if pooled is not None and shapes.conv_output_size(
            size, window, stride, padding) != pooled:
        raise InputError(
            f"output_size={output_size} cannot have been pooled to {pooled} "
            f"along axis {axis + 1} with {pooling}.")
    return size


def _same_padding(size, window, stride):
    """Padding before and after that TF's ``SAME`` adds along one axis."""
    out = -(-size // stride)
    total = (out - 1) * stride + window - size
    total = max(total, 0) if isinstance(total, int) else tf.maximum(total, 0)
    return total // 2, total - total // 2


def max_pool_with_argmax_portable(inputs, pool_size, strides, padding):
    """``tf.nn.max_pool_with_argmax`` built from XLA-supported ops.

    Gives the same values and the same indices as the native op, ties
    included: the first maximum in row-major order within the window wins.
    The gradient reaches the input at the argmax positions, as the native
    op's does.

    Args:
        inputs: float tensor ``(batch, H, W, C)``.
        pool_size: ``(kh, kw)``.
        strides: ``(sh, sw)``.
        padding: ``"same"`` or ``"valid"``.

    Returns:
        ``(pooled, argmax)`` with ``argmax`` int64 in the flat
        ``(y * W + x) * C + c`` form.
    """
    (kh, kw), (sh, sw) = pool_size, strides
    dynamic = tf.shape(inputs, out_type=tf.int64)
    batch = dynamic[0]
    height, width, channels = (
        inputs.shape[i] if inputs.shape[i] is not None else dynamic[i]
        for i in (1, 2, 3))
    if padding == "same":
        out_h, out_w = -(-height // sh), -(-width // sw)
        top, bottom = _same_padding(height, kh, sh)
        left, right = _same_padding(width, kw, sw)
        # -inf, not zero: a window of negative values must keep its maximum.
        padded = tf.pad(inputs, [[0, 0], [top, bottom], [left, right], [0, 0]],
                        constant_values=float("-inf"))
    else:
        out_h, out_w = (height - kh) // sh + 1, (width - kw) // sw + 1
        top = left = 0
        padded = inputs
    # One strided slice per window offset, stacked in row-major order so that
    # argmax's first-wins rule matches the native kernel. (extract_patches
    # would be shorter, but XLA lowers it to a convolution, where -inf * 0
    # turns neighbouring values into NaN.)
    windows = tf.stack([
        padded[:, dy:dy + (out_h - 1) * sh + 1:sh, dx:dx + (out_w - 1) * sw + 1:sw]
        for dy in range(kh) for dx in range(kw)
    ], axis=3)
    offset = tf.argmax(windows, axis=3, output_type=tf.int64)
    rows = (tf.range(out_h, dtype=tf.int64)[:, None, None] * sh - top) + offset // kw
    cols = (tf.range(out_w, dtype=tf.int64)[None, :, None] * sw - left) + offset % kw
    argmax = (rows * width + cols) * channels + tf.range(channels, dtype=tf.int64)
    # Gathering by argmax (rather than a second max) keeps values, indices
    # and gradient routing consistent with each other.
    flat_inputs = tf.reshape(inputs, [batch, -1])
    flat_argmax = tf.reshape(argmax, [batch, -1])
    pooled = tf.reshape(tf.gather(flat_inputs, flat_argmax, batch_dims=1),
                        tf.shape(argmax))
    return pooled, argmax


class _PoolingWindow(keras.layers.Layer):
    """What max pooling and its undoing share: a window, strides, padding."""

    def __init__(self, pool_size=2, strides=None, padding="same", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _pair(
            strides, "strides")
        self.padding = shapes.padding_name(padding)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, strides=self.strides,
                      padding=self.padding)
        return config


@keras.saving.register_keras_serializable(package="keras_ae")
class MaxPoolingWithArgmax2D(_PoolingWindow):
    """Max pooling that also returns where each maximum was.

    Args:
        pool_size: window size, an int or ``(height, width)``. Default 2.
        strides: step, an int or a pair; ``None`` means ``pool_size``.
        padding: ``"same"`` (odd sizes round up) or ``"valid"``; TF's
            upper-case spellings are accepted too.

    Input shape:
        4D float tensor ``(batch, H, W, C)``.

    Output shape:
        A pair ``(pooled, argmax)``, both ``(batch, H', W', C)`` where ``H'``
        is ``ceil(H / sh)`` for ``"same"`` and ``floor((H - kh) / sh) + 1`` for
        ``"valid"``. ``pooled`` has the layer's compute dtype; ``argmax`` is
        int64 and holds ``(y * W + x) * C + c`` within each sample, as
        ``tf.nn.max_pool_with_argmax(include_batch_in_index=False)`` does.

    Limits:
        Ties go to the first maximum in row-major order within the window.
        Outside XLA this is the native ``tf.nn.max_pool_with_argmax``; under
        XLA it is an exact equivalent built from strided slices.

    Example:

    >>> pooled, argmax = MaxPoolingWithArgmax2D()(np.ones((2, 5, 5, 3), "float32"))
    >>> tuple(pooled.shape), str(argmax.dtype)
    ((2, 3, 3, 3), "<dtype: 'int64'>")
    """

    def __init__(self, pool_size=2, strides=None, padding="same", **kwargs):
        super().__init__(pool_size, strides, padding, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        if compat.in_xla_context():
            return max_pool_with_argmax_portable(
                inputs, self.pool_size, self.strides, self.padding)
        return tf.nn.max_pool_with_argmax(
            inputs, ksize=self.pool_size, strides=self.strides,
            padding=self.padding.upper(), include_batch_in_index=False)

    def _pooled_shape(self, input_shape):
        batch, height, width, channels = input_shape
        out = [
            None if size is None else shapes.conv_output_size(
                size, window, stride, self.padding)
            for size, window, stride in zip(
                (height, width), self.pool_size, self.strides)
        ]
        return (batch, out[0], out[1], channels)

    def compute_output_spec(self, inputs):
        # Not compute_output_shape: Keras would then give both outputs the
        # float compute dtype, and the argmax would silently become float32.
        shape = self._pooled_shape(inputs.shape)
        return (keras.KerasTensor(shape, dtype=self.compute_dtype),
                keras.KerasTensor(shape, dtype="int64"))


@keras.saving.register_keras_serializable(package="keras_ae")
class MaxUnpooling2D(_PoolingWindow):
    """Puts pooled values back where max pooling found them; zeros elsewhere.

    Call it as ``layer(updates, mask)`` or
    ``layer(updates, mask, output_size=(H, W))``, with ``updates`` and ``mask``
    the two outputs of ``MaxPoolingWithArgmax2D`` (or of
    ``tf.nn.max_pool_with_argmax`` with ``include_batch_in_index=False``).
    The constructor and call follow tensorflow-addons' ``MaxUnpooling2D``, so
    code written for it runs unchanged.

    Args:
        pool_size: the window the pooling used, an int or a pair. Default 2.
        strides: the pooling's step; ``None`` means ``pool_size``.
        padding: the pooling's padding, ``"same"`` or ``"valid"`` (any case).

    Call arguments:
        updates: float tensor ``(batch, h, w, C)``, the pooled values.
        mask: integer tensor of the same shape, the argmax positions in the
            flat ``(y * W + x) * C + c`` form of the *unpooled* tensor.
        output_size: optional ``(H, W)`` of the tensor before pooling. Needed
            when pooling made the size ambiguous: ``"same"`` pooling by 2 takes
            both 29 and 30 rows to 15, and only ``output_size`` tells them
            apart (as in PyTorch's ``MaxUnpool2d``).

    Input shape:
        Two 4D tensors ``(batch, h, w, C)``.

    Output shape:
        ``(batch, H, W, C)``: ``output_size`` when given, otherwise
        ``(h * sh, w * sw)`` for ``"same"`` and
        ``((h - 1) * sh + kh, (w - 1) * sw + kw)`` for ``"valid"``.

    Limits:
        Positions that several windows picked (possible only when the window
        is larger than its stride) receive the sum of their values, as
        ``tf.scatter_nd`` does; exported to ONNX (opset 16 or later) they are
        summed as well. A mask with a position outside the output
        raises on CPU; on GPU such an update is dropped.

    Example:

    >>> updates = np.array([[[[5.0]]]], "float32")
    >>> mask = np.array([[[[3]]]], "int64")
    >>> np.asarray(MaxUnpooling2D()(updates, mask))[0, :, :, 0].tolist()
    [[0.0, 0.0], [0.0, 5.0]]
    """

    def _unpooled_size(self, pooled, axis, output_size):
        """Static output length along ``axis`` (0: rows, 1: columns)."""
        window, stride = self.pool_size[axis], self.strides[axis]
        if output_size is not None:
            return _given_size(output_size, axis, pooled, window, stride,
                               self.padding, f"pool_size={self.pool_size}, "
                               f"strides={self.strides}, padding={self.padding!r}")
        if pooled is None:
            return None
        if self.padding == "same":
            return pooled * stride
        return (pooled - 1) * stride + window

    def _output_shape(self, updates_shape, mask_shape, output_size):
        if len(updates_shape) != 4 or tuple(updates_shape) != tuple(mask_shape):
            raise InputError(
                "updates and mask must be 4D tensors of the same shape "
                f"(batch, height, width, channels), got {tuple(updates_shape)} "
                f"and {tuple(mask_shape)}.")
        output_size = _check_output_size(output_size)
        batch, height, width, channels = updates_shape
        return (batch,
                self._unpooled_size(height, 0, output_size),
                self._unpooled_size(width, 1, output_size),
                channels)

    def call(self, updates, mask, output_size=None):
        _, height, width, channels = self._output_shape(
            updates.shape, mask.shape, output_size)
        dynamic = tf.shape(updates, out_type=tf.int64)
        if height is None or width is None:
            height, width = (
                self._unpooled_size(dynamic[1], 0, None),
                self._unpooled_size(dynamic[2], 1, None))
        channels = dynamic[3] if channels is None else channels
        batch = dynamic[0]
        # One flat vector per sample: the mask already indexes it, so the
        # scatter needs only the sample number beside each position.
        flat_mask = tf.reshape(tf.cast(mask, tf.int64), [batch, -1])
        samples = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(flat_mask))
        indices = tf.stack([samples, flat_mask], axis=-1)
        # tensor_scatter_nd_add on zeros equals tf.scatter_nd, and tf2onnx
        # turns it into ONNX ScatterND with reduction="add": duplicates are
        # summed there too, where a plain ScatterND keeps only the last one.
        zeros = tf.zeros(
            tf.stack([batch, tf.cast(height * width * channels, tf.int64)]),
            updates.dtype)
        flat = tf.tensor_scatter_nd_add(
            zeros, indices, tf.reshape(updates, [batch, -1]))
        return tf.reshape(flat, [-1, height, width, channels])

    def compute_output_spec(self, updates, mask, output_size=None):
        shape = self._output_shape(updates.shape, mask.shape, output_size)
        return keras.KerasTensor(shape, dtype=updates.dtype)


@keras.saving.register_keras_serializable(package="keras_ae")
class AverageUnpooling2D(keras.layers.Layer):
    """Copies each pooled value into its whole window: average pooling undone.

    The lecture notes' average unpooling: the average of a window stands in
    for every pixel of it, so average-pooling the output gives the input back.
    Windows do not overlap (the step is the window), as in the encoder's
    ``keras.layers.AveragePooling2D(pool_size, padding=...)``.

    Args:
        pool_size: the pooling's window and step, an int or a pair. Default 2.
        padding: the pooling's padding, ``"same"`` or ``"valid"`` (any case).

    Call arguments:
        inputs: float tensor ``(batch, h, w, C)``, the pooled values.
        output_size: optional ``(H, W)`` of the tensor before pooling. Needed
            when pooling made the size ambiguous (``"same"`` pooling by 2 takes
            both 29 and 30 rows to 15) or, for ``"valid"``, dropped rows.

    Input shape:
        4D tensor ``(batch, h, w, C)``.

    Output shape:
        ``(batch, H, W, C)``: ``output_size`` when given, else
        ``(h * kh, w * kw)``.

    Limits:
        With ``"same"`` padding, a window that TF's pooling padded (the last
        one of an odd size, by 2) is copied only where it has pixels, exactly
        where the pooling averaged them. With ``"valid"``, the rows and
        columns the pooling dropped stay at zero.

    Example:

    >>> x = np.array([[[[1.0], [2.0]]]], "float32")  # 1 x 2
    >>> np.asarray(AverageUnpooling2D()(x))[0, :, :, 0].tolist()
    [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0]]
    >>> np.asarray(AverageUnpooling2D()(x, output_size=(1, 3)))[0, :, :, 0].tolist()
    [[1.0, 1.0, 2.0]]
    """

    def __init__(self, pool_size=2, padding="same", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size, "pool_size")
        self.padding = shapes.padding_name(padding)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _unpooled_size(self, pooled, axis, output_size):
        window = self.pool_size[axis]
        if output_size is None:
            return None if pooled is None else pooled * window
        return _given_size(output_size, axis, pooled, window, window,
                           self.padding, f"pool_size={self.pool_size}, "
                           f"padding={self.padding!r}")

    def _output_shape(self, input_shape, output_size):
        if len(input_shape) != 4:
            raise InputError(
                f"inputs must be a 4D tensor (batch, height, width, channels), "
                f"got shape {tuple(input_shape)}.")
        output_size = _check_output_size(output_size)
        batch, height, width, channels = input_shape
        return (batch, self._unpooled_size(height, 0, output_size),
                self._unpooled_size(width, 1, output_size), channels)

    def call(self, inputs, output_size=None):
        _, height, width, _ = self._output_shape(inputs.shape, output_size)
        x = keras.ops.repeat(inputs, self.pool_size[0], axis=1)
        x = keras.ops.repeat(x, self.pool_size[1], axis=2)
        if output_size is None:
            return x
        top, left = self._offset(height, 0), self._offset(width, 1)
        x = x[:, top:top + height, left:left + width]
        # "valid" pooling dropped the last rows and columns: zeros there
        missing_h, missing_w = height - x.shape[1], width - x.shape[2]
        if missing_h or missing_w:
            x = keras.ops.pad(x, [[0, 0], [0, missing_h], [0, missing_w], [0, 0]])
        return x

    def _offset(self, size, axis):
        """Rows (or columns) of padding TF's "same" pooling put before the
        first window: the copies start that far before the output."""
        if self.padding != "same":
            return 0
        window = self.pool_size[axis]
        return _same_padding(size, window, window)[0]

    def compute_output_spec(self, inputs, output_size=None):
        return keras.KerasTensor(self._output_shape(inputs.shape, output_size),
                                 dtype=inputs.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, padding=self.padding)
        return config


@keras.saving.register_keras_serializable(package="keras_ae")
class PowerScaling(keras.layers.Layer):
    """Raises pixel values to a power: ``x ** power``, elementwise.

    The conv builder's ``intensity="sqrt"`` puts one with ``power=0.5`` in
    front of the encoder and one with ``power=2`` after the decoder's
    sigmoid: the encoder sees square roots of pixels, which spread dark
    values apart and draw bright ones together (a variance-stabilising
    transform, as Anscombe's), and the model still returns pixels. Codes of
    such a model separate one class from others better (docs/benchmarks.md,
    anomaly detection).

    Args:
        power: the exponent, a number > 0.

    Input shape:
        Any; values must be >= 0 (images in [0, 1]); negative ones count as 0.

    Output shape:
        The input's.

    Example:

    >>> x = np.array([[0.0, 0.25, 1.0]], "float32")
    >>> np.asarray(PowerScaling(0.5)(x)).tolist()
    [[0.0, 0.5, 1.0]]
    """

    def __init__(self, power, **kwargs):
        super().__init__(**kwargs)
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not power > 0:
            raise InputError(f"power must be a number > 0, got {power!r}.")
        self.power = float(power)

    def call(self, inputs):
        return keras.ops.power(keras.ops.maximum(inputs, 0.0), self.power)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "power": self.power}
