"""Writing files so that nothing already written is lost, and reading only
regular files.

Every file keras_ae writes goes to a temporary name beside its destination
and is renamed into place once complete. A rename within one folder is atomic,
so a failed or killed write leaves the previous file (or none), never half a
file. What keras_ae reads of a user's (images, IDX files) is opened by
``open_regular``, so that a FIFO or a device never blocks or floods it. No
TensorFlow here: serving code uses it too.
"""

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
from pathlib import Path

from keras_ae.errors import InputError


# --- reading: regular files only -----------------------------------------------

class NotRegularFile(InputError):
    """A FIFO, device, socket or folder where a file was to be read;
    ``kind`` says which (``"a FIFO (named pipe)"``)."""

    def __init__(self, path, kind):
        super().__init__(f"{path} is {kind}, not a regular file")
        self.path, self.kind = path, kind


def open_regular(path):
    """``path`` opened for binary reading if it is a regular file (links
    followed), looked at before and after the open, which never blocks: a
    FIFO, a device (``/dev/zero``), a socket or a folder is refused unread.

    Raises:
        FileNotFoundError: no such file.
        NotRegularFile: naming what it is instead.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(path, _kind(mode))
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):  # replaced between the two looks
        os.close(descriptor)
        raise NotRegularFile(path, _kind(mode))
    return os.fdopen(descriptor, "rb")


def _kind(mode):
    """What a file-system entry that is not a regular file is, for messages."""
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


# --- writing -----------------------------------------------------------------------

def write_atomically(path, write):
    """Calls ``write(temporary_path)``, then renames the result to ``path``.

    The temporary file sits in ``path``'s folder (``temporary_path``): it
    keeps ``path``'s suffix for writers that check it (``model.save`` wants
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
    temporary = temporary_path(path.parent, path.suffix)
    try:
        write(str(temporary))
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return str(path)


@contextlib.contextmanager
def temporary_folder(folder):
    """A new folder inside ``folder`` under ``temporary_path``'s name,
    removed with what it holds on leaving: scratch space for a writer that
    needs several files before it renames one into place (a killed
    process's is removed by the next claim of ``folder``).

    >>> import tempfile
    >>> with temporary_folder(tempfile.mkdtemp()) as scratch:
    ...     scratch.name.startswith(".keras-ae-")
    True
    """
    path = temporary_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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


def replace_folder(directory, write, *, kind, is_kind):
    """Calls ``write(temporary_folder)``, then swaps the result into ``directory``.

    The temporary folder sits beside ``directory`` under a short
    process-tagged name (see ``temporary_path``); if ``write`` fails, it is
    removed and ``directory`` is untouched. An existing ``directory`` is
    replaced only when it is empty or ``is_kind`` recognises it as what this
    call writes (a SavedModel, say): anything else is refused, so that a
    folder of other files is never deleted.

    Args:
        directory: the folder to write.
        write: a function that fills the folder it is given.
        kind: what the folder is, for messages (``"SavedModel"``).
        is_kind: ``is_kind(path)`` is True for a folder this call may replace.

    Returns:
        What ``write`` returned.

    Raises:
        InputError: if ``directory`` is a file, or a folder of something else.

    Example:

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "out"
    >>> replace_folder(folder, lambda tmp: Path(tmp, "a.txt").write_text("hi"),
    ...                kind="note", is_kind=lambda p: (p / "a.txt").exists())
    2
    >>> sorted(p.name for p in folder.parent.iterdir())
    ['out']
    """
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise InputError(f"{str(directory)!r} exists and is not a folder; "
                             f"expected a {kind} folder or a new name.")
        if any(directory.iterdir()) and not is_kind(directory):
            raise InputError(
                f"{str(directory)!r} holds files that are not a {kind} "
                f"({listing(directory)}): nothing in it is replaced. Choose a "
                f"new or empty folder.")
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory.parent)
    temporary = temporary_path(directory.parent)
    old = temporary_path(directory.parent)
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


def listing(folder, shown=4):
    """``"a/, b/, notes.txt and 3 more"``: what a folder holds, for messages
    (keras_ae's own temporaries, manifest and lock left out)."""
    names = sorted(entry.name + ("/" if entry.is_dir() else "")
                   for entry in os.scandir(folder) if not is_keras_ae_own(entry.name))
    return names_shown(names, shown)


def names_shown(names, shown=4):
    """Up to ``shown`` names joined, with how many more."""
    names = list(names)
    text = ", ".join(names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")


# --- temporaries a killed process leaves -------------------------------------

# What keras_ae.outputs keeps in an output folder for itself.
MANIFEST_FILE = "keras-ae.json"
LOCK_FILE = ".keras-ae.lock"
# Names of keras_ae's temporaries: host tag, process id, random part.
_TEMPORARY = re.compile(r"^\.keras-ae-([0-9a-f]{8})-([0-9]+)-[0-9a-f]+\.tmp")
_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temporary_path(folder, suffix=""):
    """A new temporary name in ``folder``: ``.keras-ae-HOST-PID-RANDOM.tmpSUFFIX``.

    It carries this host and process, so that one a killed process left can
    be told from one a live process is writing (``remove_stale_temporaries``),
    and its length does not depend on the destination's name, so a legal
    name near the file system's 255-byte limit stays writable.
    """
    return Path(folder) / (f".keras-ae-{_HOST_TAG}-{os.getpid()}-"
                           f"{secrets.token_hex(3)}.tmp{suffix}")


def is_keras_ae_own(name):
    """A name keras_ae keeps in an output folder for itself: a temporary,
    the manifest or the lock (see ``keras_ae.outputs``)."""
    return bool(_TEMPORARY.match(name)) or name in (LOCK_FILE, MANIFEST_FILE)


def process_alive(pid):
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        return True
    return True


def remove_stale_temporaries(folder):
    """Removes the temporaries (files or folders) in ``folder`` that a
    process of this host left when it was killed; those of a live process,
    or of another host, are left alone. Returns how many were removed."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or match.group(1) != _HOST_TAG:
            continue
        pid = int(match.group(2))
        if pid == os.getpid() or process_alive(pid):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)
        removed += 1
    return removed


def claim_folder(folder, settings_file, settings, *, kind, remedy, ignore=(),
                 allow_different=False):
    """Checks, before anything is written, that ``folder`` may take a run.

    A run (a training run, a search) keeps what it was asked for in
    ``folder/settings_file``; the same settings there mean the same run, to
    be resumed. Whether the folder may be written at all is
    ``keras_ae.outputs.claim``'s to say, first. Nothing here writes or
    deletes.

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
        ``"new"`` (no ``settings_file``), ``"same"`` or ``"different"``.

    Raises:
        InputError: if ``folder`` is a file, or holds other settings (unless
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
    return "new"
