"""MaxPoolingWithArgmax2D and MaxUnpooling2D: hand-worked vectors, parity with
tf.nn.max_pool_with_argmax, gradients, XLA, dynamic batch, serialization."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_ae.models.layers import (
    AverageUnpooling2D,
    MaxPoolingWithArgmax2D,
    MaxUnpooling2D,
    max_pool_with_argmax_portable,
)


def image(rows):
    """A (1, H, W, 1) float32 batch from a list of rows."""
    return np.asarray(rows, "float32")[None, :, :, None]


def plane(tensor, sample=0, channel=0):
    return np.asarray(tensor)[sample, :, :, channel]


# --- hand-worked vectors ---------------------------------------------------

X4 = image([[1, 2, 0, 1],
            [3, 0, 5, 4],
            [0, 7, 1, 1],
            [2, 1, 9, 0]])


def test_pool_2x2_hand_worked():
    pooled, argmax = MaxPoolingWithArgmax2D()(X4)
    assert plane(pooled).tolist() == [[3, 5], [7, 9]]
    # (y * W + x) * C + c with W = 4, C = 1: (1,0)->4 (1,2)->6 (2,1)->9 (3,2)->14
    assert plane(argmax).tolist() == [[4, 6], [9, 14]]
    assert argmax.dtype == tf.int64


def test_unpool_2x2_hand_worked():
    updates = image([[3, 5], [7, 9]])
    mask = np.array([[4, 6], [9, 14]], "int64")[None, :, :, None]
    out = MaxUnpooling2D()(updates, mask)
    assert plane(out).tolist() == [[0, 0, 0, 0],
                                   [3, 0, 5, 0],
                                   [0, 7, 0, 0],
                                   [0, 0, 9, 0]]


def test_channels_are_interleaved_in_the_flat_index():
    x = np.zeros((1, 2, 2, 2), "float32")
    x[0, :, :, 0] = [[1, 4], [2, 3]]  # max 4 at (0, 1) -> (0*2+1)*2+0 = 2
    x[0, :, :, 1] = [[8, 5], [6, 7]]  # max 8 at (0, 0) -> 0*2+1 = 1
    pooled, argmax = MaxPoolingWithArgmax2D()(x)
    assert np.asarray(pooled).ravel().tolist() == [4, 8]
    assert np.asarray(argmax).ravel().tolist() == [2, 1]
    restored = np.asarray(MaxUnpooling2D()(pooled, argmax))
    expected = np.zeros_like(x)
    expected[0, 0, 1, 0], expected[0, 0, 0, 1] = 4, 8
    np.testing.assert_array_equal(restored, expected)


def test_same_padding_odd_size_needs_output_size():
    x = image([[1, 2, 3],
               [4, 5, 6],
               [7, 8, 9]])
    pooled, argmax = MaxPoolingWithArgmax2D()(x)
    assert plane(pooled).tolist() == [[5, 6], [8, 9]]
    assert plane(argmax).tolist() == [[4, 5], [7, 8]]
    restored = MaxUnpooling2D()(pooled, argmax, output_size=(3, 3))
    assert plane(restored).tolist() == [[0, 0, 0], [0, 5, 6], [0, 8, 9]]
    # Without output_size the layer assumes 4x4, where flat index 8 is (2, 0):
    # this is exactly the ambiguity output_size exists to settle.
    guessed = MaxUnpooling2D()(pooled, argmax)
    assert plane(guessed).shape == (4, 4)
    assert plane(guessed)[2, 0] == 9


def test_same_padding_keeps_the_maximum_of_negative_windows():
    x = -image([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    pooled, argmax = MaxPoolingWithArgmax2D()(x)
    # Padding must not win over negative values: -3 at (0,2), -9 alone at (2,2).
    assert plane(pooled).tolist() == [[-1, -3], [-7, -9]]
    assert plane(argmax).tolist() == [[0, 2], [6, 8]]


def test_window_larger_than_stride_valid_distinct_maxima():
    x = np.zeros((5, 5), "float32")
    x[0, 0], x[0, 4], x[4, 0], x[4, 4] = 10, 11, 12, 13
    pooled, argmax = MaxPoolingWithArgmax2D(3, strides=2, padding="valid")(image(x))
    assert plane(pooled).tolist() == [[10, 11], [12, 13]]
    assert plane(argmax).tolist() == [[0, 4], [20, 24]]
    restored = MaxUnpooling2D(3, strides=2, padding="valid")(pooled, argmax)
    np.testing.assert_array_equal(plane(restored), x)


def test_window_larger_than_stride_duplicates_are_summed():
    x = np.zeros((5, 5), "float32")
    x[2, 2] = 9  # inside all four 3x3 windows of stride 2
    pooled, argmax = MaxPoolingWithArgmax2D(3, strides=2, padding="valid")(image(x))
    assert plane(argmax).tolist() == [[12, 12], [12, 12]]
    restored = plane(MaxUnpooling2D(3, strides=2, padding="valid")(pooled, argmax))
    assert restored[2, 2] == 36  # tf.scatter_nd adds duplicates (documented)
    assert restored.sum() == 36


def test_stride_larger_than_window_leaves_gaps():
    x = np.arange(25, dtype="float32").reshape(5, 5)
    pooled, argmax = MaxPoolingWithArgmax2D(2, strides=3, padding="valid")(image(x))
    # windows rows/cols {0,1} and {3,4}: maxima at (1,1)=6 (1,4)=9 (4,1)=21 (4,4)=24
    assert plane(pooled).tolist() == [[6, 9], [21, 24]]
    assert plane(argmax).tolist() == [[6, 9], [21, 24]]
    restored = plane(MaxUnpooling2D(2, strides=3, padding="valid")(pooled, argmax))
    expected = np.zeros((5, 5))
    for y, x_ in [(1, 1), (1, 4), (4, 1), (4, 4)]:
        expected[y, x_] = x[y, x_]
    np.testing.assert_array_equal(restored, expected)


def test_batch_indices_are_per_sample():
    first = [[1, 0], [0, 0]]   # max at flat 0
    second = [[0, 0], [0, 2]]  # max at flat 3
    x = np.stack([image(first)[0], image(second)[0]])
    pooled, argmax = MaxPoolingWithArgmax2D()(x)
    assert np.asarray(argmax).ravel().tolist() == [0, 3]
    restored = np.asarray(MaxUnpooling2D()(pooled, argmax))
    np.testing.assert_array_equal(restored, x)


def test_non_square_pool_and_strides():
    x = np.arange(24, dtype="float32").reshape(4, 6)
    pooled, argmax = MaxPoolingWithArgmax2D((2, 3))(image(x))
    assert plane(pooled).tolist() == [[8, 11], [20, 23]]
    restored = plane(MaxUnpooling2D((2, 3))(pooled, argmax))
    assert restored.sum() == 8 + 11 + 20 + 23
    assert restored[1, 2] == 8 and restored[3, 5] == 23


# --- parity with TensorFlow's own op ----------------------------------------

CASES = [  # (shape, pool_size, strides, padding)
    ((2, 5, 5, 3), (2, 2), (2, 2), "same"),
    ((3, 8, 7, 2), (3, 3), (2, 2), "same"),
    ((2, 7, 9, 1), (2, 2), (3, 3), "valid"),
    ((1, 6, 6, 4), (3, 3), (1, 1), "valid"),
    ((2, 9, 11, 2), (2, 3), (1, 2), "same"),
    ((1, 29, 29, 1), (2, 2), (2, 2), "same"),
]


def _inputs_with_ties(shape, seed):
    x = np.random.default_rng(seed).normal(size=shape).astype("float32")
    x[:, :3, :3] = 0.0   # ties, as after a ReLU
    x[:, -2:, -2:] = -1.0
    return x


@pytest.mark.parametrize("shape,pool,strides,padding", CASES)
def test_layer_matches_native_op(shape, pool, strides, padding):
    x = _inputs_with_ties(shape, 1)
    ref_pooled, ref_argmax = tf.nn.max_pool_with_argmax(
        x, pool, strides, padding.upper(), include_batch_in_index=False)
    pooled, argmax = MaxPoolingWithArgmax2D(pool, strides, padding)(x)
    np.testing.assert_array_equal(pooled, ref_pooled)
    np.testing.assert_array_equal(argmax, ref_argmax)


@pytest.mark.parametrize("shape,pool,strides,padding", CASES)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
def test_portable_pooling_matches_native_op_ties_included(
        shape, pool, strides, padding, jit):
    x = _inputs_with_ties(shape, 2)
    ref_pooled, ref_argmax = tf.nn.max_pool_with_argmax(
        x, pool, strides, padding.upper(), include_batch_in_index=False)
    fn = tf.function(lambda t: max_pool_with_argmax_portable(
        t, pool, strides, padding), jit_compile=jit)
    pooled, argmax = fn(tf.constant(x))
    np.testing.assert_array_equal(pooled, ref_pooled)
    np.testing.assert_array_equal(argmax, ref_argmax)


@pytest.mark.parametrize("shape,pool,strides,padding", CASES)
def test_unpool_inverts_native_pooling_at_the_maxima(shape, pool, strides, padding):
    x = np.random.default_rng(3).normal(size=shape).astype("float32")
    pooled, argmax = tf.nn.max_pool_with_argmax(
        x, pool, strides, padding.upper(), include_batch_in_index=False)
    out = np.asarray(MaxUnpooling2D(pool, strides, padding)(
        pooled, argmax, output_size=shape[1:3]))
    assert out.shape == shape
    flat_out, flat_x = out.reshape(shape[0], -1), x.reshape(shape[0], -1)
    for b in range(shape[0]):
        positions = np.unique(np.asarray(argmax)[b].ravel())
        # every remembered position holds the input's value times how many
        # windows chose it; every other position is zero
        counts = np.bincount(np.asarray(argmax)[b].ravel(),
                             minlength=flat_x.shape[1])
        np.testing.assert_allclose(flat_out[b], flat_x[b] * counts, rtol=1e-6)
        assert np.count_nonzero(flat_out[b]) <= len(positions)


# --- gradients ---------------------------------------------------------------

def test_gradient_reaches_updates_at_their_positions():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 6, 3)).astype("float32")
    pooled, argmax = tf.nn.max_pool_with_argmax(x, 2, 2, "SAME")
    weights = rng.normal(size=x.shape).astype("float32")
    updates = tf.Variable(pooled)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(MaxUnpooling2D()(updates, argmax) * weights)
    grad = tape.gradient(loss, updates)
    expected = np.take_along_axis(
        weights.reshape(2, -1), np.asarray(argmax).reshape(2, -1), axis=1
    ).reshape(pooled.shape)
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


@pytest.mark.parametrize("jit", [False, True], ids=["native", "xla"])
def test_gradient_of_pooling_reaches_the_argmax(jit):
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(2, 5, 7, 2)).astype("float32"))
    weights = tf.constant(rng.normal(size=(2, 3, 4, 2)).astype("float32"))
    layer = MaxPoolingWithArgmax2D()

    @tf.function(jit_compile=jit)
    def grads(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            pooled, argmax = layer(t)
            loss = tf.reduce_sum(pooled * weights)
        return tape.gradient(loss, t), argmax

    grad, argmax = grads(x)
    expected = np.zeros((2, 5 * 7 * 2), "float32")
    for b in range(2):
        np.add.at(expected[b], np.asarray(argmax)[b].ravel(),
                  np.asarray(weights)[b].ravel())
    np.testing.assert_allclose(np.asarray(grad).reshape(2, -1), expected, rtol=1e-6)


# --- graphs, XLA, dynamic batch ------------------------------------------------

def _pool_unpool_model(size=(29, 29, 3)):
    inputs = keras.Input(size)
    pooled, argmax = MaxPoolingWithArgmax2D(name="pool")(inputs)
    outputs = MaxUnpooling2D(name="unpool")(pooled, argmax, output_size=size[:2])
    return keras.Model(inputs, outputs)


def test_functional_model_keeps_int64_indices():
    inputs = keras.Input((8, 8, 2))
    pooled, argmax = MaxPoolingWithArgmax2D()(inputs)
    assert pooled.dtype == "float32"
    assert argmax.dtype == "int64"
    assert tuple(argmax.shape) == (None, 4, 4, 2)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_model_in_tf_function_with_dynamic_batch(jit):
    model = _pool_unpool_model()
    fn = tf.function(model, jit_compile=jit, reduce_retracing=True,
                     input_signature=[tf.TensorSpec([None, 29, 29, 3])])
    rng = np.random.default_rng(6)
    for batch in (1, 3, 7):
        x = rng.uniform(size=(batch, 29, 29, 3)).astype("float32")
        expected = model(x)  # eager, native op
        np.testing.assert_array_equal(fn(x), expected)


def test_model_compiled_with_jit_trains():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    pooled, argmax = MaxPoolingWithArgmax2D()(h)
    h = MaxUnpooling2D()(pooled, argmax)
    outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse", jit_compile=True)
    x = np.random.default_rng(7).uniform(size=(16, 8, 8, 1)).astype("float32")
    history = model.fit(x, x, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


# --- serialization ----------------------------------------------------------

@pytest.mark.parametrize("cls", [MaxPoolingWithArgmax2D, MaxUnpooling2D])
def test_get_config_round_trip(cls):
    layer = cls(pool_size=(3, 2), strides=(1, 2), padding="VALID", name="x")
    clone = cls.from_config(layer.get_config())
    assert (clone.pool_size, clone.strides, clone.padding) == ((3, 2), (1, 2), "valid")
    assert keras.saving.get_registered_name(cls) == f"keras_ae>{cls.__name__}"


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = _pool_unpool_model()
    path = tmp_path / "pool_unpool.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(8).uniform(size=(4, 29, 29, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))


# --- tensorflow-addons call convention ----------------------------------------

def test_tensorflow_addons_style_arguments():
    layer = MaxUnpooling2D((2, 2), (2, 2), "SAME")
    assert (layer.pool_size, layer.strides, layer.padding) == ((2, 2), (2, 2), "same")
    updates = image([[3, 5], [7, 9]])
    mask = np.array([[4, 6], [9, 14]], "int32")[None, :, :, None]  # int32 is fine
    assert plane(layer(updates, mask)).sum() == 24


# --- errors ------------------------------------------------------------------

@pytest.mark.parametrize("cls", [MaxPoolingWithArgmax2D, MaxUnpooling2D])
@pytest.mark.parametrize("kwargs,words", [
    ({"padding": "full"}, "padding must be one of"),
    ({"pool_size": 0}, "pool_size must be a positive integer"),
    ({"pool_size": (2, 2, 2)}, "pool_size must be"),
    ({"strides": (1, -1)}, "strides must be"),
])
def test_bad_constructor_arguments(cls, kwargs, words):
    with pytest.raises(ValueError, match=words):
        cls(**kwargs)


def test_mismatched_updates_and_mask():
    inputs = keras.Input((4, 4, 2))
    mask = keras.Input((4, 4, 3), dtype="int64")
    with pytest.raises(ValueError, match=r"same shape.*\(None, 4, 4, 2\).*\(None, 4, 4, 3\)"):
        MaxUnpooling2D()(inputs, mask)


def test_output_size_inconsistent_with_pooling():
    inputs = keras.Input((7, 7, 1))
    mask = keras.Input((7, 7, 1), dtype="int64")
    with pytest.raises(ValueError, match=r"output_size=\(20, 20\) cannot have been pooled to 7"):
        MaxUnpooling2D()(inputs, mask, output_size=(20, 20))
    with pytest.raises(ValueError, match="pair of positive integers"):
        MaxUnpooling2D()(inputs, mask, output_size=(14, 14, 1))


# --- average unpooling ----------------------------------------------------------

def test_average_unpool_copies_each_value_into_its_window():
    x = np.array([[1.0, 2.0], [3.0, 4.0]], "float32").reshape(1, 2, 2, 1)
    out = np.asarray(AverageUnpooling2D(2)(x))[0, :, :, 0]
    assert out.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_average_unpool_odd_size_keeps_the_pixels_pooling_averaged():
    # "same" pooling of 3 columns by 2: windows [0, 1] and [2] (padded after)
    x = np.array([[[[1.0], [2.0]]]], "float32")
    out = np.asarray(AverageUnpooling2D(2)(x, output_size=(1, 3)))
    assert out[0, :, :, 0].tolist() == [[1.0, 1.0, 2.0]]


def test_average_unpool_window_of_3_starts_where_same_padding_puts_it():
    # 7 rows pooled by 3 with "same": padding 1 before, so the windows are
    # rows [-1, 0, 1], [2, 3, 4], [5, 6, 7]: row 0 belongs to the first.
    x = np.array([10.0, 20.0, 30.0], "float32").reshape(1, 3, 1, 1)
    out = np.asarray(AverageUnpooling2D((3, 1))(x, output_size=(7, 1)))
    assert out[0, :, 0, 0].tolist() == [10, 10, 20, 20, 20, 30, 30]


@pytest.mark.parametrize("shape,pool,padding", [
    ((2, 8, 8, 3), 2, "same"), ((2, 7, 9, 2), 2, "same"),
    ((1, 7, 7, 1), 3, "same"), ((2, 9, 10, 2), (2, 3), "same"),
    ((2, 8, 6, 1), 2, "valid")])
def test_average_pooling_of_the_unpooled_gives_the_pooled_back(shape, pool, padding):
    x = np.random.default_rng(3).random(shape, "float32")
    pooled = keras.layers.AveragePooling2D(pool, padding=padding)(x)
    unpooled = AverageUnpooling2D(pool, padding=padding)(pooled,
                                                           output_size=shape[1:3])
    assert tuple(unpooled.shape) == shape
    again = keras.layers.AveragePooling2D(pool, padding=padding)(unpooled)
    np.testing.assert_allclose(again, pooled, atol=1e-6)


def test_average_unpool_valid_leaves_dropped_rows_at_zero():
    x = np.array([[[[4.0]]]], "float32")
    out = np.asarray(AverageUnpooling2D(2, padding="valid")(x, output_size=(3, 3)))
    assert out[0, :, :, 0].tolist() == [[4, 4, 0], [4, 4, 0], [0, 0, 0]]


def test_average_unpool_config_round_trip_and_bad_arguments():
    layer = AverageUnpooling2D((2, 3), padding="SAME", name="up")
    again = AverageUnpooling2D.from_config(layer.get_config())
    assert (again.pool_size, again.padding, again.name) == ((2, 3), "same", "up")
    with pytest.raises(ValueError, match="pool_size"):
        AverageUnpooling2D(0)
    with pytest.raises(ValueError, match="padding"):
        AverageUnpooling2D(2, padding="full")
    with pytest.raises(ValueError, match=r"cannot have been pooled to 2"):
        AverageUnpooling2D(2)(np.zeros((1, 2, 2, 1), "float32"), output_size=(6, 4))


def test_power_scaling_by_hand_and_through_its_config():
    from keras_ae.models.layers import PowerScaling

    layer = PowerScaling(2.0, name="square")
    x = np.array([[-1.0, 0.5, 1.0]], "float32")  # negatives count as 0
    assert np.asarray(layer(x)).tolist() == [[0.0, 0.25, 1.0]]
    again = PowerScaling.from_config(layer.get_config())
    assert again.power == 2.0 and again.name == "square"
    with pytest.raises(ValueError, match="power must be a number > 0, got 0"):
        PowerScaling(0)
