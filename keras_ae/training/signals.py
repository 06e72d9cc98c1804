"""SIGINT and SIGTERM while a model trains, taken at the end of a batch.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be
when SIGINT comes, even inside a weakref callback or a ``__del__``, where it
is printed as "Exception ignored" and training simply goes on. Inside
``between_batches()`` a first SIGINT or SIGTERM is only noted, and
``StopOnSignal`` (a Keras callback) raises it as ``keras_ae.errors.Interrupted``
at the next batch's end, from where it always propagates; a second signal
raises at once. Outside the block the handlers are those that were there.

Example:

>>> import keras, numpy as np
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
>>> model.compile("adam", "mse")
>>> with between_batches():
...     _ = model.fit(np.zeros((4, 2)), np.zeros((4, 2)), verbose=0,
...                   callbacks=[StopOnSignal()])
"""

import contextlib
import signal
import threading

import keras

from keras_ae.errors import Interrupted

__all__ = ["StopOnSignal", "between_batches", "interruptions_named"]

_pending = []  # the signal noted, not yet raised


def _note(number, frame):
    if _pending:  # the second: at once
        raise Interrupted(number)
    _pending.append(number)


def raise_pending():
    """Raises the noted signal as ``Interrupted``, if one came."""
    if _pending:
        raise Interrupted(_pending.pop())


@contextlib.contextmanager
def between_batches():
    """Inside the block, SIGINT and SIGTERM wait for ``StopOnSignal``
    (or the block's end). Only the main thread can hold signals: elsewhere
    the block changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending.clear()
    previous = {number: signal.signal(number, _note)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
        raise_pending()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _pending.clear()


@contextlib.contextmanager
def interruptions_named(where):
    """SIGINT (``KeyboardInterrupt``) or SIGTERM (``Interrupted``) inside the
    block become ``Interrupted`` saying what was under way: ``where()``, asked
    when the signal comes (``"during epoch 3 of 10"``)."""
    try:
        yield
    except (KeyboardInterrupt, Interrupted) as interruption:
        number = getattr(interruption, "signal_number", signal.SIGINT)
        raise Interrupted(number, where()) from None


class StopOnSignal(keras.callbacks.Callback):
    """Raises a signal ``between_batches`` noted, at the end of a batch or
    an epoch (training, validation or prediction)."""

    def on_train_batch_end(self, batch, logs=None):
        raise_pending()

    def on_test_batch_end(self, batch, logs=None):
        raise_pending()

    def on_predict_batch_end(self, batch, logs=None):
        raise_pending()

    def on_epoch_end(self, epoch, logs=None):
        raise_pending()
