import hashlib
import os
import re
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same seeds (Python, NumPy, TensorFlow)."""
    keras.utils.set_random_seed(1234)
    yield


def write_blob_idx(folder, train, test, seed=0):
    """Writes a Fashion-MNIST-shaped folder of IDX files: 28x28 uint8 blobs
    (one soft spot per image), labels 0-9. Returns the folder."""
    import numpy as np

    from keras_ae.data import sources as data_lib

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    for prefix, n in (("train", train), ("t10k", test)):
        centres = rng.uniform(6, 22, size=(n, 2))
        blobs = np.exp(-((yy - centres[:, :1, None]) ** 2
                         + (xx - centres[:, 1:, None]) ** 2) / 20)
        data_lib.write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                           (blobs * 255).astype(np.uint8))
        data_lib.write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz",
                           rng.integers(0, 10, n).astype(np.uint8))
    return folder


def smooth_images(count, size=16, seed=0):
    """Products of low-frequency sines in [0, 1], shape (count, size, size,
    1): learnable, deterministic images."""
    import numpy as np

    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, size, dtype="float32")
    freq = rng.uniform(0.5, 2.0, (count, 2, 1)).astype("float32")
    phase = rng.uniform(0, 2 * np.pi, (count, 2, 1)).astype("float32")
    rows = np.sin(2 * np.pi * freq[:, 0] * grid + phase[:, 0])
    cols = np.sin(2 * np.pi * freq[:, 1] * grid + phase[:, 1])
    images = 0.5 + 0.5 * rows[:, :, None] * cols[:, None, :]
    return images[..., None].astype("float32")


# --- shared data, models and exports: made once per session, read-only ---------

@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory):
    """1200 train and 200 test images in IDX files."""
    return write_blob_idx(tmp_path_factory.mktemp("idx"), 1200, 200)


@pytest.fixture(scope="session")
def small_idx_dir(tmp_path_factory):
    """300 train and 60 test images in IDX files, for command-line tests."""
    return write_blob_idx(tmp_path_factory.mktemp("idx"), 300, 60)


def png_pixels(path):
    """A PNG file's pixels as an (H, W, 3) uint8 array; fails on a non-PNG."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as picture:
        assert picture.format == "PNG", f"{path} is {picture.format}, not PNG"
        return np.asarray(picture.convert("RGB"))


def colours(pixels, saturation=60):
    """The distinct saturated colours in ``pixels`` (greys left out)."""
    flat = pixels.reshape(-1, 3).astype(int)
    saturated = flat[flat.max(axis=1) - flat.min(axis=1) > saturation]
    return {tuple(c) for c in saturated}


def load_tool(name):
    """A script of tools/ as a module (the folder makers are tested through it)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools",
                        f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"tools_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory):
    """Real colour photos: 24 JPEG crops of scikit-learn's china.jpg and
    flower.jpg at mixed sizes (20 to 60 pixels a side), train/ and test/
    with a class folder per photo."""
    folder = tmp_path_factory.mktemp("photos") / "photos"
    load_tool("make_image_folders").write_photo_crops(folder, 24, sizes=(20, 60),
                                                      test_share=0.25)
    return folder


@pytest.fixture(scope="session")
def trained_run(idx_dir, tmp_path_factory):
    """A run folder of `keras-ae train` on ``idx_dir``: a small conv model
    (filters 8,4), 2 epochs. Tests read it; one that writes copies it."""
    from keras_ae.cli import commands

    out = tmp_path_factory.mktemp("trained") / "run"
    assert commands.main(["train", "--data-dir", str(idx_dir), "--filters", "8,4",
                          "--epochs", "2", "--batch-size", "32", "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def trained_export(trained_run, tmp_path_factory):
    """`keras-ae export` of ``trained_run``'s model: model.onnx, encoder.onnx,
    decoder.onnx and model_card.json (no SavedModel)."""
    from keras_ae.cli import commands

    out = tmp_path_factory.mktemp("exported") / "run"
    assert commands.main(["export", str(trained_run / "model.keras"), "--output", str(out),
                          "--formats", "onnx"]) == 0
    return out


def damaged(payload, cut, flips):
    """``payload`` cut to the share ``cut`` (at least one byte), then each
    ``(position, value)`` of ``flips`` XORed in: a damaged file for fuzzing."""
    damaged = bytearray(payload[:max(1, int(len(payload) * cut))])
    for position, value in flips:
        damaged[position % len(damaged)] ^= value
    return bytes(damaged)


def checksums(folder):
    """``{relative path: sha256}`` of every file under ``folder``."""
    folder = Path(folder)
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def one_line_error(capsys, command):
    """The command's stderr: exactly one line, keras-ae's, no traceback."""
    err = capsys.readouterr().err
    # TensorFlow's C++ log ("E0000 00:00:... cuInit") is not the command's
    lines = [line for line in err.splitlines()
             if line.strip() and not re.match(r"[EWI]\d{4} ", line)]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"keras-ae {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]
