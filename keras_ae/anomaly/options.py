"""The names anomaly detection's options take, and their checks: no
TensorFlow here, so that the command line can list them before loading it."""

from keras_ae.errors import InputError

SCORE_PARTS = ("mse", "ssim", "knn", "mahalanobis")
MAP_KINDS = ("squared_error", "ssim")
CODE_PARTS = ("knn", "mahalanobis")  # the parts that measure codes
# The best measured on the one-class protocol (tools/benchmark_anomaly.py).
DEFAULT_SCORE = "knn"
DEFAULT_MAP = "squared_error"


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
