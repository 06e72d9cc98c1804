"""Output sizes of convolutions, transposed convolutions and pooling.

The lecture formula for a convolution over ``W`` pixels with a kernel of
``F``, zero padding ``P`` on each side and stride ``S`` is::

    out = (W - F + 2P) / S + 1        (rounded down)

Keras names its two paddings instead of giving ``P``: ``"valid"`` is
``P = 0``; ``"same"`` pads just enough that ``out = ceil(W / S)``. Every
function here accepts either an integer ``P`` or one of those names, and
pooling follows the same rules as convolution.

Example:

>>> conv_output_size(28, kernel_size=3, stride=1, padding=1)
28
>>> conv_output_size(29, kernel_size=2, stride=2, padding="same")
15
>>> conv_transpose_output_size(7, kernel_size=2, stride=2)
14
"""

import math

from keras_ae.errors import positive_int
from keras_ae.errors import InputError

PADDINGS = ("valid", "same")


def padding_name(padding):
    """Keras' ``"same"``/``"valid"``, from any case (TF spells them upper-case).

    Raises:
        ValueError: for anything else, naming what was given.
    """
    if not isinstance(padding, str) or padding.lower() not in PADDINGS:
        raise InputError(
            f"padding must be one of {PADDINGS} (any case), got {padding!r}.")
    return padding.lower()


def _check_padding(padding):
    """A padding name (see ``padding_name``) or a non-negative integer ``P``."""
    if isinstance(padding, str):
        return padding_name(padding)
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise InputError(
            f"padding must be one of {PADDINGS} or a non-negative integer, "
            f"got {padding!r}."
        )
    return padding


def conv_output_size(size, kernel_size, stride=1, padding="valid", dilation=1):
    """Output length of a convolution (or pooling) along one axis.

    Args:
        size: input length ``W``.
        kernel_size: kernel (or pool window) length ``F``.
        stride: step ``S``.
        padding: ``"valid"``, ``"same"`` (Keras' names) or an integer ``P``
            of zeros added on each side.
        dilation: spacing between kernel taps; the kernel then spans
            ``(F - 1) * dilation + 1`` pixels.

    Returns:
        The output length, ``floor((W - F + 2P) / S) + 1``.

    Raises:
        ValueError: on non-positive sizes, an unknown padding, or a kernel
            larger than the padded input.

    Example:

    >>> conv_output_size(28, 5)
    24
    """
    for name, value in (("size", size), ("kernel_size", kernel_size),
                        ("stride", stride), ("dilation", dilation)):
        positive_int(name, value)
    padding = _check_padding(padding)
    span = (kernel_size - 1) * dilation + 1
    if padding == "same":
        return math.ceil(size / stride)
    pad = 0 if padding == "valid" else padding
    if size + 2 * pad < span:
        raise InputError(
            f"kernel spanning {span} pixels does not fit in an input of {size} "
            f"pixels with padding {pad} on each side."
        )
    return (size - span + 2 * pad) // stride + 1


def conv_transpose_output_size(size, kernel_size, stride=1, padding="valid",
                               output_padding=None, dilation=1):
    """Output length of a transposed convolution along one axis.

    Follows ``keras.layers.Conv2DTranspose``. Without ``output_padding`` the
    output is ``W * S`` for ``"same"`` and ``W * S + max(F - S, 0)`` for
    ``"valid"``; with it, ``(W - 1) * S + F - 2P + output_padding`` where
    ``P`` is ``F // 2`` for ``"same"`` and 0 for ``"valid"``.

    With an even kernel, ``"same"`` padding and an explicit
    ``output_padding``, Keras asks TensorFlow for this size and TensorFlow's
    kernel refuses it at run time; leave ``output_padding`` at ``None`` there.

    Args:
        size: input length.
        kernel_size: kernel length ``F``.
        stride: step ``S``.
        padding: ``"valid"`` or ``"same"``.
        output_padding: extra pixels added on one side, or ``None``.
        dilation: spacing between kernel taps.

    Returns:
        The output length.

    Example:

    >>> conv_transpose_output_size(7, kernel_size=2, stride=2, padding="same")
    14
    """
    for name, value in (("size", size), ("kernel_size", kernel_size),
                        ("stride", stride), ("dilation", dilation)):
        positive_int(name, value)
    padding = _check_padding(padding)
    if isinstance(padding, int):
        raise InputError(
            f"padding must be 'valid' or 'same' for a transposed convolution, "
            f"got {padding!r}."
        )
    span = (kernel_size - 1) * dilation + 1
    if output_padding is None:
        if padding == "valid":
            return size * stride + max(span - stride, 0)
        return size * stride
    pad = span // 2 if padding == "same" else 0
    return (size - 1) * stride + span - 2 * pad + output_padding


def pooled_sizes(size, stages, pool_size=2, padding="same"):
    """Lengths along one axis after each of ``stages`` poolings.

    Args:
        size: input length.
        stages: how many poolings follow one another.
        pool_size: window and stride of each pooling.
        padding: ``"same"`` (odd lengths round up) or ``"valid"``.

    Returns:
        A list of ``stages + 1`` lengths, the input's first.

    Example:

    >>> pooled_sizes(29, 2)
    [29, 15, 8]
    """
    sizes = [size]
    for _ in range(stages):
        sizes.append(conv_output_size(sizes[-1], pool_size, pool_size, padding))
    return sizes
