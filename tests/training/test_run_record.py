"""The run record: one reader for what train and tune wrote."""

import json

import pytest

from keras_ae.data import DataSource
from keras_ae.errors import InputError
from keras_ae.training import read_run_record


def _write(folder, name, record):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(record))


def test_a_model_without_a_record_reads_as_empty(tmp_path):
    record = read_run_record(tmp_path / "model.keras")
    assert (record.folder, record.settings, record.metrics, record.origin,
            record.preprocessing) == (None, {}, {}, None, None)


def test_the_origin_is_read_from_its_fields(tmp_path):
    origin = DataSource(images="/data/parts", image_size=(64, 64), resize="pad",
                        color_mode="rgb", classes=(0,), validation_split=0.2, seed=3)
    _write(tmp_path, "metrics.json", {"data": {"origin": origin.to_json()},
                                      "preprocessing": {"resize": "pad"},
                                      "settings": {"normal_classes": [0]}})
    record = read_run_record(tmp_path / "model.keras")
    assert record.origin == origin
    assert record.normal_classes == [0] and record.preprocessing == {"resize": "pad"}
    assert record.origin.route == "images" and record.origin.classes == (0,)


def test_a_record_of_keras_ae_0_1_gives_no_origin(tmp_path):
    """0.1 kept its source as display text; 0.3 reads no display text."""
    _write(tmp_path, "metrics.json", {"settings": {"data": "tfds:mnist"}})
    assert read_run_record(tmp_path).origin is None


def test_arrays_cannot_be_read_again(tmp_path):
    with pytest.raises(InputError, match="arrays in memory, which cannot be read again"):
        DataSource(in_memory=True).load()


def test_a_damaged_record_is_named(tmp_path):
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(InputError, match="metrics.json is not the JSON keras_ae wrote"):
        read_run_record(tmp_path)


def test_a_recorded_source_must_be_a_dict():
    with pytest.raises(InputError, match="expected a recorded data source"):
        DataSource.from_json("idx:/data")


def test_train_records_and_export_carries_the_run_record(trained_run, trained_export, idx_dir):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    run = json.loads((trained_run / "run.json").read_text())
    origin = DataSource(data_dir=str(idx_dir), validation_split=0.1, seed=0)
    assert run["data"] == metrics["data"]["origin"] == origin.to_json()
    assert read_run_record(trained_run / "model.keras").origin == origin
    card = json.loads((trained_export / "model_card.json").read_text())
    assert card["test"] == metrics["test"] and card["data"] == metrics["data"]
    assert card["training"]["settings"]["model_options"] == {"filters": [8, 4]}
