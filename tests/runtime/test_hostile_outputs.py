"""Ownership by content: ``--overwrite`` replaces only what the folder's
manifest lists as the command's, with its checksum where it was written
whole. A ``run.json``, ``search.json`` or ``model_card.json`` the manifest
does not list is a user's file; a name that merely looks like keras_ae's or
KerasTuner's (``trial_1_notes.txt``, ``tuner7.json``) is never matched by a
pattern. Every case checks the sha256 of every file that was there before.
"""

import os

import pytest

from conftest import checksums, one_line_error

import keras_ae
from keras_ae import outputs
from keras_ae.cli import commands as cli


def train_args(idx_dir, out, *extra):
    return ["train", "--data-dir", str(idx_dir), "--filters", "8,4", "--epochs", "1",
            "--batch-size", "32", "--output", str(out), *extra]


def tune_args(idx_dir, out, *extra):
    return ["tune", "--data-dir", str(idx_dir), "--tuner", "random",
            "--max-trials", "1", "--max-epochs", "1", "--code-size", "196",
            "--filters", "4,8", "--batch-sizes", "32", "--output", str(out), *extra]


def users_files(folder, names):
    """The user's files (and folders, for names ending in ``/``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith("/"):
            (folder / name).mkdir()
            (folder / name / "notes.txt").write_text(f"mine, in {name}")
        else:
            (folder / name).write_text(f"{{\"mine\": \"{name}\"}}")
    return checksums(folder)


@pytest.mark.parametrize("command, marker", [("train", "run.json"),
                                             ("tune", "search.json"),
                                             ("export", "model_card.json")])
def test_a_record_file_the_manifest_does_not_list_is_the_users(
        command, marker, small_idx_dir, tmp_path, capsys):
    out = tmp_path / "F"
    before = users_files(out, [marker, "logs/", "checkpoints/", "history.csv"])
    if command == "export":
        model = tmp_path / "model.keras"
        keras_ae.build_dense_autoencoder((8, 8, 1), code_size=2,
                                         hidden_units=(4,)).save(model)
        args = ["export", str(model), "--output", str(out), "--formats", "onnx"]
    else:
        args = (train_args if command == "train" else tune_args)(small_idx_dir, out)
    assert cli.main(args + ["--overwrite"]) == 2
    line = one_line_error(capsys, command)
    assert f"{out / marker}' exists and was not written by keras-ae {command}" in line
    assert checksums(out) == before
    assert sorted(os.listdir(out)) == sorted(n.rstrip("/") for n in
                                             [marker, "logs/", "checkpoints/", "history.csv"])


def test_starting_over_removes_only_the_commands_own_entries(tmp_path):
    from keras_ae.tuning.running import SEARCH_ENTRIES as names

    folder = tmp_path / "search"
    with outputs.claim(folder, "tune", "data", names=names).in_place(names):
        (folder / "search.json").write_text("{}")
        (folder / "keras_tuner" / "trial_0001").mkdir(parents=True)
    before = users_files(folder, ["trial_1_notes.txt", "trial_2024/", "tuner7.json",
                                  "oracle.json"])
    again = outputs.claim(folder, "tune", "data", names=names, overwrite=True)
    with again:
        assert again.remove_own() == ["keras_tuner", "search.json"]
    assert checksums(folder) == {k: v for k, v in before.items()
                                 if k.split("/")[0] not in ("keras_tuner", "search.json")}


def test_a_file_put_in_place_of_a_finished_runs_file_is_never_replaced(tmp_path):
    names = ("run.json", "history.csv", "logs")
    folder = tmp_path / "run"
    with outputs.claim(folder, "train", "data", names=names).in_place(names):
        for name in names[:2]:
            (folder / name).write_text("written by the run")
        (folder / "logs").mkdir()
    (folder / "history.csv").write_text("the user's own, in its place")
    before = checksums(folder)
    with pytest.raises(ValueError, match="history.csv' was changed since keras-ae train wrote it"):
        outputs.claim(folder, "train", "other data", names=names, overwrite=True)
    assert checksums(folder) == before


def test_a_killed_runs_files_stay_its_own_until_it_finishes(tmp_path):
    """While a run goes on its files are listed without checksums (it
    rewrites them each epoch), so a killed run is resumed, not refused."""
    names = ("history.csv",)
    folder = tmp_path / "run"
    with outputs.claim(folder, "train", "data", names=names).in_place(names):
        (folder / "history.csv").write_text("epoch 1")
    outputs.claim(folder, "train", "data", names=names).record(names)  # a new start
    (folder / "history.csv").write_text("epoch 2, then killed")
    assert outputs.claim(folder, "train", "data", names=names).state == "own"


@pytest.mark.slow  # two searches through the command line
def test_tune_twice_with_overwrite_keeps_every_file_of_the_users(
        small_idx_dir, tmp_path, capsys):
    out = tmp_path / "F"
    assert cli.main(tune_args(small_idx_dir, out)) == 0
    assert (out / "keras_tuner" / "oracle.json").is_file()
    before = users_files(out, ["trial_1_notes.txt", "trial_2024/", "tuner7.json",
                               "oracle.json", "chief.json"])
    assert cli.main(tune_args(small_idx_dir, out, "--seed", "1", "--overwrite")) == 0
    after = checksums(out)
    users = {k: v for k, v in before.items()
             if k.startswith(("trial_", "tuner7", "oracle", "chief"))}
    assert {k: after[k] for k in users} == users
    # the second search's own files, checksummed in the manifest
    fingerprints = outputs.read_manifest(out)["writers"]["tune"]["fingerprints"]
    assert fingerprints["search.json"] == after["search.json"]
    assert fingerprints["metrics.json"] == after["metrics.json"]
