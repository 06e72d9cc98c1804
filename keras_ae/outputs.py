"""Output folders: the one rule of every keras_ae command that writes a folder.

A command (train, export, tune, anomaly, features, cluster, generate,
predict) writes into a folder that

- does not exist, or is empty, or
- was written by the same command for the same source, as recorded in the
  folder's manifest, ``keras-ae.json``.

Anything else is refused before any work, in one line naming the folder
and what is in it, unless ``overwrite`` (``--overwrite``) is given; even
then only the entries that command wrote before are replaced: never a file
it did not write, never the source it reads from, never a folder holding
that source. While it runs, the command holds the folder's lock,
``.keras-ae.lock`` (process id and host), so that a folder has one writer;
a lock left by a dead process is taken over with a message.

Entries are replaced atomically: written complete into a temporary folder
inside the output folder, then renamed into place one by one (a file by
``os.replace``, a folder by moving the old one aside first). Temporaries
carry their process id (``keras_ae.files.temporary_path``); those a killed
process left are removed the next time the folder is claimed.

No TensorFlow here: ``keras-ae predict`` serves without it.

Example:

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp()) / "out"
>>> with claim(folder, "example", "a source", names=["a.txt"]) as out:
...     with out.staging() as staged:
...         _ = (staged / "a.txt").write_text("hi")
...         out.commit(staged)
['a.txt']
>>> sorted(p.name for p in folder.iterdir())
['a.txt', 'keras-ae.json']
>>> claim(folder, "example", "another source")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
keras_ae.errors.InputError: '...out' holds keras-ae example's output from another source ...
"""

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import socket
import sys
from pathlib import Path

import keras_ae
from keras_ae import files
from keras_ae.errors import InputError

__all__ = ["LOCK_FILE", "MANIFEST_FILE", "OutputFolder", "claim", "locked", "seal"]

MANIFEST_FILE, LOCK_FILE = files.MANIFEST_FILE, files.LOCK_FILE


def _real(path):
    return os.path.realpath(os.fspath(path))


def _contains(outer, inner):
    """Whether the path ``inner`` is ``outer`` or lies inside it."""
    outer, inner = _real(outer), _real(inner)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


class OutputFolder:
    """A claimed output folder; made by ``claim``, used as a context manager
    (the lock is held inside it).

    Attributes:
        path: the folder.
        command: the command writing it (``"export"``).
        source: what the command reads (a model file's absolute path, a
            dataset), as recorded in the manifest.
        state: ``"new"`` (missing or empty), ``"own"`` (this command's, same
            source) or ``"shared"`` (other files; ``overwrite`` given).
        overwrite: whether this command's earlier entries may be replaced
            where the rule would otherwise refuse.
    """

    def __init__(self, path, command, source, state, overwrite, own, sources,
                 fingerprints=None):
        self.path, self.command, self.source = Path(path), command, source
        self.state, self.overwrite = state, overwrite
        self._own = list(own)           # entry names this command wrote
        self._sources = list(sources)   # files it reads: never replaced
        self._fingerprints = dict(fingerprints or {})  # name -> sha256 as written
        self._lock = None

    def __repr__(self):
        return (f"OutputFolder({str(self.path)!r}, command={self.command!r}, "
                f"state={self.state!r})")

    def __enter__(self):
        self._lock = locked(self.path, self.command)
        self._lock.__enter__()
        return self

    def __exit__(self, *exc):
        self._lock.__exit__(*exc)
        return False

    # --- what may be replaced ---------------------------------------------------

    def owns(self, name):
        """Whether ``name`` (an entry of the folder) is this command's own:
        recorded in the manifest and, where its checksum was recorded (a
        file written whole), still the file it wrote."""
        if name not in self._own:
            return False
        recorded = self._fingerprints.get(name)
        return recorded is None or recorded == _fingerprint(self.path / name)

    def check_names(self, names, *, replace_own=True):
        """Refuses, before anything is written, names the command may not
        write: an existing entry it did not write, the source it reads or a
        folder holding it, and, with ``replace_own=False`` (predict), any
        existing entry unless ``overwrite``.

        Raises:
            InputError: naming the entry and why.
        """
        taken = []
        for name in names:
            target = self.path / name
            for source in self._sources:
                if _contains(target, source):
                    raise InputError(
                        f"{self._who} would write {str(target)!r}, which is or "
                        f"holds what it reads ({source}); choose another "
                        f"output folder.")
            if not os.path.lexists(target):
                continue
            if not self.owns(name):
                how = ("was changed since " if name in self._own
                       else "exists and was not written by ")
                raise InputError(
                    f"{str(target)!r} {how}{self._who}"
                    f"{' wrote it' if name in self._own else ''}: it is never "
                    f"replaced, even with --overwrite. Move it, or choose "
                    f"another output folder.")
            if not replace_own and not self.overwrite:
                taken.append(name)
        if taken:
            raise InputError(
                f"{str(self.path)!r} already holds {files.names_shown(taken)} "
                f"from an earlier {self._who}; pass --overwrite to replace "
                f"them, or choose another output folder.")

    @property
    def _who(self):
        return f"keras-ae {self.command}"

    # --- writing ------------------------------------------------------------------

    @contextlib.contextmanager
    def staging(self):
        """A temporary folder inside the output folder, removed on leaving
        (what ``commit`` moved out of it stays)."""
        with files.temporary_folder(self.path) as staged:
            yield staged

    def commit(self, staged, last=(), replace_all_own=False):
        """Moves every entry of ``staged`` into the folder, replacing this
        command's earlier ones, and records them in the manifest.

        Args:
            staged: a folder from ``staging``.
            last: names moved after the others (a model card, which then
                describes files already in place).
            replace_all_own: also remove this command's earlier entries
                that the new output lacks (an export of another model has
                no ``decoder.onnx``), so the folder holds one output.

        Returns:
            The names moved, in order.
        """
        names = sorted(os.listdir(staged), key=lambda n: (n in last, n))
        self.check_names(names)
        self.record(names)  # first: a kill below leaves them recorded as ours
        if replace_all_own:
            self.remove_own(keep=names)
        self._move_in(staged, names)
        self.record(names, fingerprints=True)
        return names

    def commit_files(self, staged, names):
        """Moves the files ``names`` (paths relative to ``staged``, as
        predict's ``a/x_reconstruction.png``) into the folder one by one,
        making their subfolders, and records them with their checksums. Only
        those files are replaced: a subfolder of other files stays as it is.

        Returns:
            The paths written, in the folder.
        """
        self.record(names)  # first: a kill below leaves them recorded as ours
        written = []
        for name in names:
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(staged) / name, target)
            written.append(target)
        self.record(names, fingerprints=True)
        return written

    def _move_in(self, staged, names):
        for name in names:
            target, new = self.path / name, Path(staged) / name
            if new.is_dir() and os.path.lexists(target):
                aside = files.temporary_path(self.path)
                os.rename(target, aside)
                os.rename(new, target)
                _remove(aside)
            else:
                if os.path.isdir(target) and not os.path.islink(target):
                    _remove(target)  # ours, and a file takes its place
                os.replace(new, target)

    def record(self, names, fingerprints=False):
        """Adds ``names`` to this command's entries in the manifest; with
        ``fingerprints``, the checksums of those that are files, so that a
        file put in their place later is known not to be this command's."""
        manifest = read_manifest(self.path)
        writer = manifest["writers"].setdefault(self.command, {})
        writer["source"] = self.source
        writer["entries"] = sorted(set(writer.get("entries", [])) | set(names))
        recorded = writer.setdefault("fingerprints", {})
        for name in names:
            recorded.pop(name, None)
            if fingerprints and (self.path / name).is_file():
                recorded[name] = _fingerprint(self.path / name)
        manifest["keras_ae_version"] = keras_ae.__version__
        self._own = sorted(set(self._own) | set(names))
        self._fingerprints = dict(recorded)
        files.write_json(self.path / MANIFEST_FILE, manifest)

    @contextlib.contextmanager
    def in_place(self, names):
        """Holds the lock while the command writes ``names`` straight into
        the folder (each file atomically: ``keras_ae.files``).

        The names are recorded first, so that a killed command's files are
        still known as its own. A command that fails in a new folder leaves
        no manifest behind (nor the folder, if it made it and wrote nothing).
        """
        with self:
            self.record(names)
            try:
                yield self
            except BaseException:
                if self.state == "new" and not any(
                        not files.is_keras_ae_own(e.name) for e in os.scandir(self.path)):
                    (self.path / MANIFEST_FILE).unlink(missing_ok=True)
                raise
            self.record(names, fingerprints=True)

    def remove_own(self, keep=()):
        """Deletes this command's earlier entries (to start over), but those
        in ``keep``; nothing else is touched. Returns the names removed."""
        removed = []
        for entry in sorted(os.scandir(self.path), key=lambda e: e.name):
            name = entry.name
            if (self.owns(name) and name not in keep
                    and not files.is_keras_ae_own(name)):
                self.check_names([name])  # never a folder holding the source
                _remove(entry.path)
                removed.append(name)
        return removed


def seal(folder, command, names):
    """Records the checksums of ``command``'s files among ``names`` as they
    stand, once a command that writes in place over a run (train, tune) has
    finished: from then on a file put in their place is not its own, and
    ``--overwrite`` leaves it alone. (While the run goes on its entries are
    listed without checksums, so that a killed run is still resumed.)"""
    writer = read_manifest(folder)["writers"].get(command)
    if writer is not None:
        OutputFolder(folder, command, writer.get("source"), "own", False,
                     writer.get("entries", []), ()).record(names, fingerprints=True)


def _fingerprint(path):
    """sha256 of a file, read in blocks; ``None`` for anything else."""
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2 ** 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def read_manifest(folder):
    """The folder's manifest (``{"writers": {command: {"source", "entries"}}}``),
    empty where there is none; a one-line error for one that does not parse."""
    path = Path(folder) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return {"writers": {}}
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not a keras-ae manifest that parses "
                         f"({error}); move it away, or choose another "
                         f"output folder.") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("writers"), dict):
        raise InputError(f"{path} is not a keras-ae manifest (no 'writers'); "
                         f"move it away, or choose another output folder.")
    return manifest


def claim(folder, command, source, *, names=(), overwrite=False,
          reads=(), replace_own=True):
    """Checks, before any work, that ``command`` may write ``folder``.

    Args:
        folder: the output folder.
        command: the command's name (``"export"``), as messages and the
            manifest give it.
        source: what it reads, e.g. a model file's absolute path or a
            dataset's name: the same command for another source is refused
            without ``overwrite``; ``None`` where the caller cannot say
            (a library call given a model object), then not compared.
        names: the entries it will write (file or folder names directly in
            ``folder``, or relative paths below it, as predict's
            ``a/x.png``), checked now. Never patterns: what a library names
            itself (KerasTuner's trials) lives in a subfolder owned whole.
        overwrite: write into a folder of other files, replacing this
            command's earlier entries (never another file).
        reads: files the command reads; no entry it writes may be or hold
            one.
        replace_own: False where an existing entry of the command's own is
            replaced only with ``overwrite`` (``keras-ae predict``).

    Returns:
        An ``OutputFolder``; enter it (``with``) to hold the lock while writing.

    Raises:
        InputError: one line naming the folder and what is in it.
    """
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise InputError(f"{str(folder)!r} exists and is not a folder; "
                         f"expected a folder to write into.")
    reads = [os.path.abspath(path) for path in reads]
    if any(_real(path) == _real(folder) for path in reads):
        raise InputError(f"the output folder {str(folder)!r} is what "
                         f"keras-ae {command} reads; choose another folder.")
    files.remove_stale_temporaries(folder)
    entries = ([e.name for e in os.scandir(folder)
                if not files.is_keras_ae_own(e.name)] if folder.is_dir() else [])
    manifest = read_manifest(folder)
    writers = manifest["writers"]
    # Only the manifest says what is keras_ae's: a run.json, search.json or
    # model_card.json it does not list is a user's file like any other.
    mine = writers.get(command)
    recorded = {name for writer in writers.values()
                for name in writer.get("entries", [])}
    recorded |= {name.split("/")[0] for name in recorded}  # predict's a/x.png
    # A folder with a manifest of its own is keras-ae output too (predict's
    # reconstructions inside a run folder), never the user's.
    nested = [e for e in entries if (folder / e / MANIFEST_FILE).is_file()]
    foreign = [e for e in entries if e not in nested and e not in recorded]
    own = [] if mine is None else mine["entries"]
    fingerprints = {} if mine is None else mine.get("fingerprints", {})
    if not entries:
        state = "new"
    elif mine is not None and source in (None, mine.get("source")) and not foreign:
        state = "own"
    elif overwrite:
        state = "shared"
    else:
        raise InputError(_refusal(folder, command, mine, foreign, source, writers,
                                  nested))
    result = OutputFolder(folder, command, source, state, overwrite, own, reads,
                          fingerprints)
    result.check_names(names, replace_own=replace_own)
    return result


def _refusal(folder, command, mine, foreign, source, writers, nested):
    who = f"keras-ae {command}"
    if foreign:
        kinds = sorted(e + ("/" if (folder / e).is_dir() else "") for e in foreign)
        what = (f"holds {files.names_shown(kinds)}, not written by {who}")
        then = ("pass --overwrite to write beside them (only "
                f"{who}'s own files are ever replaced)")
    elif mine is not None and mine.get("source") != source:
        what = (f"holds {who}'s output from another source "
                f"({mine.get('source')}, not {source})")
        then = f"pass --overwrite to replace {who}'s files there"
    else:
        others = [f"keras-ae {name}'s output" for name in sorted(writers)
                  if name != command]
        if nested:
            others.append(f"keras-ae output folders ({files.names_shown(nested)})")
        what = f"holds {' and '.join(others)}"
        then = f"pass --overwrite to write {who}'s files beside it"
    return (f"{str(folder)!r} {what}: nothing in it is changed. Choose a new "
            f"or empty folder, or {then}.")


# --- the lock --------------------------------------------------------------------

@contextlib.contextmanager
def locked(folder, command):
    """Holds ``folder``'s lock (``LOCK_FILE``) inside the block.

    Taken again by the process that holds it (a command calling the
    library), it is kept, not released, at the inner block's end. A lock
    whose process has ended on this host is taken over, with a message.

    Raises:
        InputError: while another live process (or one on another host)
            holds it, naming that process.
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    try:
        mine = _take(path, command)
    except BaseException:
        _remove_if_empty(folder, created)
        raise
    try:
        yield
    finally:
        if mine:
            with contextlib.suppress(FileNotFoundError):
                if _holder(path).get("pid") == os.getpid():
                    path.unlink()
            _remove_if_empty(folder, created)


def _remove_if_empty(folder, created):
    """A folder the lock created stays only if something was written in it."""
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only ever removes an empty folder


def _holder(path):
    try:
        holder = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise
    except (ValueError, OSError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _take(path, command):
    """Creates the lock; False if this process holds it already."""
    stamp = {"pid": os.getpid(), "host": socket.gethostname(),
             "command": command,
             "since": datetime.datetime.now().isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = _holder(path)
            except FileNotFoundError:
                continue  # released meanwhile: try again
            same_host = holder.get("host") == socket.gethostname()
            pid = holder.get("pid")
            if same_host and pid == os.getpid():
                return False
            if same_host and isinstance(pid, int) and not files.process_alive(pid):
                print(f"{path.parent}: taking over the lock of keras-ae "
                      f"{holder.get('command')} (process {pid}, since "
                      f"{holder.get('since')}), which is no longer running",
                      file=sys.stderr)
                path.unlink(missing_ok=True)
                continue
            raise InputError(
                f"{str(path.parent)!r} is being written by keras-ae "
                f"{holder.get('command', '?')} (process {pid} on "
                f"{holder.get('host', '?')}, since {holder.get('since', '?')}); "
                f"wait for it to end, or choose another folder (if that "
                f"process is gone, delete {path}).")
        with os.fdopen(descriptor, "w") as f:
            json.dump(stamp, f)
        return True
    raise InputError(f"could not take the lock {path}: another process keeps "
                     f"taking it.")
