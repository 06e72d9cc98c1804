"""keras_ae.codes.adapter: codes as features for a linear probe and clustering."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ae
from conftest import colours, png_pixels
from keras_ae.data import sources as data_lib
from keras_ae.codes import adapter as downstream
from keras_ae.codes import probes
from keras_ae.codes import generation
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

SHIPPED_DENSE = (Path(__file__).resolve().parents[2] / "exported"
                 / "fashion_mnist_dense" / "model.onnx")


def bright_or_dark(count, seed=0):
    """Class 0: dark images, class 1: bright ones, with noise: separable."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    base = np.where(labels[:, None, None], 0.75, 0.25)
    images = np.clip(base + rng.normal(0, 0.05, (count, 8, 8)), 0, 1)
    return images[..., None].astype("float32"), labels


# --- labeled data --------------------------------------------------------------

def test_labeled_arrays_reads_a_labeled_dataset():
    images = np.arange(5 * 16, dtype=np.uint8).reshape(5, 4, 4)
    data = data_lib.from_arrays(images, images, test_labels=[3, 1, 4, 1, 5],
                                validation_split=0)
    got_images, labels = downstream.labeled_arrays(data.labeled("test", 2))
    assert labels.tolist() == [3, 1, 4, 1, 5] and labels.dtype == np.int64
    np.testing.assert_allclose(got_images[..., 0], images / 255, rtol=1e-6)


@pytest.mark.parametrize("data, message", [
    (tf.data.Dataset.from_tensor_slices(np.zeros((4, 4, 4, 1))).batch(2),
     "the labels are missing"),
    (np.zeros((4, 4, 4, 1)), "got ndarray: the labels are needed"),
    ((np.zeros((4, 4, 4)), [0, 1]), "must hold one label per image: 4 images"),
    ((np.zeros((2, 4, 4)), [0.5, 1.0]), "labels must be integers"),
])
def test_data_without_usable_labels_is_refused(data, message):
    with pytest.raises(ValueError, match=message):
        downstream.labeled_arrays(data, "train")


# --- codes -------------------------------------------------------------------------

def test_encode_gives_one_flat_code_per_image():
    model = keras_ae.build_conv_autoencoder((28, 28, 1), decoder="unpool")
    codes = downstream.encode(model, np.zeros((3, 28, 28), np.uint8))
    assert codes.shape == (3, 196) and codes.dtype == np.float32  # indices left out


def test_encode_runs_an_exported_model_the_same_way():
    if not SHIPPED_DENSE.exists():
        pytest.skip("exported/fashion_mnist_dense is not in this checkout")
    model = OnnxAutoencoder(SHIPPED_DENSE)
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), np.uint8)
    codes = downstream.encode(model, images)
    assert codes.shape == (4, 32)
    np.testing.assert_array_equal(codes, model.encode(images).reshape(4, -1))


def test_a_model_without_an_encoder_is_refused():
    plain = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="has no nested 'encoder' model"):
        downstream.encode(plain, np.zeros((1, 4, 4, 1)))


# --- the probe ---------------------------------------------------------------------

def test_probe_features_separates_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    separable = np.eye(3)[labels] * 5 + rng.normal(0, 0.5, (600, 3))
    result = probes.probe_features(separable[:400], labels[:400],
                                       separable[400:], labels[400:])
    assert result["test_accuracy"] > 0.95
    assert (result["features"], result["classes"]) == (3, 3) and result["converged"]
    noise = rng.normal(size=(600, 3))
    chance = probes.probe_features(noise[:400], labels[:400], noise[400:],
                                       labels[400:])
    assert chance["test_accuracy"] < 0.5


def test_probe_features_refuses_bad_shapes_and_one_class():
    with pytest.raises(ValueError, match="same D for train and test"):
        probes.probe_features(np.zeros((4, 3)), np.array([0, 1, 0, 1]),
                                  np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="fewer than two classes"):
        probes.probe_features(np.zeros((4, 3)), np.zeros(4, int),
                                  np.zeros((4, 3)), np.zeros(4, int))


def test_linear_probe_reads_the_labels_from_codes_and_freezes_the_encoder():
    images, labels = bright_or_dark(300)
    model = keras_ae.build_dense_autoencoder((8, 8, 1), code_size=4)
    before = [w.copy() for w in model.get_weights()]
    result = probes.linear_probe(model, (images[:200], labels[:200]),
                                     (images[200:], labels[200:]))
    assert result["test_accuracy"] > 0.95 and result["features"] == 4
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


# --- clustering ----------------------------------------------------------------------

def test_cluster_finds_the_two_classes():
    images, labels = bright_or_dark(200)
    model = keras_ae.build_dense_autoencoder((8, 8, 1), code_size=4)
    result = probes.cluster(model, (images, labels))
    assert result["adjusted_rand_index"] == pytest.approx(1.0)
    assert result["normalized_mutual_information"] == pytest.approx(1.0)
    assert result["clusters"] == 2 and len(result["assignments"]) == 200


def test_cluster_features_scores_chance_near_zero():
    rng = np.random.default_rng(0)
    result = probes.cluster_features(rng.normal(size=(300, 5)),
                                         rng.integers(0, 3, 300))
    assert abs(result["adjusted_rand_index"]) < 0.05


def test_cluster_features_refuses_too_many_clusters():
    with pytest.raises(ValueError, match="clusters must be between 2 and the "
                                         "number of images \\(3\\), got 5"):
        probes.cluster_features(np.zeros((3, 2)), np.array([0, 1, 0]),
                                    clusters=5)


def test_save_code_map_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    path = probes.save_code_map(rng.normal(size=(50, 6)),
                                    rng.integers(0, 3, 50), tmp_path / "codes.png",
                                    class_names=["a", "b", "c"])
    # one colour per class: the map shows the classes it was given
    assert len(colours(png_pixels(path))) >= 3
    one_class = probes.save_code_map(rng.normal(size=(50, 6)),
                                         np.zeros(50, int), tmp_path / "one.png")
    assert len(colours(png_pixels(one_class))) < len(colours(png_pixels(path)))


# --- denoising ----------------------------------------------------------------------------

def test_psnr_and_denoising_gain_of_a_perfect_denoiser():
    images, _ = bright_or_dark(20)
    assert generation.psnr(np.full((1, 2, 2, 1), 0.5), np.zeros((1, 2, 2, 1))) == \
        pytest.approx(10 * np.log10(4))

    class Clean(keras.Model):  # "denoises" to the class level: exact here
        def call(self, noisy):
            return keras.ops.where(keras.ops.mean(noisy, axis=(1, 2, 3), keepdims=True)
                                   > 0.5, 0.75, 0.25) + 0 * noisy

    flat = np.where(images.mean(axis=(1, 2, 3), keepdims=True) > 0.5, 0.75, 0.25)
    clean = np.broadcast_to(flat, images.shape).astype("float32")
    gain = generation.denoising_gain(Clean(), clean, 0.2, seed=0)
    noisy = generation.add_noise(clean, 0.2, seed=0)
    assert gain["noisy_psnr"] == pytest.approx(generation.psnr(noisy, clean))
    assert gain["denoised_psnr"] == np.inf and gain["gain_db"] == np.inf


# --- generation ------------------------------------------------------------------------------

def test_interpolation_runs_from_one_reconstruction_to_the_other():
    model = keras_ae.build_dense_autoencoder((8, 8, 1), code_size=3)
    images, _ = bright_or_dark(2)
    path = generation.interpolate(model, images[0], images[1], steps=5)
    ends = downstream.reconstruct(model, images)
    assert path.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(path[[0, -1]], ends, atol=1e-5)


def test_samples_come_from_the_training_codes_gaussian():
    model = keras_ae.build_dense_autoencoder((8, 8, 1), code_size=3)
    images, _ = bright_or_dark(200)
    drawn = generation.sample(model, images, count=6, seed=1)
    assert drawn.shape == (6, 8, 8, 1) and 0 <= drawn.min() and drawn.max() <= 1
    np.testing.assert_array_equal(drawn, generation.sample(model, images, 6, seed=1))


def test_generation_refuses_an_unpool_decoder():
    model = keras_ae.build_conv_autoencoder((8, 8, 1), filters=(4, 2),
                                            decoder="unpool")
    images, _ = bright_or_dark(4)
    for generate in (lambda: generation.sample(model, images),
                     lambda: generation.interpolate(model, images[0], images[1])):
        with pytest.raises(ValueError, match="has no decoder that runs alone"):
            generate()


def test_save_image_grid_writes_a_png(tmp_path):
    images, _ = bright_or_dark(10)
    path = generation.save_image_grid(images, tmp_path / "grid.png", columns=4,
                                      title="ten")
    assert png_pixels(path).ndim == 3
    # the grid shows the images: half of them white, half the black
    black = np.zeros((8, 8, 8, 1), np.float32)
    half = black.copy()
    half[::2] = 1.0
    dark = [(png_pixels(generation.save_image_grid(
        grid, tmp_path / f"grid{i}.png", columns=4)) < 30).all(-1).sum()
        for i, grid in enumerate((black, half))]
    assert dark[1] == pytest.approx(dark[0] / 2, rel=0.05) and dark[1] > 0
