"""Images with known defects, for measuring where a detector looks.

- ``synthetic_defects``: seeded defects painted on good images (a patch
  pasted from another image, a scratch, a hole) with their masks, so that
  anomaly maps can be scored pixel by pixel on any data set.
- ``read_defect_folder`` and ``evaluate_defect_folder``: the industrial
  layout of MVTec AD, which inspection teams already have on disk::

      DIR/train/good/*.png               good images only: train on these
      DIR/test/good/*.png                good test images
      DIR/test/<defect kind>/*.png       defective test images, by kind
      DIR/ground_truth/<defect kind>/<name>_mask.png   optional masks

  ``keras_ae.data.sources.from_directory(DIR)`` trains on ``train/`` (all good);
  ``evaluate_defect_folder`` reports image-level ROC AUC per defect kind
  and, where masks exist, pixel-level ROC AUC.

Images are read with ``keras_ae.runtime.images.read_image`` (Pillow), as serving
reads them; masks likewise, then thresholded at half their range.
"""

import os

import numpy as np

from keras_ae.runtime import images as recipe
from keras_ae.errors import InputError

__all__ = ["DEFECT_KINDS", "GOOD", "evaluate_defect_folder", "read_defect_folder",
           "synthetic_defects"]

DEFECT_KINDS = ("patch", "scratch", "hole")
GOOD = "good"
MASK_SUFFIX = "_mask"
# A pixel is defective where the defect changed it by more than this (of
# 1): paint on an already black background is no defect to find.
CHANGED = 0.05
_ATTEMPTS = 20


# --- synthetic defects ---------------------------------------------------------------

def synthetic_defects(images, seed=0, kinds=DEFECT_KINDS):
    """Good images with one painted defect each, and where it is.

    Each image gets the kind ``kinds[i % len(kinds)]``, placed (seeded)
    over the object (pixels above 0.1 of the image's range):

    - ``"patch"``: a square a quarter of the image's side, copied from
      another image of the batch (fabric where it does not belong);
    - ``"scratch"``: a straight line one or two pixels wide, white or
      black, across half the side;
    - ``"hole"``: a black disc a fifth of the side across.

    Args:
        images: ``(N, H, W, C)`` (or ``(N, H, W)``) uint8 or float in
            [0, 1], at least 2 (a patch comes from another image).
        seed: seeds placement and sizes.
        kinds: which of ``DEFECT_KINDS`` to cycle through.

    Returns:
        ``(defective, masks, kinds)``: float32 images like ``images``
        scaled to [0, 1]; bool masks ``(N, H, W)``, True where the defect
        changed the image by over ``CHANGED``; the kind of each image.

    Raises:
        ValueError: for fewer than 2 images, images under 8 pixels a side,
            or an unknown kind.

    Example:

    >>> good = np.zeros((4, 28, 28, 1), np.float32); good[:, 6:22, 6:22] = 0.6
    >>> bad, masks, kinds = synthetic_defects(good, seed=0)
    >>> bad.shape, masks.shape, kinds[:3], bool(masks.any(axis=(1, 2)).all())
    ((4, 28, 28, 1), (4, 28, 28), ['patch', 'scratch', 'hole'], True)
    """
    from keras_ae.runtime.pixels import to_unit_float

    good = to_unit_float(np.asarray(images))
    if good.ndim == 3:
        good = good[..., np.newaxis]
    unknown = [k for k in kinds if k not in DEFECT_KINDS]
    if unknown or not kinds:
        raise InputError(f"kinds must be some of {', '.join(DEFECT_KINDS)}, "
                         f"got {list(kinds)!r}.")
    if good.ndim != 4 or len(good) < 2 or min(good.shape[1:3]) < 8:
        raise InputError(f"synthetic_defects needs at least 2 images of at least "
                         f"8x8 pixels, got shape {good.shape}.")
    rng = np.random.default_rng(seed)
    defective, masks, chosen = good.copy(), np.zeros(good.shape[:3], bool), []
    for index in range(len(good)):
        kind = kinds[index % len(kinds)]
        for _ in range(_ATTEMPTS):  # until the paint shows
            painted = _paint(kind, good, index, rng)
            changed = np.abs(painted - good[index]).max(-1) > CHANGED
            if changed.any():
                break
        defective[index], masks[index] = painted, changed
        chosen.append(kind)
    return defective, masks, chosen


def _object_point(image, rng):
    """A random pixel of the object (or anywhere, for a blank image)."""
    rows, columns = np.nonzero(image.max(-1) > 0.1 * max(float(image.max()), 1e-6))
    if not len(rows):
        return rng.integers(image.shape[0]), rng.integers(image.shape[1])
    pick = rng.integers(len(rows))
    return rows[pick], columns[pick]


def _paint(kind, good, index, rng):
    image = good[index].copy()
    height, width = image.shape[:2]
    side = min(height, width)
    row, column = _object_point(image, rng)
    if kind == "patch":
        size = max(2, side // 4)
        donor = good[(index + rng.integers(1, len(good))) % len(good)]
        top = int(np.clip(row - size // 2, 0, height - size))
        left = int(np.clip(column - size // 2, 0, width - size))
        source_row, source_column = _object_point(donor, rng)
        source_top = int(np.clip(source_row - size // 2, 0, height - size))
        source_left = int(np.clip(source_column - size // 2, 0, width - size))
        image[top:top + size, left:left + size] = donor[
            source_top:source_top + size, source_left:source_left + size][:, ::-1]
    elif kind == "scratch":
        angle, length = rng.uniform(0, np.pi), side / 2
        steps = np.linspace(-length / 2, length / 2, int(4 * length))
        width_px = int(rng.integers(1, 3))
        rows = np.clip(np.round(row + steps * np.sin(angle)).astype(int), 0, height - 1)
        columns = np.clip(np.round(column + steps * np.cos(angle)).astype(int), 0, width - 1)
        shade = float(image[row, column].mean() < 0.5)  # white on dark, black on light
        for offset in range(width_px):
            image[np.clip(rows + offset, 0, height - 1), columns] = shade
    else:  # hole
        radius = max(1.0, side / 10)
        grid_rows, grid_columns = np.ogrid[:height, :width]
        disc = (grid_rows - row) ** 2 + (grid_columns - column) ** 2 <= radius ** 2
        image[disc] = 0.0
    return image


# --- the MVTec AD layout ---------------------------------------------------------------

def read_defect_folder(directory, shape, resize=recipe.DEFAULT_RESIZE):
    """The test images of an MVTec-style folder, with kinds and masks.

    Args:
        directory: the folder holding ``test/`` (and optionally
            ``ground_truth/``), see the module docstring; or a folder of
            kinds itself (``good/``, ``<defect kind>/``), without masks.
        shape: ``(height, width, channels)`` the model takes.
        resize: how images (and their masks, alike) reach that size.

    Returns:
        A dict: ``images`` uint8 ``(N, *shape)``; ``kinds``, each image's
        folder name (``"good"`` for good ones); ``masks`` bool ``(N, H, W)``
        (all False for good images and for defects without a mask file);
        ``has_mask`` bool ``(N,)``; ``paths``.

    Raises:
        FileNotFoundError: for no ``test/`` folder.
        ValueError: for no ``test/good`` or no defect folder, an empty
            folder, or a mask whose size differs from its image's (both
            named).
    """
    directory = os.fspath(directory)
    test = os.path.join(directory, "test")
    if not os.path.isdir(test) and os.path.isdir(os.path.join(directory, GOOD)):
        test = directory  # the kinds' folders themselves (no ground_truth/)
    if not os.path.isdir(test):
        raise FileNotFoundError(
            f"no test/ folder in {directory}: expected the layout train/good/, "
            f"test/good/, test/<defect kind>/, optional ground_truth/.")
    kinds = sorted(k for k in os.listdir(test) if not k.startswith(".")
                   and os.path.isdir(os.path.join(test, k)))
    if GOOD not in kinds or len(kinds) < 2:
        raise InputError(
            f"{test} must hold a {GOOD}/ folder and at least one defect kind's "
            f"folder, found {kinds or 'no folders'}.")
    found = {"images": [], "kinds": [], "masks": [], "has_mask": [], "paths": []}
    for kind in kinds:
        names = sorted(n for n in os.listdir(os.path.join(test, kind))
                       if n.lower().endswith(recipe.IMAGE_EXTENSIONS)
                       and not n.startswith("."))
        if not names:
            raise InputError(f"{os.path.join(test, kind)} holds no images.")
        for name in names:
            path = os.path.join(test, kind, name)
            mask = _read_mask(directory, kind, name, path, shape, resize)
            found["images"].append(recipe.read_image(path, shape, resize))
            found["kinds"].append(kind)
            found["has_mask"].append(mask is not None)
            found["masks"].append(np.zeros(shape[:2], bool) if mask is None else mask)
            found["paths"].append(path)
    return {"images": np.stack(found["images"]), "kinds": found["kinds"],
            "masks": np.stack(found["masks"]), "has_mask": np.array(found["has_mask"]),
            "paths": found["paths"]}


def _read_mask(directory, kind, name, image_path, shape, resize):
    """The mask of one test image as bool ``shape[:2]``, or None."""
    if kind == GOOD:
        return None
    stem = os.path.splitext(name)[0]
    folder = os.path.join(directory, "ground_truth", kind)
    candidates = [os.path.join(folder, stem + MASK_SUFFIX + extension)
                  for extension in (".png", os.path.splitext(name)[1])]
    path = next((c for c in candidates if os.path.isfile(c)), None)
    if path is None:
        return None
    from PIL import Image

    with Image.open(path) as mask, Image.open(image_path) as image:
        if mask.size != image.size:
            raise InputError(
                f"mask {path} is {mask.size[0]}x{mask.size[1]} (width x height) "
                f"but its image {image_path} is {image.size[0]}x{image.size[1]}; "
                f"a mask must match its image's size.")
    grey = recipe.read_image(path, (*shape[:2], 1), resize)[..., 0]
    return grey > 127


def evaluate_defect_folder(detector, directory, resize=recipe.DEFAULT_RESIZE):
    """Image- and pixel-level scores of a detector on an MVTec-style folder.

    Args:
        detector: a fitted ``keras_ae.anomaly.detector.AnomalyDetector`` (or an
            ``OnnxAnomalyDetector``) for the folder's images.
        directory: the folder (see ``read_defect_folder``).
        resize: as for ``read_defect_folder``.

    Returns:
        A dict: ``kinds``, per defect kind ``{"images", "roc_auc" (that
        kind against the good test images), "recall" (at the threshold),
        "pixel" (over that kind's images with masks: ``pixel_metrics``'
        ``pixel_roc_auc``, ``pixel_f1_max`` and ``aupro``; or None)}``;
        ``all`` the same over every defect image; ``good`` the good test
        images' count and how many were flagged; and the detector's
        ``threshold``.
    """
    from sklearn.metrics import roc_auc_score

    from keras_ae.anomaly.metrics import pixel_metrics

    found = read_defect_folder(directory, detector.input_shape, resize)
    scores, maps = detector.scores_and_maps(found["images"])
    kinds = np.array(found["kinds"])
    good = kinds == GOOD

    def measure(chosen):
        flagged = scores[chosen] > detector.threshold
        labels = np.concatenate([np.zeros(good.sum()), np.ones(chosen.sum())])
        with_mask = chosen & found["has_mask"]
        pixel = None
        if with_mask.any() and found["masks"][with_mask].any():
            pixel = pixel_metrics(maps[with_mask], found["masks"][with_mask])
        return {"images": int(chosen.sum()),
                "roc_auc": float(roc_auc_score(
                    labels, np.concatenate([scores[good], scores[chosen]]))),
                "recall": float(flagged.mean()), "pixel": pixel}

    result = {"kinds": {kind: measure(kinds == kind)
                        for kind in sorted(set(found["kinds"]) - {GOOD})},
              "all": measure(~good),
              "good": {"images": int(good.sum()),
                       "flagged": int((scores[good] > detector.threshold).sum())},
              "threshold": float(detector.threshold)}
    return result
