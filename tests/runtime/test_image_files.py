"""The gate every image file passes on both routes (keras_ae.runtime.image_files):
regular files only, the format from the content, bytes and pixels bounded
before a read, EXIF orientation, and the files TensorFlow's decoders
mishandle read by Pillow on the training route too, so that both routes give
the same pixels."""

import io
import os
import stat
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import damaged as damage

from keras_ae.data import sources as data
from keras_ae.errors import InputError
from keras_ae.runtime import image_files, images

RNG_PIXELS = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)


def partial_frame_gif(path):
    """A 24x32 GIF whose first (only) frame is 12x16 at (6, 4): TensorFlow
    decodes the frame alone, Pillow the frame on its canvas."""
    buffer = io.BytesIO()
    Image.fromarray(RNG_PIXELS).quantize(16).save(buffer, format="GIF")
    payload = bytearray(buffer.getvalue())
    flags = payload[10]
    palette = 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0
    payload[6:10] = struct.pack("<HH", 32, 24)  # the canvas
    at = 13 + palette
    while payload[at] == 0x21:  # extension blocks
        at += 2
        while payload[at]:
            at += payload[at] + 1
        at += 1
    assert payload[at] == 0x2C  # the image descriptor
    payload[at + 1:at + 5] = struct.pack("<HH", 4, 6)  # left, top
    Path(path).write_bytes(bytes(payload))
    return path


def rotated_jpeg(path, orientation):
    """A JPEG of ``RNG_PIXELS`` with an EXIF orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(RNG_PIXELS).save(path, format="JPEG", quality=95, exif=exif.tobytes())
    return path


def palette_bmp(path, bits):
    """A palette BMP (4 or 8 bits) whose indices are not its grey levels."""
    colours = 16 if bits == 4 else 256
    image = Image.fromarray(RNG_PIXELS).quantize(colours)
    image.save(path, format="BMP", bits=bits)
    return path


def animated_webp(path):
    frames = [Image.fromarray(RNG_PIXELS), Image.fromarray(255 - RNG_PIXELS)]
    frames[0].save(path, format="WEBP", save_all=True, append_images=frames[1:],
                   lossless=True)
    return path


def one_bit_bmp(path):
    Image.fromarray(RNG_PIXELS[..., 0] > 127).save(path, format="BMP")
    return path


CASES = {"palette4.bmp": lambda p: palette_bmp(p, 4),
         "palette8.bmp": lambda p: palette_bmp(p, 8),
         "bits1.bmp": one_bit_bmp,
         "partial.gif": partial_frame_gif,
         "animated.webp": animated_webp,
         "rotated6.jpg": lambda p: rotated_jpeg(p, 6),
         "rotated3.jpg": lambda p: rotated_jpeg(p, 3)}


# --- what is read, and how ------------------------------------------------------

def test_the_format_is_the_contents_not_the_name(tmp_path):
    Image.fromarray(RNG_PIXELS).save(tmp_path / "photo.jpg", format="PNG")
    assert image_files.inspect(tmp_path / "photo.jpg").format == "PNG"
    Image.fromarray(RNG_PIXELS).save(tmp_path / "scan.png", format="TIFF")
    with pytest.raises(InputError, match=r"scan\.png is not a PNG, JPEG, BMP, GIF or "
                                         r"WebP file \(it starts with b'II\*\\x00"):
        images.read_image(tmp_path / "scan.png", (12, 16, 3))
    Image.fromarray(RNG_PIXELS).save(tmp_path / "p.ppm")
    with pytest.raises(InputError, match="it starts with b'P6"):
        image_files.inspect(tmp_path / "p.ppm")


def test_who_decodes_each_file_on_the_training_route(tmp_path):
    decoders = {}
    for name, make in CASES.items():
        decoders[name] = image_files.inspect(make(tmp_path / name)).decoder
    Image.fromarray(RNG_PIXELS).save(tmp_path / "plain.jpg")
    Image.fromarray(RNG_PIXELS).save(tmp_path / "plain.png")
    assert image_files.inspect(tmp_path / "plain.jpg").decoder == "tensorflow"
    assert image_files.inspect(tmp_path / "plain.png").decoder == "tensorflow"
    assert set(decoders.values()) == {"pillow"}


def test_exif_orientation_turns_the_image_upright_on_read(tmp_path):
    facts = image_files.inspect(rotated_jpeg(tmp_path / "r6.jpg", 6))
    assert (facts.orientation, facts.height, facts.width) == (6, 16, 12)
    upright = images.read_image(tmp_path / "r6.jpg", (16, 12, 3), None)
    stored = images.read_image(Image.open(tmp_path / "r6.jpg"), (12, 16, 3), None)
    # orientation 6: the camera was turned right; upright is the stored
    # image turned 90 degrees clockwise
    assert np.array_equal(upright, np.rot90(stored, k=-1))
    flipped = images.read_image(rotated_jpeg(tmp_path / "r3.jpg", 3), (12, 16, 3), None)
    assert np.array_equal(flipped, stored[::-1, ::-1])


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "folder", "socket"])
def test_only_regular_files_are_read(tmp_path, kind):
    path = tmp_path / "x.png"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    else:
        import socket

        server = socket.socket(socket.AF_UNIX)
        server.bind(str(path))
    started = time.monotonic()
    expected = {"fifo": "a FIFO", "dev_zero": "a character device",
                "folder": "a folder", "socket": "a socket"}[kind]
    with pytest.raises(InputError, match=rf"x\.png is {expected}.*, not a regular file"):
        images.read_image(path, (4, 4, 1))
    assert time.monotonic() - started < 1


def test_a_file_larger_than_its_image_can_be_is_refused_unread(tmp_path):
    path = tmp_path / "sparse.png"
    Image.fromarray(RNG_PIXELS).save(path)
    with open(path, "r+b") as f:  # a sparse tail: costs no disk
        f.truncate(6 * 2 ** 30)
    with pytest.raises(InputError, match=r"sparse\.png is 6,442,450,944 bytes, more "
                                         r"than a 12x16 image can take \(16,778,764\)"):
        images.read_image(path, (12, 16, 3))
    assert image_files.max_file_bytes(12, 16) == 16 * 2 ** 20 + 12 * (8 * 16 + 1)


# --- the training route reads what serving reads --------------------------------

def _folder_of_cases(folder):
    folder.mkdir()
    for name, make in CASES.items():
        make(folder / name)
    return folder


def test_files_tensorflow_mishandles_read_as_pillow_reads_them(tmp_path):
    folder = _folder_of_cases(tmp_path / "cases")
    shape = (24, 32, 3)
    found = data.from_directory(folder, image_size=shape[:2], color_mode="rgb",
                                validation_split=0, test_split=0.2, verbose=False,
                                cache="none")
    got = [y for _, y in found.train.unbatch().as_numpy_iterator()]
    got += [y for _, y in found.test.unbatch().as_numpy_iterator()]
    got = np.round(np.stack(got) * 255).astype(np.uint8)
    expected = np.stack([images.read_image(p, shape, "stretch")
                         for p in sorted(folder.iterdir())])
    # The test split is drawn, so each image is matched to the nearest of
    # the Pillow route's; upscaling leaves at most one level of rounding.
    for image in got.astype(int):
        difference = np.abs(expected.astype(int) - image).reshape(len(expected), -1)
        nearest = difference[np.argmin(difference.sum(axis=1))]
        assert nearest.max() <= 1 and (nearest > 0).mean() < 0.01
    assert len(got) == len(expected)
    # the palette BMP in its true colours, not its indices as grey
    bmp = images.read_image(folder / "palette8.bmp", (12, 16, 3), None).astype(int)
    assert np.abs(bmp - RNG_PIXELS).mean() < 12
    # the GIF on its 24x32 canvas, the frame at (6, 4)
    gif = images.read_image(folder / "partial.gif", (24, 32, 3), None)
    frame = np.asarray(Image.fromarray(RNG_PIXELS).quantize(16).convert("RGB"))
    assert np.array_equal(gif[6:18, 4:20], frame)
    assert (gif[:6] == gif[0, 0]).all()  # the canvas around it


def test_colour_auto_sees_a_palette_bmps_colours(tmp_path):
    folder = tmp_path / "bmps"
    folder.mkdir()
    for index in range(4):
        palette_bmp(folder / f"{index}.bmp", 8)
    found = data.from_directory(folder, validation_split=0, test_split=0.25,
                                verbose=False)
    assert found.image_shape == (12, 16, 3)


def test_a_fifo_in_a_folder_is_refused_within_a_second_or_skipped(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(4):
        Image.fromarray(RNG_PIXELS).save(folder / f"{index}.png")
    os.mkfifo(folder / "x.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    started = time.monotonic()
    with pytest.raises(InputError, match=r"x\.png \(is a FIFO"):
        data.from_directory(folder, validation_split=0, test_split=0.25, verbose=False)
    assert time.monotonic() - started < 1
    found = data.from_directory(folder, validation_split=0, test_split=0.25,
                                verbose=False, skip_bad_images=True)
    assert sorted(Path(p).name for p, _ in found.skipped) == ["x.png", "zero.png"]
    assert "character device" in dict((Path(p).name, r) for p, r in found.skipped)["zero.png"]


def test_a_file_swapped_for_a_fifo_after_the_check_does_not_block(tmp_path, monkeypatch):
    """The descriptor is opened non-blocking and looked at again: a FIFO put
    in place of a checked file neither blocks nor is read."""
    path = tmp_path / "x.png"
    os.mkfifo(path)
    looks = []
    real = stat.S_ISREG

    def first_look_passes(mode):
        looks.append(mode)
        return len(looks) == 1 or real(mode)

    monkeypatch.setattr(stat, "S_ISREG", first_look_passes)  # keras_ae.files' looks
    started = time.monotonic()
    with pytest.raises(InputError, match=r"x\.png is a FIFO"):
        image_files.inspect(path)
    assert len(looks) == 2 and time.monotonic() - started < 1


# --- fuzzed files of every format on the training route -------------------------

def _valid_payloads():
    payloads = {}
    for name, make in CASES.items():
        payloads[name] = Path(make(Path(_scratch) / name)).read_bytes()
    for kind in ("PNG", "JPEG", "WEBP"):
        buffer = io.BytesIO()
        Image.fromarray(RNG_PIXELS).save(buffer, format=kind)
        payloads[f"plain.{kind.lower()}"] = buffer.getvalue()
    return payloads


_scratch = tempfile.mkdtemp()  # the valid files, made once at import
PAYLOADS = _valid_payloads()


@settings(max_examples=24, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(PAYLOADS)), cut=st.floats(0.05, 1.0),
       flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(1, 255)),
                      max_size=4))
def test_damaged_files_of_every_format_are_read_or_skipped_never_a_crash(
        tmp_path_factory, name, cut, flips):
    folder = tmp_path_factory.mktemp("fuzz")
    for index in range(3):
        Image.fromarray(RNG_PIXELS).save(folder / f"good{index}.png")
    damaged = folder / f"damaged{Path(name).suffix}"
    damaged.write_bytes(damage(PAYLOADS[name], cut, flips))
    found = data.from_directory(folder, image_size=(12, 16), color_mode="rgb",
                                validation_split=0, test_split=0.25, verbose=False,
                                skip_bad_images=True, cache="memory")
    read = found.num_train + found.num_test
    assert read == 4 - len(found.skipped)
    try:
        facts = image_files.inspect(damaged)
        served = images.read_image(damaged, (12, 16, 3))
    except InputError:
        facts = served = None
    if facts is not None and facts.decoder == "pillow":  # one decoder, one verdict
        assert (served is not None) == (read == 4)
