"""The names anomaly detection's options take, and their checks: no
TensorFlow here, so that the command line can list them before loading it."""

from keras_ae.errors import InputError

SCORE_PARTS = ("mse", "ssim", "knn", "mahalanobis", "patch_gaussian", "patch_knn")
MAP_KINDS = ("squared_error", "ssim", "patch")
CODE_PARTS = ("knn", "mahalanobis")  # the parts that measure codes
PIXEL_PARTS = ("mse", "ssim")  # the parts that compare image and reconstruction
PATCH_PARTS = ("patch_gaussian", "patch_knn")  # the parts that score patches
# "auto" picks by image size (``default_score``): below PATCH_MIN_SIDE pixels
# a side, a grid of patches is too coarse and the whole image's code scores
# best (the one-class protocol on Fashion-MNIST); from it up, the patches'
# Gaussians find small defects that the code misses, and the code adds what
# is wrong with a whole image (real cracks on ELPV solar cells, both types).
# Both measured by tools/benchmark_anomaly.py (docs/benchmarks.md).
DEFAULT_SCORE = "auto"
DEFAULT_MAP = "auto"
SMALL_IMAGE_SCORE, LARGE_IMAGE_SCORE = "knn", "patch_gaussian+knn"
PATCH_MIN_SIDE = 64


def default_score(shape):
    """The score ``"auto"`` means for images of ``shape`` (H, W, C).

    >>> default_score((28, 28, 1)), default_score((128, 128, 1))
    ('knn', 'patch_gaussian+knn')
    """
    return LARGE_IMAGE_SCORE if min(shape[:2]) >= PATCH_MIN_SIDE else SMALL_IMAGE_SCORE


def default_map(parts):
    """The map ``"auto"`` means for a score's parts: the patch scores'
    own map where a part scores patches, else the squared error."""
    return "patch" if any(part in PATCH_PARTS for part in parts) else "squared_error"


def parse_score(score):
    """The parts of a score name such as ``"knn+mahalanobis"``, a tuple.

    Raises:
        ValueError: naming the unknown part and the choices.

    Example:

    >>> parse_score("knn+mahalanobis")
    ('knn', 'mahalanobis')
    """
    parts = tuple(str(score).split("+")) if isinstance(score, str) else ()
    unknown = [p for p in parts if p not in SCORE_PARTS] or ([] if parts else [score])
    if unknown or len(set(parts)) != len(parts):
        raise InputError(
            f"score must be one of {', '.join(map(repr, SCORE_PARTS))} or "
            f"several joined by '+' (e.g. 'knn+mahalanobis'), got {score!r}.")
    return parts


def check_map_kind(kind):
    """``kind`` if it is one of ``MAP_KINDS``; else a ValueError listing them."""
    if kind not in MAP_KINDS:
        raise InputError(f"map_kind must be one of {', '.join(map(repr, MAP_KINDS))}, "
                         f"got {kind!r}.")
    return kind
