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

from keras_ae.errors import InputError


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
        raise InputError(f"{directory} exists and is not a folder.")
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


def claim_folder(folder, settings_file, settings, *, kind, remedy, ignore=(),
                 allow_different=False):
    """Checks, before anything is written, that ``folder`` may take a run.

    A run (a training run, a search) keeps what it was asked for in
    ``folder/settings_file``; the same settings there mean the same run, to
    be resumed. Nothing here writes or deletes.

    Args:
        folder: the run's folder.
        settings_file: the file name of its settings, e.g. ``"run.json"``.
        settings: the JSON-serialisable settings of the run to start.
        kind: what a run is called in messages (``"run"``, ``"search"``).
        remedy: the sentence that ends the error for other settings.
        ignore: setting names that may differ (a resume may change epochs).
        allow_different: return ``"different"`` (the caller starts over)
            rather than raise for other settings.

    Returns:
        ``"new"`` (missing or empty), ``"same"`` or ``"different"``.

    Raises:
        InputError: if ``folder`` is a file, holds files but no
            ``settings_file``, or holds other settings (unless
            ``allow_different``); the message lists the differences.
    """
    folder = Path(folder)
    settings = json.loads(json.dumps(settings))  # as stored: tuples are lists
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{str(folder)!r} exists and is not a folder.")
    settings_path = folder / settings_file
    if settings_path.exists():
        previous = json.loads(settings_path.read_text())
        keys = sorted((set(previous) | set(settings)) - set(ignore))
        differences = [f"{key}: {previous.get(key)!r} before, "
                       f"{settings.get(key)!r} now"
                       for key in keys if previous.get(key) != settings.get(key)]
        if not differences:
            return "same"
        if allow_different:
            return "different"
        raise InputError(
            f"{str(folder)!r} holds a different {kind} "
            f"({'; '.join(differences)}). {remedy}")
    if folder.exists() and any(folder.iterdir()):
        raise InputError(
            f"{str(folder)!r} is not empty and holds no {settings_file}: it is "
            f"not a keras-ae {kind}, and nothing in it is deleted. Choose an "
            f"empty or new folder.")
    return "new"
