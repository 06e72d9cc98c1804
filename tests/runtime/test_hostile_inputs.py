"""Hostile input, as a careless or unlucky user hands it in: every command
exits 2 with one line, loses nothing that was already written, and stays
within a memory ceiling.

"Nothing lost" is checked with checksums of every file that existed before
the command. Memory is checked under an address-space ceiling
(``RLIMIT_AS``) in a subprocess; the peak RSS of each case, before and
after, is in docs/benchmarks.md (``tools/benchmark_hostile_inputs.py``).
"""

import contextlib
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import checksums, damaged as damage, one_line_error

import keras_ae
from keras_ae.cli import commands as cli
from keras_ae.data import sources as data
from keras_ae.export import exporter as export
from keras_ae import files
from keras_ae.runtime import images
from keras_ae import outputs
from keras_ae.errors import InputError
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder


def png_header_only(path, width, height):
    """A PNG whose header claims ``width`` x ``height`` (grey) with one row of
    data: what a decompression bomb looks like before it is decoded."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                           + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
                           + chunk(b"IEND", b""))
    return path


def grey_pngs(folder, count, shape, step=0):
    """``count`` flat grey PNGs ``0.png``, ``1.png``, ... of ``shape`` in a
    new ``folder``, image ``i`` at level ``step * i``; returns the folder."""
    folder.mkdir()
    for index in range(count):
        Image.fromarray(np.full(shape, step * index, np.uint8), "L").save(
            folder / f"{index}.png")
    return folder


def strip_png(path, width):
    """A real 1 x ``width`` grey PNG, a few hundred bytes."""
    Image.fromarray(np.full((1, width), 200, np.uint8), "L").save(path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """runs/a/model.keras (a run folder) beside runs/b/notes.txt."""
    runs = tmp_path_factory.mktemp("hostile") / "runs"
    (runs / "a").mkdir(parents=True)
    keras_ae.build_dense_autoencoder((28, 28, 1), code_size=4,
                                     hidden_units=(16,)).save(runs / "a" / "model.keras")
    (runs / "a" / "history.csv").write_text("epoch,loss\n0,0.1\n")
    (runs / "b").mkdir()
    (runs / "b" / "notes.txt").write_text("my notes")
    return runs


@pytest.fixture(scope="module")
def pad_model(tmp_path_factory):
    """An exported model whose training images were padded to 28x28."""
    folder = tmp_path_factory.mktemp("pad")
    export.export_onnx(keras_ae.build_dense_autoencoder((28, 28, 1), code_size=4,
                                                         hidden_units=(16,)),
                       folder / "model.onnx",
                       preprocessing={"image_size": [28, 28], "resize": "pad",
                                      "color_mode": "grayscale"})
    return folder / "model.onnx"


def export_args(run_dir, output, *extra):
    return ["export", str(run_dir / "a" / "model.keras"), "--output", str(output),
            "--formats", "onnx", *extra]


# --- the output-folder rule ---------------------------------------------------------

@pytest.mark.parametrize("where", ["parent", "run", "precious"])
def test_export_never_touches_a_folder_it_did_not_write(run_dir, tmp_path, capsys, where):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    output = {"parent": run_dir, "run": run_dir / "a", "precious": precious}[where]
    before = {folder: checksums(folder) for folder in (run_dir, precious)}
    assert cli.main(export_args(run_dir, output)) == 2
    line = one_line_error(capsys, "export")
    assert str(output) in line and "not written by keras-ae export" in line
    assert {folder: checksums(folder) for folder in (run_dir, precious)} == before


def test_with_overwrite_only_the_exports_own_files_change(run_dir, tmp_path, capsys):
    output = tmp_path / "runs"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    (output / "model.onnx.bak").write_text("an old copy")
    before = checksums(output)
    assert cli.main(export_args(run_dir, output, "--overwrite")) == 0
    after = checksums(output)
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {"model.onnx", "encoder.onnx", "decoder.onnx",
                                        "model_card.json", "keras-ae.json"}
    # a user's file put where the export wrote one is never replaced, even so
    (output / "encoder.onnx").unlink()
    (output / "encoder.onnx").write_text("my own encoder")
    kept = checksums(output)
    capsys.readouterr()
    assert cli.main(export_args(run_dir, output, "--overwrite")) == 2
    assert "encoder.onnx' was changed since keras-ae export wrote it" in (
        one_line_error(capsys, "export"))
    assert checksums(output) == kept


def test_an_export_replaces_its_own_files_and_refuses_another_source(
        run_dir, tmp_path, capsys):
    output = tmp_path / "exported"
    assert cli.main(export_args(run_dir, output)) == 0
    (output / "README.txt").write_text("added by hand")
    assert cli.main(export_args(run_dir, output)) == 2  # README.txt is not its own
    assert "holds README.txt, not written by keras-ae export" in one_line_error(
        capsys, "export")
    (output / "README.txt").unlink()
    assert cli.main(export_args(run_dir, output)) == 0  # its own export again
    other = tmp_path / "other.keras"
    keras_ae.build_dense_autoencoder((28, 28, 1), code_size=4,
                                     hidden_units=(16,)).save(other)
    before = checksums(output)
    assert cli.main(["export", str(other), "--output", str(output),
                     "--formats", "onnx"]) == 2
    assert "from another source" in one_line_error(capsys, "export")
    assert checksums(output) == before
    assert cli.main(["export", str(other), "--output", str(output),
                     "--formats", "onnx", "--overwrite"]) == 0
    card = json.loads((output / "model_card.json").read_text())
    assert card["source"] == str(other)


def test_output_folders_inside_an_output_folder_are_keras_aes_not_the_users(
        run_dir, pad_model, tmp_path, capsys):
    output = tmp_path / "exported"
    assert cli.main(export_args(run_dir, output)) == 0
    image = strip_png(tmp_path / "strip.png", 50)
    assert cli.main(["predict", str(pad_model), str(image), "--resize",
                     "--output", str(output / "predictions")]) == 0
    assert cli.main(export_args(run_dir, output)) == 0  # its own export, again
    assert (output / "predictions" / "strip_reconstruction.png").exists()
    nested_only = tmp_path / "runs"
    assert cli.main(["predict", str(pad_model), str(image), "--resize",
                     "--output", str(nested_only / "predictions")]) == 0
    capsys.readouterr()
    assert cli.main(export_args(run_dir, nested_only)) == 2
    assert "holds keras-ae output folders (predictions)" in one_line_error(
        capsys, "export")


def test_output_dot_works_in_an_empty_folder_and_is_refused_in_a_full_one(
        run_dir, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert cli.main(export_args(run_dir, ".")) == 0
    assert (empty / "model.onnx").exists()
    monkeypatch.chdir(run_dir)
    before = checksums(run_dir)
    assert cli.main(export_args(run_dir, ".")) == 2
    assert "'.' holds a/, b/" in one_line_error(capsys, "export")
    assert checksums(run_dir) == before


def test_temporaries_of_a_killed_process_are_removed_and_others_kept(run_dir, tmp_path):
    output = tmp_path / "out"
    assert cli.main(export_args(run_dir, output)) == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    tag = files.temporary_path(output).name.split("-")[2]
    stale = output / f".keras-ae-{tag}-{int(dead.stdout)}-abc123.tmp"
    (stale / "saved_model").mkdir(parents=True)
    live = output / f".keras-ae-{tag}-1-abc123.tmp.onnx"  # process 1 runs
    live.write_text("being written")
    assert cli.main(export_args(run_dir, output)) == 0
    assert not stale.exists() and live.exists()


def test_a_name_near_the_file_system_limit_is_writable(tmp_path):
    path = tmp_path / ("n" * 250 + ".json")
    files.write_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_replaced_folder_must_be_of_its_kind(tmp_path):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "photo.jpg").write_text("not a SavedModel")
    with pytest.raises(InputError, match="holds files that are not a SavedModel"):
        export.export_saved_model(keras_ae.build_dense_autoencoder(), folder)
    assert os.listdir(folder) == ["photo.jpg"]


# --- one writer per folder ----------------------------------------------------

@contextlib.contextmanager
def held_by_another_trainer(folder):
    """``folder``'s lock held by a live process as a ``keras-ae train``
    would hold it; yields that process's id."""
    folder.mkdir(exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / outputs.LOCK_FILE).write_text(json.dumps(
            {"pid": holder.pid, "host": socket.gethostname(), "command": "train",
             "since": "2026-12-04T10:00:00"}))
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_folder_held_by_a_live_process_is_refused_naming_it(run_dir, tmp_path, capsys):
    output = tmp_path / "out"
    with held_by_another_trainer(output) as pid:
        assert cli.main(export_args(run_dir, output)) == 2
        line = one_line_error(capsys, "export")
        assert f"being written by keras-ae train (process {pid}" in line
    # the holder is gone: its lock is taken over, with a message
    assert cli.main(export_args(run_dir, output)) == 0
    assert "taking over the lock" in capsys.readouterr().err
    assert not (output / outputs.LOCK_FILE).exists()


def test_a_second_trainer_into_a_running_run_is_refused(small_idx_dir, tmp_path, capsys):
    run = tmp_path / "run"
    with held_by_another_trainer(run) as pid:
        assert cli.main(["train", "--data-dir", str(small_idx_dir), "--epochs", "1",
                         "--output", str(run)]) == 2
        line = one_line_error(capsys, "train")
        assert f"'{run}' is being written by keras-ae train (process {pid}" in line
        assert os.listdir(run) == [outputs.LOCK_FILE]  # nothing of the second one


@pytest.mark.parametrize("command", ["train", "export", "tune", "anomaly", "features",
                                     "cluster", "generate", "predict"])
def test_every_writing_command_states_the_rule_in_its_help(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the rule for every command: it is new, empty, or this command's" in text
    assert "--overwrite" in text


def test_the_lock_is_kept_by_its_process_and_released_at_the_end(tmp_path):
    folder = tmp_path / "out"
    with outputs.locked(folder, "train"):
        with outputs.locked(folder, "train"):  # the library inside the command
            pass
        assert (folder / outputs.LOCK_FILE).exists()
        held = json.loads((folder / outputs.LOCK_FILE).read_text())
        assert held["pid"] == os.getpid() and held["command"] == "train"
    assert not folder.exists()  # made for the lock, nothing written: removed


# --- predict's outputs --------------------------------------------------------------

def test_predict_keeps_relative_paths_and_never_overwrites(pad_model, tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((28, 28), 40 if name == "a" else 220, np.uint8),
                        "L").save(tmp_path / name / "x.png")
    out = tmp_path / "out"
    args = ["predict", str(pad_model), str(tmp_path / "a" / "x.png"),
            str(tmp_path / "b" / "x.png"), "--output", str(out)]
    assert cli.main(args) == 0
    first = Image.open(out / "a" / "x_reconstruction.png").tobytes()
    second = Image.open(out / "b" / "x_reconstruction.png").tobytes()
    assert first != second
    capsys.readouterr()
    before = checksums(out)
    assert cli.main(args) == 2
    assert "already holds a/x_reconstruction.png, b/x_reconstruction.png" in (
        one_line_error(capsys, "predict"))
    assert checksums(out) == before
    assert cli.main([*args, "--overwrite"]) == 0
    (out / "b" / "x_reconstruction.png").unlink()
    (out / "b" / "x_reconstruction.png").write_text("my picture")
    assert cli.main([*args, "--overwrite"]) == 2
    assert "was changed since keras-ae predict wrote it" in one_line_error(capsys, "predict")
    assert (out / "b" / "x_reconstruction.png").read_text() == "my picture"


def test_predict_into_the_folder_of_its_images_writes_beside_them(
        pad_model, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").save(image)
    before = checksums(tmp_path)
    args = ["predict", str(pad_model), str(image), "--output", str(tmp_path)]
    assert cli.main(args) == 2
    assert "holds x.png, not written by keras-ae predict" in one_line_error(
        capsys, "predict")
    assert checksums(tmp_path) == before
    assert cli.main([*args, "--overwrite"]) == 0
    after = checksums(tmp_path)
    assert after["x.png"] == before["x.png"]
    assert set(after) == {"x.png", "x_reconstruction.png", "keras-ae.json"}


# --- bounded memory ---------------------------------------------------------------------

def _predict_under_ceiling(model, image, out, ceiling_bytes):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ceiling_bytes, ceiling_bytes))
    return subprocess.run(
        [sys.executable, "-m", "keras_ae.cli", "predict", str(model), str(image),
         "--output", str(out), "--resize"], preexec_fn=limit, capture_output=True,
        text=True, timeout=120)


def test_predict_serves_strips_and_refuses_bombs_within_a_1_gib_ceiling(
        pad_model, tmp_path):
    cases = {"strip_20000.png": (strip_png(tmp_path / "strip_20000.png", 20000), 0),
             "strip_100000.png": (strip_png(tmp_path / "strip_100000.png", 100000), 0),
             "big.png": (png_header_only(tmp_path / "big.png", 12000, 12000), 2),
             "bomb.png": (png_header_only(tmp_path / "bomb.png", 30000, 30000), 2)}
    for name, (path, code) in cases.items():
        result = _predict_under_ceiling(pad_model, path, tmp_path / name[:-4], 2 ** 30)
        assert result.returncode == code, (name, result.stderr)
        assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
        if code == 2:
            assert result.stderr.count("\n") == 1
            assert "over the limit of 89,478,485 pixels" in result.stderr


def test_a_strip_padded_directly_matches_the_padded_image_resized():
    strip = np.random.default_rng(0).uniform(0, 255, (1, 300)).astype(np.float32)
    top, _, _, _ = images.resize_window(1, 300, (28, 28), "pad")
    padded = np.pad(strip, ((top, top), (0, 0)))
    expected = np.asarray(Image.fromarray(padded).resize((28, 28), Image.Resampling.BILINEAR))
    got = images.read_image((strip / 255).astype(np.float32), (28, 28, 1), "pad")
    assert np.array_equal(got[..., 0], np.round(np.clip(expected, 0, 255)).astype(np.uint8))


def test_the_pixel_limit_is_the_same_on_both_routes_and_can_be_raised(tmp_path):
    folder = grey_pngs(tmp_path / "photos", 6, (20, 30), step=30)
    with pytest.raises(InputError, match=r"1\.png \(20x30, 600 pixels, over the limit of 500"):
        data.from_directory(folder, max_image_pixels=500, validation_split=0,
                            verbose=False)
    with pytest.raises(InputError, match=r"is 20x30 \(600 pixels\), over the limit of 500"):
        images.read_image(folder / "1.png", (20, 30, 1), max_pixels=500)
    assert data.from_directory(folder, max_image_pixels=600, validation_split=0,
                               verbose=False).num_test
    assert images.read_image(folder / "1.png", (20, 30, 1), max_pixels=None).shape == (20, 30, 1)
    png_header_only(folder / "bomb.png", 30000, 30000)
    found = data.from_directory(folder, skip_bad_images=True, validation_split=0,
                                verbose=False)
    assert [Path(path).name for path, _ in found.skipped] == ["bomb.png"]
    assert "over the limit of 89,478,485" in found.skipped[0][1]


def test_train_refuses_a_folder_of_bombs_in_one_line_before_decoding(tmp_path, capsys):
    folder = grey_pngs(tmp_path / "photos", 8, (28, 28), step=20)
    png_header_only(folder / "big.png", 12000, 12000)
    png_header_only(folder / "bomb.png", 30000, 30000)
    strip_png(folder / "strip.png", 100000)
    assert cli.main(["train", "--images", str(folder), "--image-size", "28x28",
                     "--resize", "pad", "--epochs", "1", "--output",
                     str(tmp_path / "run")]) == 2
    line = one_line_error(capsys, "train")
    assert "2 of 11 images" in line and "big.png (12000x12000" in line
    assert "bomb.png (30000x30000" in line and "--skip-bad-images" in line


# --- names, links, damaged runs ---------------------------------------------------------

def test_a_non_utf8_name_and_a_symlink_loop_are_read_once(tmp_path):
    folder = grey_pngs(tmp_path / "photos", 9, (8, 8), step=25)
    odd = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # Latin-1, not UTF-8
    Image.fromarray(np.full((8, 8), 99, np.uint8), "L").save(odd.decode("utf-8", "surrogateescape"))
    os.symlink(".", folder / "again")
    os.symlink(folder / "1.png", folder / "link.png")
    found = data.from_directory(folder, test_split=0.2, verbose=False)
    assert found.num_train + found.num_validation + found.num_test == 10
    everything = np.concatenate([x for split in (found.train, found.validation, found.test)
                                 if split is not None
                                 for _, x in split.unbatch().batch(64).as_numpy_iterator()])
    assert sorted(set(np.round(everything[:, 0, 0, 0] * 255).astype(int))) == sorted(
        [25 * i for i in range(9)] + [99])


def test_train_prints_a_non_utf8_name_it_cannot_read(tmp_path, capsys):
    folder = grey_pngs(tmp_path / "photos", 6, (8, 8))
    Path(os.fsdecode(os.path.join(os.fsencode(folder), b"\xff.png"))).write_text("text")
    assert cli.main(["train", "--images", str(folder), "--output",
                     str(tmp_path / "run")]) == 2
    assert "\\udcff.png" in one_line_error(capsys, "train")


def test_a_model_changed_after_a_finished_run_is_never_replaced(
        small_idx_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data-dir", str(small_idx_dir), "--model", "dense",
            "--hidden-units", "16", "--code-size", "4", "--epochs", "1",
            "--batch-size", "64", "--output", str(run)]
    assert cli.main(args) == 0
    model = run / "model.keras"
    model.write_bytes(model.read_bytes()[:1000])  # torn by something else
    capsys.readouterr()
    before = checksums(run)
    for extra in ([], ["--overwrite"]):
        assert cli.main(args + extra) == 2
        line = one_line_error(capsys, "train")
        assert f"{str(model)!r} was changed since keras-ae train wrote it" in line
        assert checksums(run) == before
    model.rename(tmp_path / "damaged.keras")  # the user moves it away
    (run / "notes.txt").write_text("mine")
    assert cli.main([*args, "--overwrite"]) == 0
    assert "starting over; removed the earlier run's" in capsys.readouterr().out
    assert (run / "notes.txt").read_text() == "mine"
    assert model.stat().st_size > 1000


def test_a_run_killed_while_finishing_names_its_damaged_model(small_idx_dir, tmp_path,
                                                              capsys):
    """No checksum yet (the kill came before it was recorded): the model is
    still the run's, and a damaged one is named with what to do."""
    run = tmp_path / "run"
    args = ["train", "--data-dir", str(small_idx_dir), "--model", "dense",
            "--hidden-units", "16", "--code-size", "4", "--epochs", "1",
            "--batch-size", "64", "--output", str(run)]
    assert cli.main(args) == 0
    manifest = outputs.read_manifest(run)
    del manifest["writers"]["train"]["fingerprints"]["model.keras"]  # as before the checksum
    files.write_json(run / outputs.MANIFEST_FILE, manifest)
    model = run / "model.keras"
    model.write_bytes(model.read_bytes()[:1000])
    capsys.readouterr()
    before = checksums(run)
    assert cli.main(args) == 2
    line = one_line_error(capsys, "train")
    assert f"{model} does not load" in line and "restore the file from checkpoints/" in line
    users = {name: sha for name, sha in checksums(run).items() if name != outputs.MANIFEST_FILE}
    assert users == {name: sha for name, sha in before.items() if name != outputs.MANIFEST_FILE}


# --- serving refuses NaN and out-of-range input -------------------------------------

def test_serving_refuses_nan_float_images_and_codes_beyond_float32(pad_model, tmp_path):
    model = OnnxAutoencoder(pad_model)
    nan = Image.fromarray(np.full((28, 28), np.nan, np.float32), "F")
    with pytest.raises(InputError, match="finite values"):
        model.prepare(nan)
    with pytest.raises(InputError, match="values from 0 to 255"):
        model.prepare(Image.fromarray(np.full((28, 28), 300, np.float32), "F"))
    assert model.prepare(Image.fromarray(np.full((28, 28), 127.6, np.float32), "F"))[0, 0, 0] == 128
    with pytest.raises(InputError, match="float32 can represent"):
        model.decode(np.full(model.code_shape, 1e300))
    assert np.isfinite(model.decode(np.full(model.code_shape, 3e38, np.float32))).all()


# --- fuzzed image files ------------------------------------------------------------------

def _valid_files():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out = {}
    for kind in ("PNG", "JPEG"):
        import io
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=kind)
        out[kind] = buffer.getvalue()
    return out


VALID = _valid_files()


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(sorted(VALID)), cut=st.floats(0, 0.99),
       flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(1, 255)),
                      max_size=4))
def test_damaged_images_give_one_line_in_predict(pad_model, tmp_path, capsys, kind, cut,
                                                 flips):
    path = tmp_path / f"damaged.{kind.lower()}"
    path.write_bytes(damage(VALID[kind], cut, flips))
    out = tmp_path / "out"
    code = cli.main(["predict", str(pad_model), str(path), "--output", str(out),
                     "--resize", "--overwrite"])
    if code != 0:  # a damaged file can still decode; else it is named in one line
        assert code == 2
        assert str(path) in one_line_error(capsys, "predict")
    capsys.readouterr()


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(min_size=0, max_size=64), header=st.sampled_from(
    [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM"]))
def test_random_bytes_named_as_images_are_refused_on_the_training_route(
        tmp_path_factory, header, payload):
    folder = grey_pngs(tmp_path_factory.mktemp("fuzz") / "photos", 4, (6, 6))
    (folder / "random.png").write_bytes(header + payload)
    with pytest.raises(InputError, match=r"random\.png"):
        data.from_directory(folder, test_split=0.25, validation_split=0,
                            verbose=False)
