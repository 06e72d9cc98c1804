"""The one exception keras_ae raises for input a user can fix, and the
argument check every subpackage shares.

``InputError`` is a ``ValueError``, so ``except ValueError`` keeps working
for library users. The command line reports it (and a missing file) in one
line with exit code 2; any other exception is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input: a wrong argument, file, folder or setting, named in the
    message together with what was expected."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (the command line turns SIGTERM into this,
    as Python turns SIGINT into ``KeyboardInterrupt``); a ``BaseException``,
    so that ``except Exception`` never swallows it. ``where`` says what was
    under way (``"during epoch 3 of 10"``) where a loop knows it."""

    def __init__(self, signal_number, where=""):
        super().__init__(signal_number, where)
        self.signal_number, self.where = signal_number, where


class DatasetUnavailableError(RuntimeError):
    """tensorflow-datasets could neither find nor download a dataset."""


def positive_int(name, value):
    """``value`` if it is an int of at least 1 (not a bool); else InputError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")
    return value
