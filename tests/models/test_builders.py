"""The dense and conv builders: shapes, structure, serialization, errors."""

import math

import numpy as np
import pytest

import keras
import keras_ae

DECODERS = ["transpose", "upsample", "unpool"]
SHAPES = [(28, 28, 1), (32, 32, 3), (29, 29, 1), (45, 30, 3)]


def batch(shape, n=3, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype("float32")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("decoder", DECODERS)
def test_conv_output_has_the_input_shape(decoder, shape):
    model = keras_ae.build_conv_autoencoder(shape, decoder=decoder)
    assert tuple(model.output.shape) == (None, *shape)
    out = np.asarray(model(batch(shape)))
    assert out.shape == (3, *shape)
    assert out.min() >= 0.0 and out.max() <= 1.0  # sigmoid


@pytest.mark.parametrize("decoder", DECODERS)
def test_conv_three_stages_and_dense_code(decoder):
    shape = (45, 30, 3)  # 45 -> 23 -> 12 -> 6, 30 -> 15 -> 8 -> 4
    model = keras_ae.build_conv_autoencoder(shape, filters=(8, 8, 4),
                                            decoder=decoder, code_size=20)
    encoder = model.get_layer("encoder")
    assert tuple(encoder.outputs[0].shape) == (None, 20)
    assert np.asarray(model(batch(shape))).shape == (3, *shape)


@pytest.mark.parametrize("decoder", DECODERS)
def test_nested_encoder_and_decoder_compose_to_the_model(decoder):
    shape = (29, 29, 1)
    model = keras_ae.build_conv_autoencoder(shape, decoder=decoder)
    encoder, decoder_model = model.get_layer("encoder"), model.get_layer("decoder")
    x = batch(shape)
    np.testing.assert_allclose(decoder_model(encoder(x)), model(x), rtol=1e-6)
    # default code: the last feature map, 29 -> 15 -> 8 with 4 filters
    code = encoder(x)[0] if decoder == "unpool" else encoder(x)
    assert tuple(code.shape) == (3, 8, 8, 4)


def test_unpool_encoder_returns_int64_indices_per_stage():
    model = keras_ae.build_conv_autoencoder((28, 28, 1), filters=(16, 8, 4),
                                            decoder="unpool")
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    outputs = encoder.outputs
    assert [tuple(t.shape) for t in outputs] == [
        (None, 4, 4, 4), (None, 14, 14, 16), (None, 7, 7, 8), (None, 4, 4, 4)]
    assert [t.dtype for t in outputs[1:]] == ["int64"] * 3
    assert [t.dtype for t in decoder.inputs[1:]] == ["int64"] * 3


def test_stage_layer_names():
    names = {d: [layer.name for layer in keras_ae.build_conv_autoencoder(
        (29, 29, 1), decoder=d).get_layer("decoder").layers] for d in DECODERS}
    assert "decoder_stage1_transpose" in names["transpose"]
    assert "decoder_stage2_crop" in names["transpose"]  # 16 -> 15 and 30 -> 29
    assert {"decoder_stage1_upsample", "decoder_stage1_conv"} <= set(names["upsample"])
    assert {"decoder_stage1_unpool", "decoder_stage2_unpool"} <= set(names["unpool"])
    assert not any("crop" in n for n in names["unpool"])  # output_size instead
    encoder = keras_ae.build_conv_autoencoder(
        filters=(16, 4), convs_per_stage=1).get_layer("encoder")
    assert [layer.name for layer in encoder.layers][1:] == [
        "encoder_stage1_conv", "encoder_stage1_pool",
        "encoder_stage2_conv", "encoder_stage2_pool"]


def test_decoder_channels_mirror_the_encoder():
    def conv_channels(model):
        return [layer.filters for layer in model.get_layer("decoder").layers
                if hasattr(layer, "filters")]
    # encoder 1->16->4, decoder 4->16->16->1, whatever undoes the pooling
    for decoder in DECODERS:
        model = keras_ae.build_conv_autoencoder(filters=(16, 4), decoder=decoder,
                                                convs_per_stage=1)
        assert conv_channels(model) == [16, 16, 1]
    deeper = keras_ae.build_conv_autoencoder(filters=(8, 16, 32), decoder="upsample",
                                             convs_per_stage=1)
    assert conv_channels(deeper) == [16, 8, 8, 1]


def test_defaults_are_the_benchmarked_model():
    model = keras_ae.build_conv_autoencoder()
    convs = [layer for layer in model.get_layer("encoder").layers
             if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 4, 4]  # two convs per stage
    assert math.prod(model.get_layer("encoder").output.shape[1:]) == 196


@pytest.mark.parametrize("decoder", DECODERS)
def test_the_code_is_linear(decoder):
    model = keras_ae.build_conv_autoencoder((16, 16, 1), filters=(8, 4),
                                            decoder=decoder)
    encoder = model.get_layer("encoder")
    convs = [layer for layer in encoder.layers
             if isinstance(layer, keras.layers.Conv2D)]
    assert convs[-1].activation is keras.activations.linear
    assert all(c.activation is keras.activations.relu for c in convs[:-1])
    outputs = encoder(batch((16, 16, 1), n=8))
    code = np.asarray(outputs[0] if decoder == "unpool" else outputs)
    assert code.min() < 0 < code.max()  # a ReLU code could not go below zero
    # with a dense code, the convolutions keep their ReLU and the Dense is linear
    dense = keras_ae.build_conv_autoencoder((16, 16, 1), filters=(8, 4),
                                            decoder=decoder, code_size=10)
    convs = [layer for layer in dense.get_layer("encoder").layers
             if isinstance(layer, keras.layers.Conv2D)]
    assert all(c.activation is keras.activations.relu for c in convs)


@pytest.mark.parametrize("decoder", DECODERS)
def test_convs_per_stage(decoder):
    model = keras_ae.build_conv_autoencoder((29, 29, 1), decoder=decoder,
                                            convs_per_stage=2)
    encoder_convs = [layer.name for layer in model.get_layer("encoder").layers
                     if isinstance(layer, keras.layers.Conv2D)]
    assert encoder_convs == ["encoder_stage1_conv", "encoder_stage1_conv2",
                             "encoder_stage2_conv", "encoder_stage2_conv2"]
    decoder_convs = [layer.name for layer in model.get_layer("decoder").layers
                     if isinstance(layer, (keras.layers.Conv2D,
                                           keras.layers.Conv2DTranspose))]
    # two learned convolutions per stage: a transposed one counts as one
    assert len(decoder_convs) == 2 * 2 + 1
    assert np.asarray(model(batch((29, 29, 1)))).shape == (3, 29, 29, 1)


def test_dense_autoencoder_structure():
    model = keras_ae.build_dense_autoencoder((28, 28, 1), code_size=32,
                                             hidden_units=(128, 64))
    encoder = model.get_layer("encoder")
    assert tuple(encoder.output.shape) == (None, 32)
    widths = [layer.units for layer in model.get_layer("decoder").layers
              if isinstance(layer, keras.layers.Dense)]
    assert widths == [64, 128, 784]
    out = np.asarray(model(batch((28, 28, 1))))
    assert out.shape == (3, 28, 28, 1) and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("shape", [(784,), (32, 32, 3)], ids=str)
def test_dense_autoencoder_any_input_shape(shape):
    model = keras_ae.build_dense_autoencoder(shape, code_size=16)
    assert np.asarray(model(batch(shape))).shape == (3, *shape)


def test_default_names():
    assert keras_ae.build_dense_autoencoder().name == "dense_autoencoder"
    assert keras_ae.build_conv_autoencoder(decoder="unpool").name == "conv_unpool_autoencoder"
    assert keras_ae.build_conv_autoencoder(name="mine").name == "mine"


ROUND_TRIPS = [
    ("dense", lambda: keras_ae.build_dense_autoencoder(hidden_units=(64,))),
    *[(d, lambda d=d: keras_ae.build_conv_autoencoder((29, 29, 1), decoder=d))
      for d in DECODERS],
    ("unpool-code", lambda: keras_ae.build_conv_autoencoder(
        (32, 32, 3), decoder="unpool", code_size=24)),
]


@pytest.mark.parametrize("build", [b for _, b in ROUND_TRIPS],
                         ids=[n for n, _ in ROUND_TRIPS])
def test_keras_round_trip_keeps_outputs_and_encoder(build, tmp_path):
    model = build()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = batch(model.input.shape[1:])
    np.testing.assert_array_equal(loaded(x), model(x))
    codes = loaded.get_layer("encoder")(x)
    reference = model.get_layer("encoder")(x)
    for got, want in zip(keras.tree.flatten(codes), keras.tree.flatten(reference)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("decoder", DECODERS)
def test_training_with_mse_lowers_the_loss(decoder):
    keras.utils.set_random_seed(0)
    # smooth blobs, so there is structure to learn
    yy, xx = np.mgrid[0:16, 0:16]
    rng = np.random.default_rng(0)
    centres = rng.uniform(3, 13, size=(64, 2))
    x = np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / 8)
    x = x[..., None].astype("float32")
    model = keras_ae.build_conv_autoencoder((16, 16, 1), filters=(8, 4), decoder=decoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    history = model.fit(x, x, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]


def test_mixed_precision_keeps_a_float32_output():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        for decoder in DECODERS:
            model = keras_ae.build_conv_autoencoder(decoder=decoder)
            assert model.get_layer("encoder").outputs[0].dtype == "float16"
            assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


# --- errors ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs,words", [
    ({"decoder": "deconv"},
     r"decoder must be one of \['transpose', 'unpool', 'upsample'\], got 'deconv'"),
    ({"filters": ()}, r"filters must not be empty, got \(\)"),
    ({"filters": (16, 0)}, r"filters must be a sequence of positive integers, got \(16, 0\)"),
    ({"filters": 16}, r"filters must be a sequence of positive integers, got 16"),
    ({"kernel_size": 0}, "kernel_size must be a positive integer, got 0"),
    ({"code_size": -3}, "code_size must be a positive integer, got -3"),
    ({"convs_per_stage": 0}, "convs_per_stage must be a positive integer, got 0"),
    ({"input_shape": (28, 28)}, r"input_shape must be \(height, width, channels\), got \(28, 28\)"),
    ({"input_shape": (28, 0, 1)}, "input_shape must be a sequence of positive integers"),
    ({"input_shape": (7, 28, 1), "filters": (8, 8, 8)},
     r"input_shape \(7, 28, 1\) is too small for 3 pooling stages: .* at least 8"),
])
def test_conv_builder_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        keras_ae.build_conv_autoencoder(**kwargs)


@pytest.mark.parametrize("kwargs,words", [
    ({"code_size": 0}, "code_size must be a positive integer, got 0"),
    ({"code_size": 2.5}, "code_size must be a positive integer, got 2.5"),
    ({"hidden_units": (64, -1)},
     r"hidden_units must be a sequence of positive integers, got \(64, -1\)"),
    ({"input_shape": ()}, r"input_shape must not be empty, got \(\)"),
])
def test_dense_builder_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        keras_ae.build_dense_autoencoder(**kwargs)


def test_smallest_allowed_input_works():
    model = keras_ae.build_conv_autoencoder((4, 5, 2), filters=(4, 4), decoder="unpool")
    assert np.asarray(model(batch((4, 5, 2)))).shape == (3, 4, 5, 2)


# --- average pooling ------------------------------------------------------------

@pytest.mark.parametrize("shape", [(28, 28, 1), (29, 30, 3)], ids=str)
@pytest.mark.parametrize("decoder", DECODERS)
def test_average_pooling_builds_every_decoder(decoder, shape):
    model = keras_ae.build_conv_autoencoder(shape, decoder=decoder,
                                            pooling="average")
    assert model.name == f"conv_{decoder}_average_autoencoder"
    encoder = model.get_layer("encoder")
    assert isinstance(encoder.get_layer("encoder_stage1_pool"),
                      keras.layers.AveragePooling2D)
    assert len(encoder.outputs) == 1  # no argmax indices to pass on
    assert np.asarray(model(batch(shape))).shape == (3, *shape)


def test_average_pooling_unpool_decoder_copies_values_into_windows():
    model = keras_ae.build_conv_autoencoder((29, 30, 1), decoder="unpool",
                                            pooling="average")
    decoder = model.get_layer("decoder")
    unpool = decoder.get_layer("decoder_stage1_unpool")
    assert isinstance(unpool, keras_ae.AverageUnpooling2D)
    assert len(decoder.inputs) == 1  # it decodes a code alone
    # stage 1 undoes the deepest pooling: 15x15 -> 8x8 back to 15x15
    assert tuple(unpool.output.shape) == (None, 15, 15, 4)  # the code's channels


def test_unknown_pooling_lists_the_choices():
    with pytest.raises(ValueError, match=r"pooling must be one of \['average', "
                                         r"'max'\], got 'mean'"):
        keras_ae.build_conv_autoencoder(pooling="mean")


def test_average_pooling_model_round_trips_through_a_keras_file(tmp_path):
    model = keras_ae.build_conv_autoencoder((16, 16, 3), decoder="unpool",
                                            pooling="average")
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    x = batch((16, 16, 3))
    np.testing.assert_array_equal(again(x), model(x))


def test_sqrt_intensity_wraps_the_model_in_power_scalings():
    from keras_ae.models.layers import PowerScaling

    model = keras_ae.build_conv_autoencoder((8, 8, 1), filters=(4, 2), intensity="sqrt")
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    first, last = encoder.get_layer("encoder_intensity"), decoder.layers[-1]
    assert isinstance(first, PowerScaling) and first.power == 0.5
    assert isinstance(last, PowerScaling) and last.power == 2.0
    assert encoder.layers[1] is first  # right after the image input
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype("float32")
    out = np.asarray(model(images))
    assert out.min() >= 0 and out.max() <= 1
    # the code is the encoder's of the square roots
    plain = keras.Model(encoder.layers[2].input, encoder.output)
    np.testing.assert_allclose(np.asarray(encoder(images)),
                               np.asarray(plain(np.sqrt(images))), atol=1e-6)


def test_unknown_intensity_lists_the_choices():
    with pytest.raises(ValueError, match=r"intensity must be one of \['linear', "
                                         r"'sqrt'\], got 'log'"):
        keras_ae.build_conv_autoencoder(intensity="log")
