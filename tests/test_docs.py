"""The examples in the docstrings run and say what they show."""

import doctest

import numpy as np
import pytest

import keras_ae
import keras_ae.anomaly as anomaly_package
from keras_ae.anomaly import options as anomaly_options
from keras_ae.models import builders
from keras_ae.data import sources as data
from keras_ae.anomaly import defects
from keras_ae.codes import adapter as downstream
from keras_ae.export import exporter as export
from keras_ae import files
from keras_ae.data import folders
from keras_ae.data import source as data_source
from keras_ae import public
from keras_ae.runtime import predict as runtime_predict
from keras_ae.anomaly import metrics as anomaly_metrics
from keras_ae.anomaly import patches as anomaly_patches
from keras_ae.runtime import images
from keras_ae.models import layers
from keras_ae.models import facts as model_facts
from keras_ae.runtime import onnx_files
from keras_ae import outputs
from keras_ae.data import pipelines
from keras_ae.runtime import pixels
from keras_ae.training import precision
from keras_ae.models import shapes
from keras_ae.training import loop as training
from keras_ae.training import divergence, signals
from keras_ae.runtime import image_files
from keras_ae.tuning import reports, space, trial_data


@pytest.mark.parametrize("module", [shapes, layers, builders, data, folders, images,
                                    pipelines, pixels, training, files, export,
                                    space, trial_data, reports, downstream,
                                    model_facts, onnx_files, defects, anomaly_options,
                                    precision, outputs, data_source, public,
                                    runtime_predict, anomaly_metrics, anomaly_patches,
                                    divergence, image_files, signals, anomaly_package],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"np": np, "keras_ae": keras_ae, **{
        name: getattr(keras_ae, name) for name in keras_ae.__all__}})
    assert result.attempted > 0
    assert result.failed == 0


def test_importing_the_package_does_not_load_tensorflow():
    import subprocess
    import sys
    code = ("import sys, keras_ae; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
            "print(keras_ae.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == keras_ae.__version__


# --- the README and the guides ------------------------------------------------

import re  # noqa: E402
import shlex  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted(
    p for p in (ROOT / "docs").glob("*.md") if p.name != "benchmarks.md")


def _blocks(page, language):
    return [textwrap.dedent(m.group(1))
            for m in re.finditer(rf"```{language}\n(.*?)```", page.read_text(), re.S)]


def _commands():
    """``(page, argv)`` of every ``keras-ae`` command in the pages' shell blocks."""
    found = []
    for page in PAGES:
        for block in _blocks(page, "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                for part in line.split("&&"):
                    if "keras-ae " not in part:
                        continue
                    words = shlex.split(part, comments=True)
                    while words and re.match(r"^[A-Z_]+=", words[0]):
                        words = words[1:]  # environment variables
                    if words[:1] == ["keras-ae"]:
                        found.append((page.name, words[1:]))
    return found


def test_the_pages_hold_commands_and_code():
    assert len(_commands()) >= 20
    assert sum(len(_blocks(page, "python")) for page in PAGES) >= 10


@pytest.mark.parametrize("page, argv", _commands(),
                         ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))
def test_every_command_in_the_pages_parses(page, argv):
    from keras_ae.cli import commands

    try:
        args = commands._parser().parse_args(argv)
    except SystemExit as error:
        pytest.fail(f"{page}: keras-ae {' '.join(argv)} does not parse ({error.code})")
    assert args.command == argv[0]


def test_the_parameter_counts_in_the_models_guide_are_the_builders():
    rows = re.findall(r'^\| `"(\w+)"` \|.*\| ([\d,]+) \|$',
                      (ROOT / "docs" / "models.md").read_text(), re.M)
    assert [name for name, _ in rows] == ["transpose", "upsample", "unpool"]
    for decoder, count in rows:
        model = keras_ae.build_conv_autoencoder(decoder=decoder)
        assert model.count_params() == int(count.replace(",", "")), decoder


@pytest.fixture
def stand_ins(tmp_path, monkeypatch):
    """What the pages' Python blocks take as given: small arrays for
    train_images, test_images and their labels (Fashion-MNIST-shaped blobs),
    an IDX folder standing in for Fashion-MNIST, a folder my_photos/ of two
    classes, and the shipped models under exported/; run in a fresh folder."""
    from PIL import Image

    from conftest import write_blob_idx
    from keras_ae.data import sources

    idx = write_blob_idx(tmp_path / "idx", 300, 60) if (tmp_path / "idx").mkdir() is None \
        else None
    monkeypatch.setattr(sources, "FASHION_MNIST_DIR", str(idx))
    splits = sources.load_idx_folder(idx)
    rng = np.random.default_rng(0)
    for name in ("china", "flower"):
        (tmp_path / "my_photos" / name).mkdir(parents=True)
        for index in range(12):
            pixels = rng.integers(0, 256, (30 + index, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "my_photos" / name / f"{index}.png")
    (tmp_path / "exported").symlink_to(ROOT / "exported")
    monkeypatch.chdir(tmp_path)
    as_float = lambda images: (images / 255.0).astype("float32")  # noqa: E731
    return {"train_images": as_float(splits["train"][0]), "train_labels": splits["train"][1],
            "test_images": as_float(splits["test"][0]), "test_labels": splits["test"][1],
            "idx_folder": str(idx)}


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "python")],
                         ids=lambda p: p.name)
def test_the_python_in_the_pages_runs(page, stand_ins):
    namespace = dict(stand_ins)
    for number, block in enumerate(_blocks(page, "python"), 1):
        try:
            exec(compile(block, f"{page.name}, python block {number}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{page.name}, python block {number}: {error!r}") from error
