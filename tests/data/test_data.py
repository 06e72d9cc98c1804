"""Image pipelines: IDX files, arrays, tensorflow-datasets, noise, errors."""

import ast
import gzip
import inspect
import os
import shutil
import socket
import time

import numpy as np
import pytest

from keras_ae.data import sources as data
from keras_ae.data import tfds as tfds_data

N_TRAIN, N_TEST, SIZE = 50, 20, 8
FASHION_FILES = [os.path.join(data.FASHION_MNIST_DIR, name + ".gz")
                 for pair in data.IDX_FILES.values() for name in pair]


def images_with_ids(n, seed):
    """uint8 images whose first pixel is their index, so each is unique."""
    images = np.random.default_rng(seed).integers(
        0, 256, (n, SIZE, SIZE), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)
    return images


@pytest.fixture
def idx_folder(tmp_path):
    """A small MNIST-style folder: train files gzipped, test files plain."""
    folder = tmp_path / "idx"
    folder.mkdir()
    train, test = images_with_ids(N_TRAIN, 1), images_with_ids(N_TEST, 2)
    data.write_idx(folder / "train-images-idx3-ubyte.gz", train)
    data.write_idx(folder / "train-labels-idx1-ubyte.gz",
                   (np.arange(N_TRAIN) % 10).astype(np.uint8))
    data.write_idx(folder / "t10k-images-idx3-ubyte", test)
    data.write_idx(folder / "t10k-labels-idx1-ubyte",
                   (np.arange(N_TEST) % 10).astype(np.uint8))
    return folder, train, test


def collect(dataset):
    """All batches of an (input, target) dataset, as two NumPy arrays."""
    inputs, targets = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    return np.concatenate(inputs), np.concatenate(targets)


def ids(images):
    """The index stored in each image's first pixel (float images)."""
    return np.rint(images[:, 0, 0, 0] * 255).astype(int).tolist()


# --- IDX files --------------------------------------------------------------

@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32",
                                   "float32", "float64"])
def test_idx_round_trip(tmp_path, name, dtype):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    path = tmp_path / name
    data.write_idx(path, array)
    back = data.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert os.listdir(tmp_path) == [name]  # no temporary file left behind


def test_idx_header_layout_and_overwrite(tmp_path):
    path = tmp_path / "labels"
    data.write_idx(path, np.zeros(3, np.uint8))
    data.write_idx(path, np.array([[1, 2]], np.uint8))  # replaces the file
    assert path.read_bytes() == bytes.fromhex("00000802 00000001 00000002 0102")


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    data.write_idx(tmp_path / "x.gz", array)
    os.rename(tmp_path / "x.gz", tmp_path / "compressed")
    np.testing.assert_array_equal(data.read_idx(tmp_path / "compressed"), array)
    data.write_idx(tmp_path / "plain", array)
    os.rename(tmp_path / "plain", tmp_path / "plain.gz")
    np.testing.assert_array_equal(data.read_idx(tmp_path / "plain.gz"), array)


@pytest.mark.parametrize("array", [np.zeros(3, np.int64), np.zeros(3, bool),
                                   np.zeros((), np.uint8)], ids=str)
def test_write_idx_rejects_what_idx_cannot_store(tmp_path, array):
    with pytest.raises(ValueError, match="write_idx"):
        data.write_idx(tmp_path / "x", array)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("content, message", [
    (b"\x01\x02\x08\x01\x00\x00\x00\x03abc", "not an IDX file.*01 02 08 01"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x03abc", "not an IDX file"),
    (b"", "not an IDX file.*empty"),
    (b"\x00\x00\x08\x02\x00\x00\x00\x03", "truncated.*needs 12 bytes.*got 8"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03ab", "truncated.*3 bytes.*got 2 bytes"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x03abcd", "too long.*3 bytes.*got 4 bytes"),
    (b"\x00\x00\x0b\x01\x00\x00\x00\x02abc", "truncated.*4 bytes.*got 3 bytes"),
    (b"\x1f\x8b\x08\x00garbage", "not a valid gzip file"),
], ids=["magic", "type", "empty", "header", "short", "long", "int16", "gzip"])
def test_bad_idx_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_payload_gives_the_byte_counts(tmp_path):
    path = tmp_path / "short.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x02\x00\x00\x00\x02"
                                   b"\x00\x00\x00\x02abc"))
    with pytest.raises(ValueError, match="short.gz is truncated.*4 bytes.*got 3 bytes"):
        data.read_idx(path)


def test_missing_file_is_named_with_the_folder_and_the_apt_hint(idx_folder):
    folder, _, _ = idx_folder
    os.remove(folder / "t10k-labels-idx1-ubyte")
    with pytest.raises(data.MissingDataError) as info:
        data.load_idx_folder(folder)
    message = str(info.value)
    assert str(folder) in message
    assert "t10k-labels-idx1-ubyte[.gz]" in message
    assert "train-images" not in message  # only what is missing
    assert "apt-get install dataset-fashion-mnist" in message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FileNotFoundError)


def test_missing_folder_says_so(tmp_path):
    with pytest.raises(data.MissingDataError, match="does not exist"):
        data.load_idx_folder(tmp_path / "nowhere")


def test_load_idx_folder_shapes_and_dtypes(idx_folder):
    folder, train, test = idx_folder
    splits = data.load_idx_folder(folder)
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    assert train_x.shape == (N_TRAIN, SIZE, SIZE, 1) and train_x.dtype == np.uint8
    assert train_y.shape == (N_TRAIN,) and train_y.dtype == np.uint8
    assert test_y.shape == (N_TEST,) and test_y.dtype == np.uint8
    np.testing.assert_array_equal(train_x[..., 0], train)
    np.testing.assert_array_equal(test_x[..., 0], test)


def test_labels_count_must_match_images(idx_folder):
    folder, _, _ = idx_folder
    data.write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(N_TEST - 1, np.uint8))
    with pytest.raises(ValueError, match=f"{N_TEST - 1} labels.*{N_TEST} images"):
        data.load_idx_folder(folder)


def test_images_must_be_3d(idx_folder):
    folder, _, _ = idx_folder
    data.write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((N_TEST, 64), np.uint8))
    with pytest.raises(ValueError, match=r"t10k-images.*\(N, H, W\).*\(20, 64\)"):
        data.load_idx_folder(folder)


# --- pipelines from IDX folders and arrays ----------------------------------

def test_from_idx_counts_shapes_and_exact_values(idx_folder):
    folder, train, test = idx_folder
    d = data.from_idx(folder, batch_size=16)
    assert (d.num_train, d.num_validation, d.num_test) == (45, 5, 20)
    assert d.image_shape == (SIZE, SIZE, 1)
    assert d.source == f"idx:{folder}"
    assert d.batch_size == 16 and d.noise_factor == 0.0

    inputs, targets = collect(d.test)
    assert inputs.dtype == np.float32 and inputs.shape == (N_TEST, SIZE, SIZE, 1)
    np.testing.assert_array_equal(targets[..., 0], test.astype(np.float32) / 255)
    np.testing.assert_array_equal(inputs, targets)
    assert [x.shape[0] for x, _ in d.test] == [16, 4]

    # train and validation split the training images between them
    train_in, train_out = collect(d.train)
    _, val_out = collect(d.validation)
    np.testing.assert_array_equal(train_in, train_out)
    assert sorted(ids(train_out) + ids(val_out)) == list(range(N_TRAIN))
    assert ids(val_out) == sorted(ids(val_out))  # not shuffled
    for images in (train_out, val_out):
        np.testing.assert_array_equal(
            images[..., 0], train[ids(images)].astype(np.float32) / 255)


def test_validation_split_sizes_and_none(idx_folder):
    folder, _, _ = idx_folder
    d = data.from_idx(folder, validation_split=0.3)
    assert (d.num_train, d.num_validation) == (35, 15)
    d = data.from_idx(folder, validation_split=0)
    assert d.validation is None and (d.num_train, d.num_validation) == (50, 0)
    assert len(collect(d.train)[0]) == 50


def test_shuffle_is_seeded_and_fresh_each_epoch(idx_folder):
    folder, _, _ = idx_folder

    def first_epochs(seed):
        d = data.from_idx(folder, batch_size=8, validation_split=0, seed=seed)
        return [ids(collect(d.train)[1]) for _ in range(2)]

    one, again, other = first_epochs(3), first_epochs(3), first_epochs(4)
    assert one == again  # same seed, same order, epoch by epoch
    assert one[0] != one[1]  # reshuffled each epoch
    assert sorted(one[0]) == sorted(one[1]) == list(range(N_TRAIN))
    assert one[0] != other[0]
    assert one[0] != list(range(N_TRAIN))  # shuffled at all


def test_labeled_keeps_images_and_labels_together(idx_folder):
    folder, train, _ = idx_folder
    d = data.from_idx(folder, batch_size=16)
    for split, count in [("train", 45), ("validation", 5), ("test", 20)]:
        batches = list(d.labeled(split, batch_size=7))
        assert [x.shape[0] for x, _ in batches][0] == min(7, count)
        images = np.concatenate([x.numpy() for x, _ in batches])
        labels = np.concatenate([y.numpy() for _, y in batches])
        assert len(images) == len(labels) == count
        assert images.dtype == np.float32 and labels.dtype == np.int64
        np.testing.assert_array_equal(labels, np.array(ids(images)) % 10)
    train_images = np.concatenate([x.numpy() for x, _ in d.labeled("train")])
    np.testing.assert_array_equal(
        train_images[..., 0], train[ids(train_images)].astype(np.float32) / 255)


def test_labeled_errors_name_the_split():
    images = np.zeros((10, 4, 4), np.uint8)
    d = data.from_arrays(images, images, train_labels=np.zeros(10, int),
                         validation_split=0)
    with pytest.raises(ValueError, match="'test'"):
        d.labeled("test")  # no test labels given
    with pytest.raises(ValueError, match="'validation'.*validation_split=0"):
        d.labeled("validation")
    with pytest.raises(ValueError, match="'valid'"):
        d.labeled("valid")
    with pytest.raises(ValueError, match="batch_size"):
        d.labeled("train", batch_size=0)
    assert len(list(d.labeled("train", batch_size=4))) == 3


def test_float_arrays_and_channels_are_kept():
    rng = np.random.default_rng(0)
    train = rng.uniform(size=(12, 5, 6, 3))
    d = data.from_arrays(train, train[:3], validation_split=0, batch_size=4)
    assert d.image_shape == (5, 6, 3) and d.source == "arrays"
    _, targets = collect(d.test)
    np.testing.assert_array_equal(targets, train[:3].astype(np.float32))


# --- denoising ---------------------------------------------------------------

def grey(n=40, size=32):
    return np.full((n, size, size), 0.5, np.float32)


def test_noise_is_on_inputs_only_with_the_right_strength():
    d = data.from_arrays(grey(), grey(8), noise_factor=0.1, batch_size=16)
    assert d.noise_factor == 0.1
    for dataset in (d.train, d.validation, d.test):
        inputs, targets = collect(dataset)
        assert np.all(targets == 0.5)  # clean
        assert inputs.min() >= 0 and inputs.max() <= 1
        noise = inputs - targets
        # 0.5 +- 5 sigma never clips, so this is the raw noise
        assert abs(noise.std() - 0.1) < 0.005
        assert abs(noise.mean()) < 0.005


def test_strong_noise_is_clipped_to_unit_range():
    d = data.from_arrays(grey(), grey(8), noise_factor=1.0)
    inputs, _ = collect(d.test)
    assert inputs.min() == 0.0 and inputs.max() == 1.0


def test_train_noise_is_fresh_each_epoch_test_noise_fixed_and_seeded():
    def build(seed):
        return data.from_arrays(grey(), grey(8), noise_factor=0.2,
                                validation_split=0.25, seed=seed)

    d = build(5)
    train1, train2 = collect(d.train)[0], collect(d.train)[0]
    assert not np.allclose(train1, train2)
    np.testing.assert_array_equal(collect(d.test)[0], collect(d.test)[0])
    np.testing.assert_array_equal(collect(d.validation)[0],
                                  collect(d.validation)[0])
    # the same seed gives the same noise, epoch by epoch
    again = build(5)
    np.testing.assert_array_equal(collect(again.train)[0], train1)
    np.testing.assert_array_equal(collect(again.train)[0], train2)
    assert not np.allclose(collect(build(6).train)[0], train1)


# --- option and array errors --------------------------------------------------

GOOD = np.zeros((10, 4, 4), np.uint8)


@pytest.mark.parametrize("kwargs, message", [
    (dict(train_images=np.zeros((10, 4)), test_images=GOOD),
     r"train_images.*\(N, H, W\).*got shape \(10, 4\)"),
    (dict(train_images=GOOD[:0], test_images=GOOD), r"non-empty.*\(0, 4, 4\)"),
    (dict(train_images=GOOD, test_images=np.zeros((2, 5, 4), np.uint8)),
     r"same \(H, W, C\).*\(4, 4, 1\) and \(5, 4, 1\)"),
    (dict(train_images=GOOD.astype(np.int32), test_images=GOOD),
     "uint8.*float.*int32"),
    (dict(train_images=np.full((10, 4, 4), np.nan), test_images=GOOD), "NaN"),
    (dict(train_images=GOOD, test_images=np.full((2, 4, 4), 255.0)),
     r"test_images.*\[0, 1\].*255"),
    (dict(train_images=GOOD, test_images=np.full((2, 4, 4), -0.1)),
     r"\[0, 1\].*-0.1"),
    (dict(train_labels=np.zeros(9)), r"one label per image.*\(10,\).*\(9,\)"),
    (dict(test_labels=np.zeros((10, 1), int)), r"test_labels.*\(10, 1\)"),
    (dict(train_labels=np.zeros(10)), "integers.*float64"),
    (dict(batch_size=0), "batch_size.*positive.*0"),
    (dict(batch_size=2.0), "batch_size.*2.0"),
    (dict(validation_split=1.0), r"validation_split.*\[0, 1\).*1.0"),
    (dict(validation_split=-0.1), "validation_split.*-0.1"),
    (dict(validation_split=0.01), "leaves 0 validation"),
    (dict(noise_factor=-1), "noise_factor.*-1"),
    (dict(noise_factor=float("nan")), "noise_factor.*nan"),
    (dict(seed=-1), "seed.*-1"),
    (dict(cache="yes"), "cache.*'yes'"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_from_arrays_errors_say_what_was_given_and_expected(kwargs, message):
    kwargs = {"train_images": GOOD, "test_images": GOOD, **kwargs}
    with pytest.raises(ValueError, match=message):
        data.from_arrays(**kwargs)


# --- tensorflow-datasets -----------------------------------------------------

@pytest.fixture
def mock_tfds():
    tfds = pytest.importorskip("tensorflow_datasets")
    # USE_CODE builds examples from the feature spec, with no metadata files
    # and no network. Every split (sliced or not) gets num_examples images.
    with tfds.testing.mock_data(num_examples=12,
                                policy=tfds.testing.MockPolicy.USE_CODE):
        yield tfds


def test_from_tfds_with_mock_data(mock_tfds, tmp_path):
    d = data.from_tfds("mnist", data_dir=tmp_path, batch_size=5)
    assert d.image_shape == (28, 28, 1) and d.source == "tfds:mnist"
    assert (d.num_train, d.num_validation, d.num_test) == (12, 12, 12)
    inputs, targets = collect(d.train)
    assert inputs.shape == (12, 28, 28, 1) and inputs.dtype == np.float32
    assert 0 <= inputs.min() and inputs.max() <= 1 and inputs.max() > 0
    np.testing.assert_array_equal(inputs, targets)
    labels = np.concatenate([y.numpy() for _, y in d.labeled("test")])
    assert labels.dtype == np.int64 and len(labels) == 12
    assert set(labels.tolist()) <= set(range(10))


def test_from_tfds_denoising_and_no_validation(mock_tfds):
    d = data.from_tfds("mnist", validation_split=0, noise_factor=0.3)
    assert d.validation is None
    inputs, targets = collect(d.test)
    assert not np.array_equal(inputs, targets)
    assert 0 <= inputs.min() and inputs.max() <= 1


@pytest.fixture(scope="module")
def prepared_tfds(tmp_path_factory):
    """A real tfds data_dir holding tfds' offline DummyMnist (20 + 20 images)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    data_dir = tmp_path_factory.mktemp("tfds")
    tfds.testing.DummyMnist(data_dir=data_dir).download_and_prepare()
    return data_dir


def test_from_tfds_reads_a_prepared_data_dir(prepared_tfds, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def no_download(self, *args, **kwargs):
        raise AssertionError("a prepared dataset needs no download")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare",
                        no_download)
    d = data.from_tfds("dummy_mnist", data_dir=prepared_tfds, batch_size=4,
                       validation_split=0.25)
    assert (d.num_train, d.num_validation, d.num_test) == (15, 5, 20)
    assert d.image_shape == (28, 28, 1)
    train, _ = collect(d.train)
    val, _ = collect(d.validation)
    assert train.shape == (15, 28, 28, 1) and val.shape == (5, 28, 28, 1)
    # validation is the end of tfds' train split, in order; train the rest
    labels = [y.numpy().tolist() for _, y in d.labeled("validation", 5)]
    every = np.concatenate([y.numpy() for _, y in
                            data.from_tfds("dummy_mnist", data_dir=prepared_tfds,
                                           validation_split=0).labeled("train")])
    assert labels == [every[15:].tolist()]
    with pytest.raises(ValueError, match="leaves 0 validation"):
        data.from_tfds("dummy_mnist", data_dir=prepared_tfds,
                       validation_split=0.01)


def test_unknown_tfds_name_is_named_with_close_matches():
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(ValueError, match="'mnsit'.*did you mean.*'mnist'"):
        data.from_tfds("mnsit")


def test_download_failure_names_the_offline_routes(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    requests = pytest.importorskip("requests")
    offline = requests.exceptions.ConnectionError(
        "Failed to resolve 'storage.googleapis.com'")

    def fail(self, *args, **kwargs):  # what tfds raises with no network
        raise offline

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", fail)
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.from_tfds("mnist", data_dir=tmp_path)
    message = str(info.value)
    for part in ["'mnist'", "no internet", "data_dir=", "--data-dir",
                 "apt-get install dataset-fashion-mnist", data.FASHION_MNIST_DIR,
                 "tfds_data_dir=", "from_arrays", str(tmp_path)]:
        assert part in message
    assert info.value.__cause__ is offline
    assert isinstance(info.value, RuntimeError)


def _online():
    try:
        socket.getaddrinfo("storage.googleapis.com", 443)
    except OSError:
        return False
    return True


@pytest.mark.skipif(_online(), reason="would download MNIST: this checks offline")
def test_real_offline_download_fails_fast(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.core.download import downloader
    retries = downloader.MAX_RETRIES
    start = time.monotonic()
    with pytest.raises(data.DatasetUnavailableError, match="no internet"):
        data.from_tfds("mnist", data_dir=tmp_path)
    assert time.monotonic() - start < 60  # tfds alone takes ~3.5 minutes
    assert downloader.MAX_RETRIES == retries  # restored


# --- load() --------------------------------------------------------------------

def test_load_reads_a_data_dir_first(idx_folder, mock_tfds):
    folder, _, _ = idx_folder
    assert data.load(data_dir=folder).source == f"idx:{folder}"
    d = data.load("digits", data_dir=folder, validation_split=0.2)
    assert d.source == f"idx:{folder} (digits)"
    assert (d.num_train, d.num_validation) == (40, 10)


def test_load_prefers_the_installed_fashion_mnist(idx_folder, monkeypatch, mock_tfds):
    folder, _, _ = idx_folder
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", str(folder))
    assert data.load().source == f"idx:{folder}"
    assert data.load("fashion_mnist").source == f"idx:{folder}"
    assert data.load("mnist").source == "tfds:mnist"
    shutil.rmtree(folder)
    assert data.load().source == "tfds:fashion_mnist"


@pytest.mark.skipif(not all(map(os.path.exists, FASHION_FILES)),
                    reason="apt-get install dataset-fashion-mnist")
def test_load_reads_the_installed_fashion_mnist():
    d = data.load()
    assert d.source == f"idx:{data.FASHION_MNIST_DIR}"
    assert (d.num_train, d.num_validation, d.num_test) == (54000, 6000, 10000)
    assert d.image_shape == (28, 28, 1)
    with gzip.open(os.path.join(data.FASHION_MNIST_DIR,
                                "t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read(16 + 28 * 28)
    first = np.frombuffer(raw[16:], np.uint8).reshape(28, 28, 1)
    inputs, targets = next(iter(d.test))
    np.testing.assert_array_equal(targets[0].numpy(), first.astype(np.float32) / 255)
    np.testing.assert_array_equal(inputs[0].numpy(), targets[0].numpy())


def test_tensorflow_datasets_is_imported_only_when_used():
    # It takes seconds to import; a subprocess to prove it would too, so
    # check that no module-level statement imports it.
    for module, also in ((data, "numpy"), (tfds_data, "tensorflow")):
        tree = ast.parse(inspect.getsource(module))
        imported = [alias.name for node in tree.body
                    if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in node.names] + [
            node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
        assert also in imported  # the check does read the imports
        assert not any(name and name.startswith("tensorflow_datasets")
                       for name in imported), module.__name__
