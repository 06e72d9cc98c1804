"""Argument checks shared by keras_ae's modules (no TensorFlow here)."""

from keras_ae.errors import InputError


def positive_int(name, value):
    """``value`` if it is an int of at least 1 (not a bool); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")
    return value
