"""keras_ae.runtime.images: the recipe that makes files into a model's images, in Pillow."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_ae.runtime import images

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.uint8)  # 2 high, 4 wide


@pytest.mark.parametrize("text, size", [("32x48", (32, 48)), ("64", (64, 64)),
                                        (" 7 X 9 ", (7, 9))])
def test_parse_image_size(text, size):
    assert images.parse_image_size(text) == size


@pytest.mark.parametrize("text", ["", "0x4", "4x", "axb", "4x4x4", "-3"])
def test_parse_image_size_refuses(text):
    with pytest.raises(ValueError, match="HxW"):
        images.parse_image_size(text)


def test_option_checks():
    assert images.check_image_size(None) is None
    assert images.check_image_size([3, 5]) == (3, 5)
    for bad in [(3,), (3, 0), (3.0, 5), (True, 4), 7]:
        with pytest.raises(ValueError, match="image_size must be"):
            images.check_image_size(bad)
    with pytest.raises(ValueError, match="'stretch', 'crop', 'pad'"):
        images.check_resize("squash")
    assert images.check_preprocessing(None) is None
    assert images.check_preprocessing({"image_size": [4, 6], "resize": "pad",
                                       "color_mode": "rgb"}) == {
        "image_size": [4, 6], "resize": "pad", "color_mode": "rgb"}
    with pytest.raises(ValueError, match="color_mode"):
        images.check_preprocessing({"color_mode": "cmyk"})
    with pytest.raises(ValueError, match="must be a dict"):
        images.check_preprocessing("stretch")


@pytest.mark.parametrize("size, target, resize, window", [
    # crop keeps the widest centred window of the target's aspect ratio
    ((427, 640), (32, 32), "crop", (0, 106, 427, 427)),
    ((640, 427), (32, 64), "crop", (213, 0, 213, 427)),
    ((2, 4), (2, 2), "crop", (0, 1, 2, 2)),
    # pad adds the same border on both sides
    ((427, 640), (32, 32), "pad", (106, 0, 427, 640)),
    ((2, 4), (4, 4), "pad", (1, 0, 2, 4)),
    ((5, 5), (10, 5), "pad", (2, 0, 5, 5)),
    ((30, 20), (60, 40), "crop", (0, 0, 30, 20)),  # same aspect: untouched
    ((30, 20), (60, 40), "stretch", (0, 0, 30, 20)),
])
def test_resize_window(size, target, resize, window):
    assert images.resize_window(*size, target, resize) == window


def test_crop_and_pad_hand_worked():
    # A 2x4 image to 2x2 by crop: the middle two columns, nothing resampled.
    np.testing.assert_array_equal(
        images.read_image(STEPS, (2, 2, 1), "crop")[..., 0], [[2, 3], [6, 7]])
    # To 4x4 by pad: one black row above and below.
    np.testing.assert_array_equal(
        images.read_image(STEPS, (4, 4, 1), "pad")[..., 0],
        [[0, 0, 0, 0], [1, 2, 3, 4], [5, 6, 7, 8], [0, 0, 0, 0]])


def test_stretch_averages_when_shrinking():
    # Halving the width with an antialiased bilinear filter as wide as the
    # scale: output column 0 is centred between input columns 0 and 1, with
    # weights 3/4, 3/4, 1/4 on columns 0, 1, 2 (1/4 for column -1 is cut
    # off at the edge), normalised: (3*1 + 3*2 + 1*3) / 7 = 12/7 -> 2.
    out = images.read_image(STEPS, (2, 2, 1), "stretch")[..., 0]
    np.testing.assert_array_equal(out, [[2, 3], [6, 7]])
    flat = np.full((9, 13, 3), 77, np.uint8)
    assert (images.read_image(flat, (4, 5, 3)) == 77).all()


def test_colour_conversion():
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    # ITU-R 601 weights, tf.image.rgb_to_grayscale's: 0.2989 * 255 = 76.2
    assert (images.read_image(red, (2, 2, 1)) == 76).all()
    grey = np.full((2, 2), 9, np.uint8)
    assert images.read_image(grey, (2, 2, 3)).tolist() == [[[9] * 3] * 2] * 2
    rgba = np.dstack([red, np.zeros((2, 2), np.uint8)])  # fully transparent
    np.testing.assert_array_equal(images.read_image(rgba, (2, 2, 3)), red)
    floats = np.full((2, 2, 1), 0.5, np.float32)  # floats in [0, 1] scale by 255
    assert (images.read_image(floats, (2, 2, 1)) == 128).all()  # 127.5 rounds to even


def test_files_of_every_format_and_mode(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    cases = {"a.png": ("RGB", rgb), "b.bmp": ("RGB", rgb), "c.webp": ("RGB", rgb)}
    for name, (mode, pixels) in cases.items():
        Image.fromarray(pixels).save(tmp_path / name, lossless=True)
        np.testing.assert_array_equal(images.read_image(tmp_path / name, (6, 10, 3)),
                                      pixels, err_msg=name)
    Image.fromarray(rgb).convert("LA").save(tmp_path / "d.png")
    expected = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(
        images.read_image(tmp_path / "d.png", (6, 10, 1))[..., 0], expected)
    # 16-bit grey: the high byte, as TensorFlow decodes it
    deep = np.array([[0, 255, 256, 65535, 32768, 1000]], np.uint16)
    Image.fromarray(deep).save(tmp_path / "e.png")
    assert images.read_image(str(tmp_path / "e.png"), (1, 6, 1))[0, :, 0].tolist() == [
        0, 0, 1, 255, 128, 3]


def test_gif_first_frame(tmp_path):
    frames = [Image.new("L", (4, 4), value) for value in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert (images.read_image(tmp_path / "anim.gif", (4, 4, 1)) == 10).all()
    with Image.open(tmp_path / "anim.gif") as gif:
        gif.seek(1)  # a Pillow image left at another frame reads frame 0 too
        assert (images.read_image(gif, (4, 4, 1)) == 10).all()


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file at"):
        images.read_image(tmp_path / "none.png", (4, 4, 1))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"text\.png is not a PNG, JPEG, BMP, GIF or WebP file"):
        images.read_image(tmp_path / "text.png", (4, 4, 1))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.jpg")
    payload = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(payload[:len(payload) // 2])
    with pytest.raises(ValueError, match=r"cut\.jpg is not an image.*truncated"):
        images.read_image(tmp_path / "cut.jpg", (64, 64, 3))
    Image.new("L", (6, 4)).save(tmp_path / "wide.png")
    with pytest.raises(ValueError, match=r"wide\.png is 4x6 \(height x width\); "
                                         r"the model takes 4x4"):
        images.read_image(tmp_path / "wide.png", (4, 4, 1), resize=None)
    with pytest.raises(ValueError, match="grey .1 channel. or RGB"):
        images.read_image(STEPS, (2, 4, 2))
    with pytest.raises(ValueError, match="dtype int64"):
        images.read_image(np.zeros((2, 2), np.int64), (2, 2, 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        images.read_image(np.full((2, 2), 2.0), (2, 2, 1))


def test_the_recipe_runs_where_tensorflow_cannot_be_imported(tmp_path):
    Image.new("RGB", (30, 20), "blue").save(tmp_path / "blue.jpg")
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from keras_ae.runtime import images\n"
        f"print(images.read_image({str(tmp_path / 'blue.jpg')!r}, (8, 8, 3)).shape)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(8, 8, 3)"
