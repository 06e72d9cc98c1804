"""Hostile or broken models on the serving route: an ONNX file that outputs
NaN, another shape, or whose metadata claims huge shapes or points outside
its folder, is refused in one line, with nothing written."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from keras_ae.cli import commands as cli
from keras_ae.errors import InputError
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder


def one_line_error(capsys, command):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"keras-ae {command}: error: "), err
    return lines[0]


def hand_made_model(path, *, output_rows=4, scale=1.0, metadata=None):
    """An "autoencoder" of 4x4 grey images, written with onnx.helper:
    ``reconstruction = image[:, :output_rows] * scale``."""
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 4, 4, 1])
    out = helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT,
                                        [None, output_rows, 4, 1])
    constants = [helper.make_tensor(name, TensorProto.INT64, [1], [value])
                 for name, value in (("starts", 0), ("ends", output_rows), ("axes", 1))]
    constants.append(helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]))
    nodes = [helper.make_node("Slice", ["image", "starts", "ends", "axes"], ["rows"]),
             helper.make_node("Mul", ["rows", "scale"], ["reconstruction"])]
    graph = helper.make_graph(nodes, "hand_made", [image], [out], initializer=constants)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    for key, value in {"keras_ae.role": "autoencoder", **(metadata or {})}.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(proto, path)
    return path


@pytest.fixture
def image(tmp_path):
    Image.fromarray(np.full((4, 4), 100, np.uint8), "L").save(tmp_path / "x.png")
    return tmp_path / "x.png"


def test_a_model_that_outputs_nan_is_never_served(tmp_path, image, capsys):
    model = hand_made_model(tmp_path / "nan.onnx", scale=float("nan"))
    out = tmp_path / "out"
    assert cli.main(["predict", str(model), str(image), "--output", str(out)]) == 2
    line = one_line_error(capsys, "predict")
    assert "nan.onnx gives NaN or infinite outputs (16 of 16 values)" in line
    assert not out.exists()
    with pytest.raises(InputError, match="gives NaN or infinite outputs"):
        OnnxAutoencoder(model).reconstruction_error(np.zeros((1, 4, 4, 1), np.uint8))


def test_a_model_whose_output_has_another_shape_is_one_line(tmp_path, image, capsys):
    model = hand_made_model(tmp_path / "rows.onnx", output_rows=2)
    assert cli.main(["predict", str(model), str(image), "--output",
                     str(tmp_path / "out")]) == 2
    line = one_line_error(capsys, "predict")
    assert "rows.onnx returned 'reconstruction' of shape (1, 2, 4, 1)" in line
    assert "expected (1, 4, 4, 1)" in line


def test_metadata_shapes_are_bounded_before_anything_is_allocated(tmp_path, image, capsys):
    model = hand_made_model(tmp_path / "huge.onnx",
                            metadata={"keras_ae.input_shape": [100000, 100000, 1]})
    assert cli.main(["predict", str(model), str(image), "--resize", "--output",
                     str(tmp_path / "out")]) == 2
    line = one_line_error(capsys, "predict")
    assert "input_shape [100000, 100000, 1] claims 10,000,000,000 values" in line


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "..", "a/b.onnx"])
def test_metadata_never_names_a_file_outside_the_models_folder(tmp_path, name):
    model = hand_made_model(tmp_path / "model.onnx",
                            metadata={"keras_ae.encoder_file": name})
    with pytest.raises(InputError, match=r"encoder_file .* is not a file name in the "
                                         r"model's folder"):
        OnnxAutoencoder(model)


# --- .keras archives: config size and modules checked before Keras reads them ---

@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    import keras_ae

    path = tmp_path_factory.mktemp("keras") / "model.keras"
    keras_ae.build_dense_autoencoder((8, 8, 1), code_size=2, hidden_units=(4,)).save(path)
    return path


def rewritten(source, target, config_bytes=None, change=None):
    """``source`` with its config.json replaced (``config_bytes``) or edited
    (``change(config)``); written by zipfile, deflated."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(
            target, "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            payload = old.read(name)
            if name == "config.json":
                if change is not None:
                    config = json.loads(payload)
                    change(config)
                    payload = json.dumps(config).encode()
                payload = config_bytes if config_bytes is not None else payload
            new.writestr(name, payload)
    return target


@pytest.mark.parametrize("module, class_name", [
    ("os", "system"), ("subprocess", "Popen"),
    ("keras.config", "enable_unsafe_deserialization")])
def test_a_config_naming_an_unsafe_module_is_refused_in_one_line(
        keras_file, tmp_path, capsys, module, class_name):
    def change(config):
        config["config"]["layers"][1].update(module=module, class_name=class_name,
                                             registered_name=None)
    bad = rewritten(keras_file, tmp_path / "bad.keras", change=change)
    assert cli.main(["export", str(bad), "--output", str(tmp_path / "out")]) == 2
    line = one_line_error(capsys, "export")
    assert f"names module {module!r} (class {class_name!r})" in line
    assert not (tmp_path / "out").exists()


def test_a_huge_config_is_refused_unread_even_where_the_zip_directory_lies(
        keras_file, tmp_path):
    import tracemalloc

    from keras_ae.models.loading import MAX_CONFIG_BYTES, load_keras_model

    honest = rewritten(keras_file, tmp_path / "honest.keras",
                       config_bytes=b" " * (MAX_CONFIG_BYTES * 4))
    # the same archive, its directory claiming 100 bytes for config.json
    lying = tmp_path / "lying.keras"
    data = bytearray(honest.read_bytes())
    # the size field of config.json's local header (at 22) and of its
    # central directory entry (at 24), the name after 30 and 46 bytes
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = data.find(signature)
        while data[start + name_at:start + name_at + 11] != b"config.json":
            start = data.find(signature, start + 1)
        data[start + size_at:start + size_at + 4] = (100).to_bytes(4, "little")
    lying.write_bytes(bytes(data))
    tracemalloc.start()
    for path, said in ((honest, MAX_CONFIG_BYTES * 4), (lying, 100)):
        with pytest.raises(InputError, match=f"16 MiB or larger config.json "
                                             f"\\(its zip directory says {said} bytes\\)"):
            load_keras_model(path)
    assert tracemalloc.get_traced_memory()[1] < 8 * 2 ** 20  # inflated in 1 MiB steps
    tracemalloc.stop()


# --- IDX files: the header first, then only as much as it describes ---

def test_a_gzip_bomb_is_read_only_as_far_as_its_header_says(tmp_path):
    import gzip
    import tracemalloc

    from keras_ae.data import sources

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb", compresslevel=1) as f:
        f.write(b"\0\0\x08\x03" + np.array([1000, 28, 28], ">u4").tobytes())
        for _ in range(32):
            f.write(bytes(2 ** 23))  # 256 MiB of zeros after a 784 KB array
    tracemalloc.start()
    with pytest.raises(InputError, match="is too long: .*784000 bytes of data, "
                                         "got 1832576 or more bytes"):
        sources.read_idx(bomb)
    assert tracemalloc.get_traced_memory()[1] < 8 * 2 ** 20
    tracemalloc.stop()


def test_an_idx_header_claiming_terabytes_is_refused_before_any_allocation(tmp_path):
    from keras_ae.data import sources

    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\0\0\x08\x03" + np.array([100000, 100000, 100], ">u4").tobytes())
    with pytest.raises(InputError, match=r"claims shape \(100000, 100000, 100\) of "
                                         r"uint8, 931.3 GiB of data; at most 2 GiB"):
        sources.read_idx(path)


# --- fuzzing: damaged IDX files and ONNX metadata give a result or one line ---

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import damaged  # noqa: E402


def _idx_payloads():
    """Valid IDX files, raw and gzipped, of three types."""
    import gzip
    import tempfile

    from keras_ae.data import sources

    out, folder = {}, tempfile.mkdtemp()
    for name, array in (("images", np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4)),
                        ("labels", np.array([7, 2, 1], np.uint8)),
                        ("int16", np.arange(6, dtype=">i2").reshape(2, 3))):
        sources.write_idx(f"{folder}/{name}-idx", array)
        with open(f"{folder}/{name}-idx", "rb") as f:
            out[name] = f.read()
        out[name + ".gz"] = gzip.compress(out[name], mtime=0)
    return out


IDX_PAYLOADS = _idx_payloads()


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(IDX_PAYLOADS)), cut=st.floats(0.05, 1.0),
       flips=st.lists(st.tuples(st.integers(0, 10 ** 4), st.integers(1, 255)), max_size=4))
def test_damaged_idx_files_are_read_as_their_header_says_or_refused(tmp_path, name, cut,
                                                                     flips):
    from keras_ae.data import sources

    path = tmp_path / "fuzzed-idx"
    path.write_bytes(damaged(IDX_PAYLOADS[name], cut, flips))
    try:
        array = sources.read_idx(path)
    except InputError as error:
        assert str(path) in str(error)
        return
    # what was read is exactly what the (damaged) header describes
    import gzip
    raw = path.read_bytes()
    raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", raw[3], offset=4))
    assert array.shape == shape and array.nbytes == len(raw) - 4 - 4 * raw[3]
    assert array.flags.writeable


_METADATA_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 12, 10 ** 12) | st.floats()
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                 inner, max_size=3),
    max_leaves=8)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["input_shape", "code_shape", "preprocessing", "encoder_file",
                            "decoder_file", "role", "threshold"]),
       value=_METADATA_VALUES)
def test_fuzzed_onnx_metadata_loads_or_is_one_line(tmp_path, key, value):
    path = hand_made_model(tmp_path / "fuzzed.onnx", metadata={f"keras_ae.{key}": value})
    try:
        model = OnnxAutoencoder(path)
    except InputError:
        return
    out = model.reconstruct(np.full((1, 4, 4, 1), 0.5, np.float32))
    assert out.shape == (1, 4, 4, 1)


def test_a_fifo_named_as_an_idx_file_is_refused_unread(tmp_path):
    import os
    import time

    from keras_ae.data import sources

    os.mkfifo(tmp_path / "train-images-idx3-ubyte")
    started = time.monotonic()
    with pytest.raises(InputError, match="is a FIFO \\(named pipe\\), not a regular file; "
                                         "expected an IDX file"):
        sources.read_idx(tmp_path / "train-images-idx3-ubyte")
    assert time.monotonic() - started < 1
