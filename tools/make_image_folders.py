"""Writes the image folders that the folder benchmark and the tests read.

Two kinds, both laid out as ``keras_ae.data.from_directory`` reads them
(``train/<class>/...`` and ``test/<class>/...``):

- ``fashion``: Fashion-MNIST's IDX files (Debian's dataset-fashion-mnist)
  as 70,000 grey 28x28 PNGs, one folder per class, named ``0_t-shirt_top``
  to ``9_ankle_boot`` so that sorted order is the label order, files
  numbered in IDX order. The same images through ``from_directory`` and
  ``from_idx`` must give the same test MSE.
- ``photos``: real colour photographs offline: seeded random crops of
  scikit-learn's ``china.jpg`` and ``flower.jpg`` (427x640) at mixed sizes,
  saved as JPEG, one class per photo. Test crops come from the right-most
  quarter of each photo and training crops from the rest, so that no test
  pixel was seen in training.

Each folder is written under a temporary name and renamed into place, so an
interrupted run leaves no half folder.

    python3 tools/make_image_folders.py fashion --output runs/images/fashion
    python3 tools/make_image_folders.py photos --output runs/images/photos --count 2000
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from keras_ae import data as data_lib
from keras_ae import outputs

FASHION_CLASSES = ("t-shirt_top", "trouser", "pullover", "dress", "coat",
                   "sandal", "shirt", "sneaker", "bag", "ankle_boot")
PHOTOS = ("china", "flower")
TEST_REGION = 0.25  # of each photo's width, kept for test crops


def fashion_class_folders():
    """``["0_t-shirt_top", ..., "9_ankle_boot"]``: label order when sorted."""
    return [f"{label}_{name}" for label, name in enumerate(FASHION_CLASSES)]


def write_fashion_tree(idx_dir, output, limit=None):
    """Writes an IDX folder's images as ``train/`` and ``test/`` class trees.

    Args:
        idx_dir: a folder of the four MNIST-style IDX files.
        output: the folder to write (its train/ and test/ replaced once complete).
        limit: write only the first ``limit`` images of each split.

    Returns:
        ``{"train": count, "test": count}``.
    """
    splits = data_lib.load_idx_folder(idx_dir)
    folders = fashion_class_folders()

    def write(tmp):
        counts = {}
        for split, (images, labels) in splits.items():
            images, labels = images[:limit], labels[:limit]
            for name in folders:
                os.makedirs(os.path.join(tmp, split, name))
            for index, (image, label) in enumerate(zip(images, labels)):
                Image.fromarray(image[..., 0]).save(
                    os.path.join(tmp, split, folders[label], f"{index:05d}.png"))
            counts[split] = len(images)
        return counts
    return _write_folder(output, f"fashion:{os.path.abspath(idx_dir)}", write)


def _write_folder(output, source, write):
    """``write(temporary)`` fills train/ and test/, moved into ``output`` by
    keras_ae.outputs' rule (a folder of other files is refused)."""
    folder = outputs.claim(output, "make_image_folders", source,
                           names=("train", "test"))
    with folder, folder.staging() as staged:
        counts = write(str(staged))
        folder.commit(staged, replace_all_own=True)
    return counts


def photo(name):
    """One of scikit-learn's sample photographs as a uint8 (427, 640, 3) array."""
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "images"
    with Image.open(folder / f"{name}.jpg") as image:
        return np.asarray(image.convert("RGB"))


def write_photo_crops(output, count, *, seed=0, sizes=(48, 320), test_share=0.2,
                      quality=90):
    """Writes seeded random crops of the sample photos as JPEG files.

    Args:
        output: the folder to write (its train/ and test/ replaced once complete).
        count: crops in all, split evenly between the photos.
        seed: seeds every crop's size and position.
        sizes: smallest and largest crop height and width (each drawn
            alone, so aspect ratios vary).
        test_share: share of each photo's crops written to ``test/``.
        quality: JPEG quality.

    Returns:
        ``{"train": count, "test": count}``.
    """
    rng = np.random.default_rng(seed)
    low, high = sizes

    def write(tmp):
        counts = {"train": 0, "test": 0}
        for name in PHOTOS:
            pixels = photo(name)
            width = pixels.shape[1]
            border = int(width * (1 - TEST_REGION))  # test crops right of it
            per_photo = count // len(PHOTOS)
            tests = round(per_photo * test_share)
            for index in range(per_photo):
                split = "test" if index < tests else "train"
                left, right = (border, width) if split == "test" else (0, border)
                h = int(rng.integers(low, min(high, pixels.shape[0]) + 1))
                w = int(rng.integers(low, min(high, right - left) + 1))
                y = int(rng.integers(0, pixels.shape[0] - h + 1))
                x = int(rng.integers(left, right - w + 1))
                folder = os.path.join(tmp, split, name)
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(pixels[y:y + h, x:x + w]).save(
                    os.path.join(folder, f"{index:05d}.jpg"), quality=quality)
                counts[split] += 1
        return counts
    return _write_folder(output, f"photos:{count}:{seed}", write)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("fashion", "photos"))
    parser.add_argument("--output", required=True)
    parser.add_argument("--data-dir", default=data_lib.FASHION_MNIST_DIR,
                        help="fashion: the IDX folder")
    parser.add_argument("--limit", type=int, default=None,
                        help="fashion: images per split")
    parser.add_argument("--count", type=int, default=2000, help="photos: crops")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.time()
    if args.kind == "fashion":
        counts = write_fashion_tree(args.data_dir, args.output, args.limit)
    else:
        counts = write_photo_crops(args.output, args.count, seed=args.seed)
    print(f"wrote {counts['train']:,} train and {counts['test']:,} test images "
          f"to {args.output}/ in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
