"""keras_ae.models.shapes against the shapes Keras layers actually produce."""

import itertools

import numpy as np
import pytest

import keras
from keras_ae.models import shapes


def produced(layer, height, width, padding=0):
    """(H', W') of ``layer`` run on a real (1, H, W, 1) batch."""
    x = np.zeros((1, height, width, 1), "float32")
    if padding:
        x = keras.layers.ZeroPadding2D(padding)(x)
    return tuple(np.asarray(layer(x)).shape[1:3])


CONV_GRID = list(itertools.product(
    range(1, 10),          # input size
    range(1, 5),           # kernel
    range(1, 4),           # stride
    ["valid", "same", 1, 2],  # Keras paddings and explicit P
))


@pytest.mark.parametrize("kernel,stride,padding", sorted(
    {(k, s, p) for _, k, s, p in CONV_GRID}, key=str))
def test_conv_output_size_matches_conv2d(kernel, stride, padding):
    for size in range(1, 10):
        height, width = size, size + 2  # two sizes per run, one per axis
        pad_name = padding if isinstance(padding, str) else "valid"
        explicit = 0 if isinstance(padding, str) else padding
        if height + 2 * explicit < kernel and pad_name == "valid":
            with pytest.raises(ValueError, match="does not fit"):
                shapes.conv_output_size(height, kernel, stride, padding)
            continue
        layer = keras.layers.Conv2D(1, kernel, strides=stride, padding=pad_name)
        expected = produced(layer, height, width, explicit)
        assert (shapes.conv_output_size(height, kernel, stride, padding),
                shapes.conv_output_size(width, kernel, stride, padding)) == expected


@pytest.mark.parametrize("dilation,padding", itertools.product([2, 3], ["valid", "same"]))
def test_conv_output_size_with_dilation(dilation, padding):
    for size, kernel in itertools.product(range(7, 12), range(2, 4)):
        layer = keras.layers.Conv2D(1, kernel, padding=padding, dilation_rate=dilation)
        expected = produced(layer, size, size + 1)
        assert (shapes.conv_output_size(size, kernel, 1, padding, dilation),
                shapes.conv_output_size(size + 1, kernel, 1, padding, dilation)) == expected


@pytest.mark.parametrize("pool,stride,padding", itertools.product(
    [2, 3], [1, 2, 3], ["valid", "same"]))
def test_pooling_follows_the_same_formula(pool, stride, padding):
    for size in range(pool, 12):
        layer = keras.layers.MaxPooling2D(pool, strides=stride, padding=padding)
        assert produced(layer, size, size + 1) == (
            shapes.conv_output_size(size, pool, stride, padding),
            shapes.conv_output_size(size + 1, pool, stride, padding))


@pytest.mark.parametrize("kernel,stride,padding", itertools.product(
    range(1, 5), range(1, 4), ["valid", "same"]))
def test_conv_transpose_output_size_matches_conv2dtranspose(kernel, stride, padding):
    for size in range(1, 7):
        for output_padding in [None, *range(stride)]:
            layer = keras.layers.Conv2DTranspose(
                1, kernel, strides=stride, padding=padding,
                output_padding=output_padding)
            try:
                expected = produced(layer, size, size + 1)
            except Exception:
                # TensorFlow refuses the size Keras asks for in exactly this
                # case (see the docstring); nothing is produced to compare.
                assert (kernel % 2 == 0 and padding == "same"
                        and output_padding is not None)
                continue
            assert (shapes.conv_transpose_output_size(
                        size, kernel, stride, padding, output_padding),
                    shapes.conv_transpose_output_size(
                        size + 1, kernel, stride, padding, output_padding)) == expected


def test_lecture_formula_examples():
    # (W - F + 2P) / S + 1
    assert shapes.conv_output_size(32, 5, 1, 2) == 32
    assert shapes.conv_output_size(227, 11, 4, 0) == 55
    assert shapes.conv_output_size(7, 3, 2, 1) == 4


def test_pooled_sizes():
    assert shapes.pooled_sizes(28, 2) == [28, 14, 7]
    assert shapes.pooled_sizes(45, 3) == [45, 23, 12, 6]
    assert shapes.pooled_sizes(9, 2, padding="valid") == [9, 4, 2]


@pytest.mark.parametrize("call,words", [
    (lambda: shapes.conv_output_size(0, 3), "size must be a positive integer, got 0"),
    (lambda: shapes.conv_output_size(5, 3, stride=0), "stride must be a positive integer"),
    (lambda: shapes.conv_output_size(5, 3, padding="full"), "padding must be one of"),
    (lambda: shapes.conv_output_size(5, 3, padding=-1), "padding must be one of"),
    (lambda: shapes.conv_output_size(2, 5), "does not fit"),
    (lambda: shapes.conv_transpose_output_size(5, 3, padding=1), "'valid' or 'same'"),
])
def test_errors(call, words):
    with pytest.raises(ValueError, match=words):
        call()
