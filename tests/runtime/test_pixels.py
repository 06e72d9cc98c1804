"""keras_ae.runtime.pixels: the one home of scaling, noise and per-image errors,
for numpy arrays and TensorFlow tensors alike."""

import numpy as np
import pytest
import tensorflow as tf

from keras_ae.runtime import pixels


def test_uint8_is_divided_by_255_and_floats_pass_through():
    raw = np.array([0, 51, 102, 255], np.uint8)
    np.testing.assert_array_equal(pixels.to_unit_float(raw),
                                  np.float32([0, 0.2, 0.4, 1]))
    halves = np.float64([0.5, 0.25])
    out = pixels.to_unit_float(halves)
    assert out.dtype == np.float32 and out.tolist() == [0.5, 0.25]


def test_tensors_are_scaled_the_same_way():
    raw = np.array([[0, 128, 255]], np.uint8)
    tensor = pixels.to_unit_float(tf.constant(raw))
    assert isinstance(tensor, tf.Tensor) and tensor.dtype == tf.float32
    np.testing.assert_array_equal(tensor.numpy(), pixels.to_unit_float(raw))


def test_noise_is_seeded_clipped_and_of_the_asked_strength():
    clean = np.full((200, 8, 8), 0.5, np.float32)
    noisy = pixels.add_noise(clean, 0.1, seed=3)
    np.testing.assert_array_equal(noisy, pixels.add_noise(clean, 0.1, seed=3))
    assert not np.array_equal(noisy, pixels.add_noise(clean, 0.1, seed=4))
    assert noisy.std() == pytest.approx(0.1, rel=0.05)  # far from the clip
    assert pixels.add_noise(clean, 5.0, seed=0).min() == 0.0
    assert pixels.add_noise(clean, 5.0, seed=0).max() == 1.0


def test_tensor_noise_with_a_stateless_seed_repeats():
    clean = tf.fill((4, 4), 0.5)
    seed = tf.constant([1, 2], tf.int64)
    first = pixels.add_noise(clean, 0.2, seed)
    np.testing.assert_array_equal(first, pixels.add_noise(clean, 0.2, seed))
    assert float(tf.reduce_max(tf.abs(first - clean))) > 0


def test_per_image_mse_hand_worked():
    a = np.zeros((2, 2, 2, 1))
    b = np.array([[[[0], [0]], [[0], [0]]], [[[1], [0]], [[0.5], [0]]]])
    # second image: (1 + 0.25) / 4
    np.testing.assert_array_equal(pixels.per_image_mse(a, b), [0.0, 0.3125])
