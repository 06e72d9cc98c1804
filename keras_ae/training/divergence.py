"""Stopping a training run that diverged, in one line, before a model that
only looks finished is written.

A learning rate too large (or a loss scale gone wrong) turns the loss into
NaN or infinity; every later step keeps it there, and a model saved then
outputs NaN everywhere. ``StopOnDivergence`` raises ``TrainingDiverged`` at
the first batch whose loss is not finite, and at an epoch's end whose
validation loss or weights are not, before the callbacks after it save a
checkpoint; ``keras_ae.training.train`` then writes no ``model.keras``.
(``keras.callbacks.TerminateOnNaN`` only stops ``fit``, which then returns
as if training had ended.)
"""

import math

import keras
import numpy as np

from keras_ae.errors import InputError

__all__ = ["StopOnDivergence", "TrainingDiverged"]


class TrainingDiverged(InputError):
    """Training produced a non-finite loss or weights (the settings' fault,
    not the program's: reported in one line)."""


class StopOnDivergence(keras.callbacks.Callback):
    """Raises ``TrainingDiverged`` as soon as training diverges.

    Put it first among the callbacks, so that no checkpoint of a diverged
    model is written after it.

    Args:
        epochs: the run's epochs, for the message.
        learning_rate: the run's learning rate, for the message.

    Example:

    >>> model = keras_ae.build_dense_autoencoder((4, 4, 1), code_size=2,
    ...                                         hidden_units=(4,))
    >>> model.compile(keras.optimizers.SGD(1e30), "mse")
    >>> x = np.random.default_rng(0).random((8, 4, 4, 1), "float32") * 1e3
    >>> model.fit(x, x, epochs=2, verbose=0,
    ...           callbacks=[StopOnDivergence(2, 1e30)])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_ae.training.divergence.TrainingDiverged: training diverged in epoch ...
    """

    def __init__(self, epochs, learning_rate):
        super().__init__()
        self.epochs, self.learning_rate = epochs, learning_rate
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._diverged(f"the loss became {float(loss)} at step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            if name.endswith("loss") and not math.isfinite(float(value)):
                self._diverged(f"{name} is {float(value)}")
        if not all(np.isfinite(weight).all() for weight in self.model.get_weights()):
            self._diverged("its weights hold NaN or infinite values")

    def _diverged(self, what):
        self.model.stop_training = True
        if self.params.get("verbose"):
            print(flush=True)  # ends the progress bar's line before the message
        raise TrainingDiverged(
            f"training diverged in epoch {self.epoch + 1} of {self.epochs}: {what} "
            f"(learning rate {self.learning_rate:g}); no model.keras was written. "
            f"Start over with a smaller --learning-rate (learning_rate=...), in a "
            f"new --output folder or with --overwrite.")
