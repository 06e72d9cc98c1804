"""Writing files so that nothing already written is lost.

Every file keras_ae writes goes to a temporary name beside its destination
and is renamed into place once complete. A rename within one folder is atomic,
so a failed or killed write leaves the previous file (or none), never half a
file. No TensorFlow here: serving code uses it too.
"""

import json
import os
import secrets
import shutil
from pathlib import Path


def write_atomically(path, write):
    """Calls ``write(temporary_path)``, then renames the result to ``path``.

    The temporary file sits in ``path``'s folder, named ``.NAME.RANDOM.tmpSUFFIX``:
    it keeps ``path``'s suffix for writers that check it (``model.save`` wants
    ``.keras``, matplotlib infers the format), and ``write`` creates it itself,
    so it gets the usual permissions rather than ``mkstemp``'s 0600.

    Args:
        path: the destination; its folder is created if missing.
        write: a function that writes the whole file at the path it is given.

    Returns:
        ``path`` as a string.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> write_atomically(f"{folder}/a.txt", lambda tmp: Path(tmp).write_text("hi"))[-5:]
    'a.txt'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        write(str(temporary))
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return str(path)


def write_json(path, data):
    """Writes ``data`` as indented, key-sorted JSON, atomically; returns the path."""
    return write_atomically(path, lambda tmp: Path(tmp).write_text(
        json.dumps(data, indent=2, sort_keys=True) + "\n"))


def write_bytes(path, payload):
    """Writes ``payload`` to ``path`` atomically; returns the path."""
    return write_atomically(path, lambda tmp: Path(tmp).write_bytes(payload))


def save_png(figure, path):
    """Writes a matplotlib ``Figure`` as a PNG, atomically; returns the path."""
    return write_atomically(path, lambda tmp: figure.savefig(tmp, format="png"))


def replace_folder(directory, write):
    """Calls ``write(temporary_folder)``, then swaps the result into ``directory``.

    The temporary folder sits beside ``directory``; if ``write`` fails, it is
    removed and ``directory`` is untouched. An existing ``directory`` is
    moved aside, the new one renamed in, and the old one deleted.

    Returns:
        What ``write`` returned.

    Example:

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "out"
    >>> replace_folder(folder, lambda tmp: Path(tmp, "a.txt").write_text("hi"))
    2
    >>> sorted(p.name for p in folder.parent.iterdir())
    ['out']
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a folder.")
    directory.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    temporary = directory.with_name(f".{directory.name}.{token}.tmp")
    old = directory.with_name(f".{directory.name}.{token}.old")
    try:
        temporary.mkdir()
        result = write(str(temporary))
        if directory.exists():
            os.rename(directory, old)
        os.rename(temporary, directory)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return result
