"""The files a run folder gets every epoch, each whole or absent: the
trained model, ``checkpoints/epoch_NNN.keras`` and ``history.csv``, written
under a temporary name and renamed into place (``keras_ae.files``)."""

import csv
import time
from pathlib import Path

import keras

from keras_ae.files import write_atomically

__all__ = ["Checkpoints", "HistoryCsv", "read_history", "save_model"]


def save_model(model, path):
    """Saves ``model`` as a ``.keras`` file atomically; returns the path."""
    return write_atomically(path, model.save)


# --- callbacks --------------------------------------------------------------

class HistoryCsv(keras.callbacks.Callback):
    """Keeps ``history.csv``: one row per finished epoch, rewritten atomically.

    The columns are ``CSVLogger``'s (``epoch`` from 0, then the logs), plus
    ``train_seconds``, the epoch's training time without validation. Unlike
    ``CSVLogger``, a resumed run first drops rows from the epoch it
    resumes at onwards, so a kill between two callbacks can neither lose nor
    duplicate a row. Also records each epoch's training seconds.
    """

    def __init__(self, path):
        super().__init__()
        self.path = Path(path)
        self.rows = None
        self.seconds_this_process = []  # training seconds of each epoch run here
        self._started = None
        self._train_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        if self.rows is None:  # first epoch of this process: maybe a resume
            self.rows = [row for row in read_history(self.path)
                         if row["epoch"] < epoch]
        self._train_seconds = 0.0
        self._started = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._started is None:
            self._started = time.perf_counter()

    def on_test_begin(self, logs=None):  # validation: not training time
        self._stop_clock()

    def _stop_clock(self):
        if self._started is not None:
            self._train_seconds += time.perf_counter() - self._started
            self._started = None

    def on_epoch_end(self, epoch, logs=None):
        self._stop_clock()
        self.seconds_this_process.append(self._train_seconds)
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()},
               "train_seconds": round(self._train_seconds, 4)}
        self.rows.append(row)
        fields = list(dict.fromkeys(k for r in self.rows for k in r))

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(self.rows)
        write_atomically(self.path, write)


def read_history(path):
    """Rows of a ``history.csv`` as dicts of floats (``epoch`` as int); [] if absent."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()
                 if v not in ("", None)} for row in csv.DictReader(f)]


class Checkpoints(keras.callbacks.Callback):
    """``checkpoints/epoch_NNN.keras`` after each epoch (numbered from 1, as
    ``ModelCheckpoint`` names them), each written whole under a temporary
    name and renamed into place: a kill or a full disk leaves the earlier
    checkpoints and no torn one (``ModelCheckpoint`` writes in place)."""

    def __init__(self, folder):
        super().__init__()
        self.folder = Path(folder)

    def on_epoch_end(self, epoch, logs=None):
        save_model(self.model, self.folder / f"epoch_{epoch + 1:03d}.keras")
