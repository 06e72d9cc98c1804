"""A whole training run as one call: what ``keras-ae train`` does.

``TrainingRun`` holds everything the command's flags ask for (the data
request, the model, the training settings); ``run_training`` reads the data,
builds the model, claims the run folder, trains (resuming an interrupted
run), measures and writes the run record, and returns the
``keras_ae.training.TrainResult``. The command line only parses its flags
into a ``TrainingRun`` and prints the result.
"""

import dataclasses

from keras_ae.errors import InputError
from keras_ae.training import loop

MODELS = ("conv", "dense")


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """One training run, as asked for.

    Attributes:
        data: a ``keras_ae.data.DataSource`` (where the images are, how to
            read them, the validation split and seed).
        model: ``"conv"`` (``build_conv_autoencoder``) or ``"dense"``.
        model_options: the builder's arguments given; the rest keep the
            builder's defaults.
        normal_classes: train on these classes only (label numbers or class
            folder names), for anomaly detection; empty for all.
        epochs, batch_size, learning_rate, patience, noise_factor: as for
            ``keras_ae.training.train`` and ``keras_ae.data.DataSource.load``;
            ``learning_rate`` ``None`` for ``DEFAULT_LEARNING_RATE``.
        seed: seeds the weights, the split, the shuffling and the noise.
        xla: compile the train step with XLA.
        mixed_precision: as for ``keras_ae.training.configure_devices``.
    """

    data: object
    model: str = "conv"
    model_options: dict = dataclasses.field(default_factory=dict)
    normal_classes: tuple = ()
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float | None = None
    patience: int | None = None
    noise_factor: float = 0.0
    seed: int = 0
    xla: bool = False
    mixed_precision: str = "auto"

    def builder(self):
        """The builder function ``model`` names."""
        import keras_ae

        self._check_model_name()
        return (keras_ae.build_conv_autoencoder if self.model == "conv"
                else keras_ae.build_dense_autoencoder)

    def check_model(self, image_shape):
        """Refuses, with nothing built, a model the builder would refuse for
        images of ``image_shape`` (too small for its pooling, bad options)."""
        from keras_ae.models import builders

        self._check_model_name()
        check = (builders.check_conv_arguments if self.model == "conv"
                 else builders.check_dense_arguments)
        check(image_shape, **self.model_options)

    def _check_model_name(self):
        if self.model not in MODELS:
            raise InputError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}.")


def run_training(run, output, *, overwrite=False, verbose=True):
    """Trains ``run`` into the folder ``output`` and writes its record.

    Under a ``TF_CONFIG`` cluster every worker makes this same call; the
    chief holds the run folder (and its lock) from the claim to the last
    picture, the other workers write only their backups.

    Args:
        run: a ``TrainingRun``.
        output: the run folder (``keras_ae.training.train``'s).
        overwrite: start over where the folder holds another run
            (``keras_ae.outputs``' rule: only the run's own files go).
        verbose: print what the data holds and Keras' progress.

    Returns:
        The ``TrainResult``; its ``metrics`` is the ``metrics.json`` written
        (on the chief).

    Raises:
        InputError: bad data, a model the images cannot feed, a folder that
            holds something else; all before anything is written.
    """
    import keras

    if run.learning_rate is not None:  # before any data is read
        loop.check_learning_rate(run.learning_rate)
    # First: under a TF_CONFIG cluster, TensorFlow must set up its collective
    # ops before anything else runs.
    devices = loop.configure_devices(run.mixed_precision)
    builder = run.builder()
    if run.data.image_size is not None:  # a size the model cannot take fails now,
        run.check_model((*run.data.image_size, 1))  # not after the reading
    keras.utils.set_random_seed(run.seed)  # before the pipelines: they draw on it
    data = run.data.load(batch_size=run.batch_size, noise_factor=run.noise_factor,
                         verbose=verbose)
    settings = {"model": run.model, "model_options": run.model_options, "seed": run.seed,
                "validation_split": run.data.validation_split, "xla": run.xla,
                "mixed_precision": run.mixed_precision}
    if run.normal_classes:
        from keras_ae.data.pipelines import class_labels, keep_classes, labels_of

        normal = class_labels(run.normal_classes, data, labels_of(data),
                              "normal_classes (--normal-classes)")
        data = keep_classes(data, normal)
        settings["normal_classes"] = normal
    if verbose:
        print(data.summary())
    learning_rate = (loop.DEFAULT_LEARNING_RATE if run.learning_rate is None
                     else run.learning_rate)
    # train claims the folder, once, and holds its lock to the last picture
    return loop.train(lambda: builder(data.image_shape, **run.model_options), data, output,
                      epochs=run.epochs, learning_rate=learning_rate,
                      patience=run.patience, jit_compile=run.xla, devices=devices,
                      settings=settings, overwrite=overwrite,
                      verbose="auto" if verbose else 0)
