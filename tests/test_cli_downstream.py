"""`keras-ae features`, `cluster`, `anomaly` and `generate` on small IDX
files, with a .keras model and with an exported .onnx one."""

import json
from pathlib import Path

import pytest

import keras_ae
from keras_ae import cli

SHIPPED_DENSE = (Path(__file__).resolve().parents[1] / "exported"
                 / "fashion_mnist_dense" / "model.onnx")


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "dense.keras"
    keras_ae.build_dense_autoencoder((28, 28, 1), code_size=8).save(path)
    return str(path)


@pytest.fixture(scope="module")
def unpool_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "unpool.keras"
    keras_ae.build_conv_autoencoder((28, 28, 1), filters=(4, 2),
                                    decoder="unpool").save(path)
    return str(path)


def run(command, model, idx_dir, out, *extra):
    return cli.main([command, model, "--data-dir", str(idx_dir), "--output",
                     str(out), *extra])


def test_features_compares_codes_pixels_and_a_random_encoder(
        keras_model, small_idx_dir, tmp_path, capsys):
    assert run("features", keras_model, small_idx_dir, tmp_path,
               "--train-images", "200") == 0
    result = json.loads((tmp_path / "features.json").read_text())
    assert set(result) == {"model", "codes", "raw_pixels", "random_encoder"}
    assert result["codes"]["features"] == 8 and result["raw_pixels"]["features"] == 784
    assert result["codes"]["train_images"] == 200
    assert all(0 <= result[k]["test_accuracy"] <= 1 for k in ("codes", "raw_pixels"))
    assert "random_encoder  test accuracy" in capsys.readouterr().out


def test_features_of_an_exported_model(small_idx_dir, tmp_path):
    if not SHIPPED_DENSE.exists():
        pytest.skip("exported/fashion_mnist_dense is not in this checkout")
    assert run("features", str(SHIPPED_DENSE), small_idx_dir, tmp_path,
               "--train-images", "200") == 0
    result = json.loads((tmp_path / "features.json").read_text())
    assert result["codes"]["features"] == 32 and "random_encoder" not in result


def test_cluster_writes_scores_and_a_code_map(keras_model, small_idx_dir, tmp_path):
    assert run("cluster", keras_model, small_idx_dir, tmp_path, "--clusters", "3") == 0
    result = json.loads((tmp_path / "cluster.json").read_text())
    assert result["codes"]["clusters"] == 3 and result["codes"]["images"] == 60
    assert -1 <= result["codes"]["adjusted_rand_index"] <= 1
    assert (tmp_path / "code_map.png").read_bytes()[:4] == b"\x89PNG"


def test_anomaly_scores_the_named_classes(keras_model, small_idx_dir, tmp_path):
    assert run("anomaly", keras_model, small_idx_dir, tmp_path,
               "--anomaly-classes", "9", "--percentile", "95") == 0
    result = json.loads((tmp_path / "anomaly.json").read_text())
    assert result["anomaly_classes"] == [9] and result["images"] == 60
    assert "percentile 95" in result["rule"] and 0 <= result["roc_auc"] <= 1
    assert (tmp_path / "anomaly_scores.png").exists()


def test_anomaly_refuses_classes_the_data_lacks(keras_model, small_idx_dir, tmp_path,
                                                capsys):
    assert run("anomaly", keras_model, small_idx_dir, tmp_path,
               "--anomaly-classes", "12") == 2
    assert ("--anomaly-classes '12' is not a class of idx:" in
            capsys.readouterr().err)


def test_generate_draws_interpolations_and_samples(keras_model, small_idx_dir,
                                                   tmp_path):
    assert run("generate", keras_model, small_idx_dir, tmp_path, "--count", "4",
               "--steps", "5") == 0
    for name in ("interpolation.png", "samples.png", "generate.json"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "generate.json").read_text())["samples"]["count"] == 4


def test_generate_refuses_an_unpool_model_before_reading_data(
        unpool_model, tmp_path, capsys):
    missing = tmp_path / "no_data_here"
    assert run("generate", unpool_model, missing, tmp_path) == 2
    assert "has no decoder that runs alone" in capsys.readouterr().err


@pytest.mark.parametrize("name, message", [
    ("missing.keras", "no model file at"),
    ("model.txt", "is neither a .keras model nor an exported .onnx one"),
])
def test_a_model_that_is_not_one_is_refused(name, message, small_idx_dir, tmp_path,
                                            capsys):
    path = tmp_path / name
    if name.endswith(".txt"):
        path.write_text("not a model")
    assert run("cluster", str(path), small_idx_dir, tmp_path) == 2
    assert message in capsys.readouterr().err
