"""The one exception keras_ae raises for input a user can fix.

``InputError`` is a ``ValueError``, so ``except ValueError`` keeps working
for library users. The command line reports it (and a missing file) in one
line with exit code 2; any other exception is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input: a wrong argument, file, folder or setting, named in the
    message together with what was expected."""


class DatasetUnavailableError(RuntimeError):
    """tensorflow-datasets could neither find nor download a dataset."""
