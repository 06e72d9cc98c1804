"""Hyperparameter search over autoencoders with KerasTuner.

``AutoencoderHyperModel`` describes a search space of autoencoders built by
``keras_ae``'s public builders; ``search`` runs KerasTuner over it and keeps
what a user needs afterwards in one folder::

    DIR/PROJECT/
      search.json                what was asked for; a later start must match
      trials.csv                 one row per trial: hyperparameters, val MSE,
                                 parameters, code floats, seconds
      best_hyperparameters.json  the best trial, with the builder call that
                                 rebuilds its model
      best_model.keras           the best trial's model, trained
      oracle.json, trial_*/      KerasTuner's own state and checkpoints

Started again with the same arguments, a search that was interrupted (even
by kill -9) continues where it stopped: finished trials are kept, a trial
that was running is run again from its start.

Several machines: KerasTuner's own distributed mode. One process, the chief,
holds the oracle and serves it over gRPC; workers ask it for trials, train
them and report back. Each process runs the same ``search`` call (or
``keras-ae tune`` command) with a shared ``directory`` (a shared filesystem)
and these environment variables::

    KERASTUNER_TUNER_ID=chief      # or tuner0, tuner1, ... one per worker
    KERASTUNER_ORACLE_IP=10.0.0.1  # the chief's address
    KERASTUNER_ORACLE_PORT=8000

The chief runs no trial: it prints a line and rewrites ``trials.csv`` as
each trial ends, and returns (writing the results) once every trial is done
and every worker that asked for trials has been told to stop. Start all
workers before the search ends: one that first asks after the chief has gone
waits for it (KerasTuner's client gives up after an hour). Workers return
without a best model.
"""

import csv
import dataclasses
import json
import math
import numbers
import os
import time
import warnings
from pathlib import Path

import keras
import keras_tuner as kt
import tensorflow as tf

from keras_ae import builders, shapes
from keras_ae.builders import DECODERS
from keras_ae.files import save_png, write_atomically, write_json
from keras_ae.training import configure_devices

FAMILIES = ("conv", "dense")
TUNERS = ("hyperband", "random", "bayesian")
OBJECTIVE = "val_loss"  # the validation MSE: the loss is MSE

SEARCH_FILE = "search.json"
TRIALS_FILE = "trials.csv"
BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.json"
BEST_MODEL_FILE = "best_model.keras"

_OPTIMIZER_WARNING = "Skipping variable loading for optimizer"
_BUILDERS = {"conv": "build_conv_autoencoder", "dense": "build_dense_autoencoder"}


# --- checking the search space ----------------------------------------------

def _choices(name, values, allowed=None, kind=int):
    """A non-empty tuple of distinct values, each of ``kind`` (and ``allowed``)."""
    if isinstance(values, (str, numbers.Number)):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence, got {values!r}.") from None
    if not values or len(set(values)) != len(values):
        raise ValueError(
            f"{name} must be a non-empty sequence without repeats, got {values!r}.")
    for value in values:
        if allowed is not None:
            if value not in allowed:
                raise ValueError(
                    f"{name} must be chosen from {list(allowed)}, got {value!r}.")
        elif kind is int and (isinstance(value, bool)
                              or not isinstance(value, numbers.Integral)
                              or value < 1):
            raise ValueError(
                f"{name} must hold positive integers, got {values!r}.")
        elif kind is float and (isinstance(value, bool)
                                or not isinstance(value, numbers.Real)
                                or not 0 <= value < math.inf):
            raise ValueError(
                f"{name} must hold finite numbers >= 0, got {values!r}.")
    return tuple(int(v) for v in values) if kind is int and allowed is None \
        else values


def _learning_rate_range(learning_rate):
    """A positive number (fixed) or ``(low, high)`` searched on a log scale."""
    if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
        values = (float(learning_rate),) * 2
    else:
        try:
            values = tuple(float(v) for v in learning_rate)
        except (TypeError, ValueError):
            values = ()
    if len(values) != 2 or not 0 < values[0] <= values[1] < math.inf:
        raise ValueError(
            "learning_rate must be a positive number or a (low, high) range "
            f"with 0 < low <= high, got {learning_rate!r}.")
    return values


def _int_range(name, value, smallest):
    """A number, or a ``(fewest, most)`` range, of integers >= ``smallest``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    try:
        low, high = value
        ok = all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                 for v in (low, high)) and smallest <= low <= high
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must be an integer >= {smallest} or a (fewest, most) range "
            f"of them, got {value!r}.")
    return int(low), int(high)


def _stage_range(stages, input_shape):
    low, high = _int_range("stages", stages, 1)
    most = int(math.log2(min(input_shape[:2])))
    if high > most:
        raise ValueError(
            f"stages {stages!r} cannot build for images of shape {input_shape}: "
            f"each stage halves height and width, so at most {most} fit.")
    return low, high


def _dataset_from_spec(spec, name):
    """``(input spec, target spec or None)`` of a dataset's elements."""
    if isinstance(spec, tf.TensorSpec):
        return spec, None
    if (isinstance(spec, tuple) and len(spec) == 2
            and all(isinstance(s, tf.TensorSpec) for s in spec)):
        return spec
    raise ValueError(
        f"{name} must yield images or (input, target) pairs of images, got "
        f"elements {spec}.")


def dataset_image_shape(dataset, name="dataset"):
    """The ``(H, W, C)`` of the images a ``tf.data.Dataset`` yields.

    Args:
        dataset: a ``tf.data.Dataset`` of images or ``(input, target)``
            pairs, batched or not, e.g. ``keras_ae.data.load().train``.
        name: how to call the dataset in error messages.

    Returns:
        The shape of one image as a tuple of ints.

    Raises:
        ValueError: for something other than a dataset of fixed-size images.

    Example:

    >>> import numpy as np
    >>> images = np.zeros((8, 16, 16, 1), "float32")
    >>> dataset_image_shape(tf.data.Dataset.from_tensor_slices(images).batch(4))
    (16, 16, 1)
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            f"{name} must be a tf.data.Dataset of images or (input, target) "
            f"pairs, got {type(dataset).__name__}.")
    inputs, targets = _dataset_from_spec(dataset.element_spec, name)
    shape = inputs.shape
    if targets is not None and targets.shape.as_list() != shape.as_list():
        raise ValueError(
            f"{name} yields inputs of shape {shape} but targets of shape "
            f"{targets.shape}; an autoencoder's target is an image like its input.")
    image = shape[1:] if shape.rank == 4 else shape
    if image.rank != 3 or not image.is_fully_defined():
        raise ValueError(
            f"{name} must yield (H, W, C) images or (batch, H, W, C) batches of "
            f"a fixed size, got elements of shape {shape}.")
    return tuple(int(d) for d in image)


# --- the hypermodel -----------------------------------------------------------

class AutoencoderHyperModel(kt.HyperModel):
    """A KerasTuner search space of dense and convolutional autoencoders.

    Each trial's model is built by ``keras_ae.build_conv_autoencoder`` or
    ``keras_ae.build_dense_autoencoder`` and compiled with Adam and MSE.
    Hyperparameters (KerasTuner names):

    - ``family``: ``"conv"`` or ``"dense"`` (of ``families``);
    - conv: ``decoder`` (of ``decoders``), ``stages`` (poolings),
      ``filters_stage1``, ... (filters of every stage but the last),
      ``convs_per_stage``, and the code: ``code_filters`` (channels of the
      last stage, which is the code) when ``code_size`` is free; with a
      pinned ``code_size``, the last stage gets ``code_size / (H * W)``
      channels where that divides evenly and otherwise ``last_stage_filters``
      and a dense code of ``code_size``;
    - dense: ``hidden_layers``, ``units_layer1``, ... (sorted widest first,
      an hourglass) and ``code_size`` unless pinned;
    - ``learning_rate`` (log scale), ``batch_size`` and, with
      ``noise_factors``, ``noise_factor``: the standard deviation of Gaussian
      noise added to the training inputs (a denoising autoencoder; the
      validation data stays as given, so every trial is scored on the same
      task). Give it clean data (``noise_factor=0`` in ``keras_ae.data``),
      or the noise adds up.

    ``fit`` rebatches the training and validation datasets to the trial's
    batch size (``model.fit`` ignores ``batch_size`` for datasets; the order
    is the dataset's own, so shuffle the training set, as ``keras_ae.data``'s
    pipelines do), adds the trial's noise, and returns the best epoch's ``val_loss`` with the
    model's ``parameters``, ``code_floats`` and training ``seconds``.

    Args:
        input_shape: ``(height, width, channels)`` of the images.
        families: which builders to search over.
        decoders: conv decoder kinds, of ``keras_ae.DECODERS``.
        stages: conv pooling stages, a number or a ``(fewest, most)`` range.
        filters: choices for the filters of each conv stage.
        convs_per_stage: choices for the convolutions in each conv stage.
        code_size: pin the code to this many floats (to compare models at
            one compression), or ``None`` to search it.
        code_filters: with ``code_size=None``, choices for the channels of
            the conv code.
        hidden_units: choices for the width of each dense hidden layer.
        hidden_layers: dense hidden layers, a number or ``(fewest, most)``.
        dense_code_sizes: with ``code_size=None``, choices for the dense code.
        learning_rate: Adam's step size, a number or a ``(low, high)`` range.
        batch_sizes: choices for the batch size.
        noise_factors: ``None`` for a plain autoencoder, or choices for the
            training noise (e.g. ``(0.1, 0.3, 0.5)``).

    Raises:
        ValueError: for a space that cannot build, saying what was given and
            what was expected: an unknown family or decoder, more stages
            than the images can pool, a code as large as the input, ...

    Example:

    >>> hypermodel = AutoencoderHyperModel((28, 28, 1), code_size=196)
    >>> hp = kt.HyperParameters()
    >>> model = hypermodel.build(hp)
    >>> hypermodel.builder_arguments(hp)[0], keras_ae.code_floats(model)
    ('build_conv_autoencoder', 196)
    """

    def __init__(self, input_shape=(28, 28, 1), *, families=FAMILIES,
                 decoders=tuple(DECODERS), stages=(2, 3), filters=(16, 32, 64),
                 convs_per_stage=(1, 2), code_size=None, code_filters=(2, 4, 8),
                 hidden_units=(128, 256, 512), hidden_layers=(0, 2),
                 dense_code_sizes=(16, 32, 64, 128),
                 learning_rate=(3e-4, 1e-2), batch_sizes=(64, 128, 256),
                 noise_factors=None, name="autoencoder_hypermodel"):
        super().__init__(name=name)
        self.input_shape = builders._image_shape(input_shape)
        self.pixels = math.prod(self.input_shape)
        self.families = _choices("families", families, allowed=FAMILIES)
        self.decoders = _choices("decoders", decoders, allowed=tuple(DECODERS))
        self.stages = _stage_range(stages, self.input_shape)
        self.filters = _choices("filters", filters)
        self.convs_per_stage = _choices("convs_per_stage", convs_per_stage)
        self.code_filters = _choices("code_filters", code_filters)
        self.hidden_units = _choices("hidden_units", hidden_units)
        self.hidden_layers = _int_range("hidden_layers", hidden_layers, 0)
        self.dense_code_sizes = _choices("dense_code_sizes", dense_code_sizes)
        self.learning_rate = _learning_rate_range(learning_rate)
        self.batch_sizes = _choices("batch_sizes", batch_sizes)
        self.noise_factors = (None if noise_factors is None else
                              _choices("noise_factors", noise_factors, kind=float))
        self.code_size = code_size
        self._check_codes()

    def _check_codes(self):
        """Every model in the space must compress: its code smaller than an image."""
        if self.code_size is not None:
            if (isinstance(self.code_size, bool)
                    or not isinstance(self.code_size, numbers.Integral)
                    or self.code_size < 1):
                raise ValueError(
                    f"code_size must be a positive integer or None, got "
                    f"{self.code_size!r}.")
            self.code_size = int(self.code_size)
            if self.code_size >= self.pixels:
                raise ValueError(
                    f"code_size {self.code_size} cannot build an autoencoder for "
                    f"images of shape {self.input_shape}: the code must be "
                    f"smaller than the image's {self.pixels} floats.")
            return
        largest = {}
        if "dense" in self.families:
            largest["dense_code_sizes"] = max(self.dense_code_sizes)
        if "conv" in self.families:
            h, w = self._last_map(self.stages[0])
            largest["code_filters"] = h * w * max(self.code_filters)
        for name, floats in largest.items():
            if floats >= self.pixels:
                raise ValueError(
                    f"{name} allows a code of {floats} floats for images of "
                    f"shape {self.input_shape}; the code must be smaller than "
                    f"the image's {self.pixels} floats.")

    def _last_map(self, stages):
        return (shapes.pooled_sizes(self.input_shape[0], stages, builders.POOL)[-1],
                shapes.pooled_sizes(self.input_shape[1], stages, builders.POOL)[-1])

    def get_config(self):
        """The constructor's arguments, JSON-serialisable."""
        return {
            "input_shape": list(self.input_shape), "families": list(self.families),
            "decoders": list(self.decoders), "stages": list(self.stages),
            "filters": list(self.filters),
            "convs_per_stage": list(self.convs_per_stage),
            "code_size": self.code_size, "code_filters": list(self.code_filters),
            "hidden_units": list(self.hidden_units),
            "hidden_layers": list(self.hidden_layers),
            "dense_code_sizes": list(self.dense_code_sizes),
            "learning_rate": list(self.learning_rate),
            "batch_sizes": list(self.batch_sizes),
            "noise_factors": (None if self.noise_factors is None
                              else list(self.noise_factors)),
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- hyperparameters --

    @staticmethod
    def _pick(hp, name, values):
        return hp.Choice(name, list(values)) if len(values) > 1 else hp.Fixed(
            name, values[0])

    @staticmethod
    def _range(hp, name, low, high):
        return hp.Int(name, low, high) if low < high else hp.Fixed(name, low)

    def builder_arguments(self, hp):
        """Which builder a trial's hyperparameters call, with what arguments.

        Declares the architecture's hyperparameters in ``hp`` (KerasTuner
        then returns the trial's values, or defaults for a fresh ``hp``).

        Args:
            hp: a ``keras_tuner.HyperParameters``.

        Returns:
            ``(builder name, keyword arguments)``, e.g.
            ``("build_conv_autoencoder", {"input_shape": (28, 28, 1),
            "filters": (32, 4), ...})``: ``getattr(keras_ae, name)(**kwargs)``
            builds the same (untrained) model.
        """
        # KerasTuner learns a conditional hyperparameter only from a scope it
        # saw entered, so every scope is entered whatever this trial's values
        # are; what an inactive scope declares is not used.
        family = self._pick(hp, "family", self.families)
        chosen = {}
        for name, arguments in (("conv", self._conv_arguments),
                                ("dense", self._dense_arguments)):
            if name in self.families:
                with hp.conditional_scope("family", [name]):
                    if family == name:
                        chosen = arguments(hp)
        return _BUILDERS[family], chosen

    def _conv_arguments(self, hp):
        decoder = self._pick(hp, "decoder", self.decoders)
        low, high = self.stages
        stages = self._range(hp, "stages", low, high)
        convs = self._pick(hp, "convs_per_stage", self.convs_per_stage)
        filters = []
        for stage in range(1, high):  # the last stage's filters are the code's
            with hp.conditional_scope("stages", list(range(stage + 1, high + 1))):
                if stage < stages:
                    filters.append(self._pick(hp, f"filters_stage{stage}",
                                              self.filters))
        code_size = self.code_size
        if code_size is None:
            filters.append(self._pick(hp, "code_filters", self.code_filters))
            return self._conv_call(filters, decoder, convs, None)
        # Where the last feature map's H x W divides the code, that map is
        # the code; elsewhere a dense code of code_size follows the last stage.
        uneven = [s for s in range(low, high + 1)
                  if code_size % math.prod(self._last_map(s))]
        if uneven:
            with hp.conditional_scope("stages", uneven):
                if stages in uneven:
                    filters.append(self._pick(hp, "last_stage_filters",
                                              self.filters))
                    return self._conv_call(filters, decoder, convs, code_size)
        filters.append(code_size // math.prod(self._last_map(stages)))
        return self._conv_call(filters, decoder, convs, None)

    def _conv_call(self, filters, decoder, convs, code_size):
        return {"input_shape": self.input_shape, "filters": tuple(filters),
                "decoder": decoder, "convs_per_stage": convs,
                "code_size": code_size}

    def _dense_arguments(self, hp):
        low, high = self.hidden_layers
        layers = self._range(hp, "hidden_layers", low, high)
        units = []
        for layer in range(1, high + 1):
            with hp.conditional_scope("hidden_layers", list(range(layer, high + 1))):
                if layer <= layers:
                    units.append(self._pick(hp, f"units_layer{layer}",
                                            self.hidden_units))
        code_size = self.code_size or self._pick(hp, "code_size",
                                                 self.dense_code_sizes)
        return {"input_shape": self.input_shape, "code_size": code_size,
                # widest next to the image: an hourglass
                "hidden_units": tuple(sorted(units, reverse=True))}

    def training_arguments(self, hp):
        """``{"learning_rate", "batch_size", "noise_factor"}`` of a trial."""
        low, high = self.learning_rate
        learning_rate = (hp.Float("learning_rate", low, high, sampling="log")
                         if low < high else hp.Fixed("learning_rate", low))
        noise = (0.0 if self.noise_factors is None else
                 self._pick(hp, "noise_factor", self.noise_factors))
        return {"learning_rate": float(learning_rate),
                "batch_size": self._pick(hp, "batch_size", self.batch_sizes),
                "noise_factor": float(noise)}

    # -- KerasTuner's interface --

    def build(self, hp):
        """Builds and compiles (Adam, MSE) the autoencoder of ``hp``."""
        from keras_ae.training import compile_autoencoder

        builder, arguments = self.builder_arguments(hp)
        learning_rate = self.training_arguments(hp)["learning_rate"]
        model = getattr(builders, builder)(**arguments)
        return compile_autoencoder(model, learning_rate)

    def fit(self, hp, model, x, *args, validation_data=None, **kwargs):
        """Trains ``model`` on datasets rebatched to the trial's batch size.

        Args:
            hp: the trial's ``keras_tuner.HyperParameters``.
            model: the model ``build(hp)`` returned.
            x: a ``tf.data.Dataset`` of images or ``(input, target)`` pairs,
                batched or not (uint8 images are scaled to [0, 1]).
            validation_data: the same kind of dataset, for ``val_loss``.
            *args, **kwargs: passed on to ``model.fit`` (``epochs``,
                ``callbacks``, ``verbose``, ...).

        Returns:
            A dict: ``val_loss`` (the best epoch's), ``loss`` at that epoch,
            ``parameters``, ``code_floats``, ``seconds`` (the ``fit`` call)
            and ``epochs_run``.

        Raises:
            ValueError: for datasets of another image shape than the space's.
        """
        settings = self.training_arguments(hp)
        train = self._prepared(x, "x", settings, noisy=True)
        validation = (None if validation_data is None else
                      self._prepared(validation_data, "validation_data", settings,
                                     noisy=False))
        kwargs.setdefault("shuffle", False)  # the pipeline shuffles, or not
        started = time.perf_counter()
        history = model.fit(train, *args, validation_data=validation, **kwargs)
        seconds = time.perf_counter() - started
        logs = history.history
        monitor = OBJECTIVE if OBJECTIVE in logs else "loss"
        best = min(range(len(logs[monitor])), key=lambda i: logs[monitor][i],
                   default=None)
        results = {"parameters": model.count_params(),
                   "code_floats": builders.code_floats(model),
                   "seconds": round(seconds, 3), "epochs_run": len(logs.get("loss", []))}
        if best is not None:
            results.update({key: values[best] for key, values in logs.items()})
        return results

    def _prepared(self, dataset, name, settings, noisy):
        shape = dataset_image_shape(dataset, name)
        if shape != self.input_shape:
            raise ValueError(
                f"{name} holds images of shape {shape}, but the search space "
                f"was made for {self.input_shape}; build the "
                f"AutoencoderHyperModel with input_shape={shape}.")
        batched = _dataset_from_spec(dataset.element_spec, name)[0].shape.rank == 4
        size = settings["batch_size"]
        batches = math.ceil(self._image_count(dataset) / size)
        dataset = dataset.rebatch(size) if batched else dataset.batch(size)
        # rebatch loses the length; Keras needs it for progress and warns without it
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
        dataset = dataset.map(_as_float_pair, num_parallel_calls=tf.data.AUTOTUNE)
        if noisy and settings["noise_factor"]:
            factor = settings["noise_factor"]
            dataset = dataset.map(lambda _, clean: (_add_noise(clean, factor), clean),
                                  num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def _image_count(self, dataset):
        """Images in ``dataset``: counted once (a pass over it), then remembered."""
        counts = self.__dict__.setdefault("_counts", {})
        if id(dataset) not in counts:
            sizes = dataset.map(lambda *element: tf.shape(element[0])[0]
                                if element[0].shape.rank == 4 else tf.constant(1))
            counts[id(dataset)] = (dataset, int(sizes.reduce(0, lambda a, b: a + b)))
        return counts[id(dataset)][1]


def _as_float_pair(*element):
    images = [tf.cast(e, tf.float32) / 255.0 if e.dtype == tf.uint8
              else tf.cast(e, tf.float32) for e in element]
    return (images[0], images[0]) if len(images) == 1 else tuple(images)


def _add_noise(clean, factor):
    # New noise every epoch; the search is not bit-reproducible anyway.
    noise = tf.random.normal(tf.shape(clean))
    return tf.clip_by_value(clean + factor * noise, 0.0, 1.0)


# --- KerasTuner tuners, with keras_ae's progress and results -------------------

class _Reporting:
    """Mixed into KerasTuner's tuners: a progress line and ``trials.csv``
    after each trial."""

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self._report(trial.trial_id)

    def _report(self, trial_id):
        if self._keras_ae_verbose:
            print(_progress_line(self, self.oracle.get_trial(trial_id)), flush=True)
        if not self._is_worker():
            write_trials_csv(self.oracle, self.hypermodel,
                             Path(self.project_dir) / TRIALS_FILE)

    def report_from_the_oracle(self):
        """On the chief, which runs no trial: report each trial that a worker
        ends, as the oracle records it."""
        end_trial = self.oracle.end_trial

        def end_and_report(trial):
            end_trial(trial)
            self._report(trial.trial_id)
        # KerasTuner's gRPC servicer calls oracle.end_trial; it has no hook.
        self.oracle.end_trial = end_and_report


class _Hyperband(_Reporting, kt.Hyperband):
    pass


class _RandomSearch(_Reporting, kt.RandomSearch):
    pass


class _BayesianOptimization(_Reporting, kt.BayesianOptimization):
    pass


def _make_tuner(kind, hypermodel, *, max_trials, max_epochs, seed, directory,
                project_name, overwrite, strategy):
    common = dict(hypermodel=hypermodel, objective=kt.Objective(OBJECTIVE, "min"),
                  seed=seed, directory=str(directory), project_name=project_name,
                  overwrite=overwrite, distribution_strategy=strategy)
    if kind == "hyperband":
        tuner = _Hyperband(max_epochs=max_epochs, factor=3, **common)
        # Hyperband sizes itself from max_epochs; max_trials caps it.
        tuner.oracle.max_trials = max_trials
        return tuner
    if kind == "random":
        return _RandomSearch(max_trials=max_trials, **common)
    return _BayesianOptimization(max_trials=max_trials, **common)


def _without_keras_tuner_debug_print():
    """KerasTuner 1.4.8 left a ``print`` in ``Parent.to_proto``: in the
    distributed mode every gRPC message about a conditional hyperparameter
    prints its first value (hundreds of stray lines on the chief). Replaces
    that one method with the same code minus the print, and only while the
    installed KerasTuner still has it."""
    import inspect

    from keras_tuner.src import protos
    from keras_tuner.src.engine import conditions

    try:
        if "print(self.values[0])" not in inspect.getsource(conditions.Parent.to_proto):
            return
    except (OSError, TypeError):  # no source to look at: leave it alone
        return

    def to_proto(self):
        first = self.values[0]
        kind = ("string_value" if isinstance(first, str) else
                "boolean_value" if isinstance(first, bool) else
                "int_value" if isinstance(first, int) else "float_value")
        values = [protos.get_proto().Value(**{kind: v}) for v in self.values]
        return protos.get_proto().Condition(
            parent=protos.get_proto().Condition.Parent(name=self.name,
                                                        values=values))

    conditions.Parent.to_proto = to_proto


def _role():
    """``"chief"``, ``"worker"`` or ``"single"``: KerasTuner's distributed mode."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    missing = [name for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")
               if not os.environ.get(name)]
    if missing:
        raise ValueError(
            f"KERASTUNER_ORACLE_IP is set (distributed search) but "
            f"{' and '.join(missing)} is not; set KERASTUNER_TUNER_ID=chief on "
            f"the chief and tuner0, tuner1, ... on the workers, and the same "
            f"KERASTUNER_ORACLE_PORT everywhere.")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


# --- reports -------------------------------------------------------------------

def describe_trial(hypermodel, hyperparameters):
    """One line naming a trial's model: ``conv upsample 32-4 x2`` (decoder,
    filters per stage, convolutions per stage, ``dense code N`` where a dense
    layer makes the code) or ``dense 512-128 code 196``."""
    hp = hyperparameters.copy()
    builder, arguments = hypermodel.builder_arguments(hp)
    if builder == _BUILDERS["conv"]:
        code = ("" if arguments["code_size"] is None
                else f" dense code {arguments['code_size']}")
        return (f"conv {arguments['decoder']} "
                f"{'-'.join(map(str, arguments['filters']))} "
                f"x{arguments['convs_per_stage']}{code}")
    hidden = "-".join(map(str, arguments["hidden_units"])) or "no hidden"
    return f"dense {hidden} code {arguments['code_size']}"


def _metric(trial, name):
    if not trial.metrics.exists(name):
        return None
    value = trial.metrics.get_last_value(name)
    return None if value is None else float(value)


def _epochs(trial):
    """Epochs the trial's model has had: Hyperband's target, else those run."""
    return trial.hyperparameters.values.get("tuner/epochs") or _metric(trial, "epochs_run")


def trial_rows(oracle, hypermodel):
    """One dict per trial of ``oracle``, in the order they started.

    Keys: ``trial_id``, ``status``, ``val_mse``, ``code_floats``,
    ``parameters``, ``seconds``, ``epochs``, ``model`` (a description) and
    every hyperparameter's value (``None`` where it did not apply).
    """
    names = [hp.name for hp in oracle.get_space().space]
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        values = trial.hyperparameters.values
        epochs = _epochs(trial)
        row = {
            "trial_id": trial_id, "status": trial.status,
            "val_mse": _metric(trial, OBJECTIVE),
            "code_floats": _metric(trial, "code_floats"),
            "parameters": _metric(trial, "parameters"),
            "seconds": _metric(trial, "seconds"),
            "epochs": None if epochs is None else int(epochs),
            "model": describe_trial(hypermodel, trial.hyperparameters),
            # Hyperband trains some trials further from an earlier one's weights
            "continues_trial": values.get("tuner/trial_id"),
        }
        for key in ("code_floats", "parameters"):
            if row[key] is not None:
                row[key] = int(row[key])
        row.update({name: values.get(name) for name in names})
        rows.append(row)
    return rows


def write_trials_csv(oracle, hypermodel, path):
    """Writes ``trial_rows`` as CSV, atomically; returns the path."""
    return _write_rows(trial_rows(oracle, hypermodel), path)


def _write_rows(rows, path):
    fields = list(dict.fromkeys(key for row in rows for key in row))

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    return write_atomically(path, write)


def read_trials_csv(path):
    """The rows of a ``trials.csv`` as dicts of strings ('' where empty)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _best_finished(oracle):
    """``[best trial]``, or ``[]`` when none finished (KerasTuner would pad
    the list with unfinished ones)."""
    return [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]


def _progress_line(tuner, trial):
    """``[3/20] trial 02  conv unpool 32-4 x2  lr 0.003  batch 128  ...``"""
    hypermodel = tuner.hypermodel
    if tuner._is_worker():
        where = f"[{tuner.tuner_id}]"
    else:
        ended = sum(t.status not in ("RUNNING", "IDLE")
                    for t in tuner.oracle.trials.values())
        where = f"[{ended}/{tuner.oracle.max_trials or '?'}]"
    training = hypermodel.training_arguments(trial.hyperparameters.copy())
    noise = (f"  noise {training['noise_factor']:g}"
             if hypermodel.noise_factors is not None else "")
    head = (f"{where} trial {trial.trial_id}  "
            f"{describe_trial(hypermodel, trial.hyperparameters)}  "
            f"lr {training['learning_rate']:.2g}  batch {training['batch_size']}"
            f"{noise}")
    if trial.status != "COMPLETED":
        reason = (trial.message or "").strip().splitlines()[-1:] or [""]
        return f"{head}  {trial.status}: {reason[0]}"
    best = _best_finished(tuner.oracle)
    best_text = (f"  (best {best[0].score:.5f}, trial {best[0].trial_id})"
                 if best else "")
    epochs = _epochs(trial)
    return (f"{head}  {int(epochs or 0)} epochs  val MSE "
            f"{_metric(trial, OBJECTIVE):.5f}{best_text}  "
            f"{_metric(trial, 'seconds'):.0f} s")


# --- the results folder -----------------------------------------------------------

def _claim_check(project_dir, settings, overwrite, role):
    """Refuses, before anything is written, a folder that holds something else."""
    if project_dir.exists() and not project_dir.is_dir():
        raise ValueError(f"{str(project_dir)!r} exists and is not a folder.")
    search_file = project_dir / SEARCH_FILE
    if role == "worker" and overwrite:
        return False  # the chief starts over; this search.json may be the old one
    if search_file.exists():
        previous = json.loads(search_file.read_text())
        differences = [f"{key}: {previous.get(key)!r} before, {settings.get(key)!r} now"
                       for key in sorted(set(previous) | set(settings))
                       if previous.get(key) != settings.get(key)]
        if differences and not (overwrite and role != "worker"):
            raise ValueError(
                f"{str(project_dir)!r} holds a different search "
                f"({'; '.join(differences)}). Choose another folder, or pass "
                f"overwrite=True (--overwrite) to delete it and start over.")
        return bool(differences) or overwrite
    if role == "worker":  # the chief claims the folder; it may not have yet
        return False
    if project_dir.exists() and any(project_dir.iterdir()):
        raise ValueError(
            f"{str(project_dir)!r} is not empty and holds no {SEARCH_FILE}: it "
            f"is not a keras-ae search, and nothing in it is deleted. Choose "
            f"an empty or new folder.")
    return False


@dataclasses.dataclass
class SearchResult:
    """What ``search`` gives back."""

    directory: Path             # the project folder with the results
    role: str                   # "single", "chief" or "worker"
    trials: list                # ``trial_rows``: every trial, finished or not
    best_model: keras.Model | None = None  # None on workers
    best_hyperparameters: dict | None = None  # as in best_hyperparameters.json
    resumed: bool = False       # the folder held this search already


def search(train, validation, *, hypermodel=None, tuner="hyperband",
           max_trials=20, max_epochs=10, directory="runs",
           project_name="tune", overwrite=False, seed=0,
           mixed_precision="auto", description=None, callbacks=(), verbose=1):
    """Searches for the autoencoder that reconstructs ``validation`` best.

    Args:
        train: a ``tf.data.Dataset`` of training images or ``(input,
            target)`` pairs, batched or not, e.g. ``keras_ae.data.load().train``
            (each trial rebatches it to its own batch size).
        validation: the same, for the objective: the validation MSE.
        hypermodel: an ``AutoencoderHyperModel``; default: the default space
            for the images' shape.
        tuner: ``"hyperband"``, ``"random"`` or ``"bayesian"``
            (KerasTuner's ``Hyperband``, ``RandomSearch``,
            ``BayesianOptimization``).
        max_trials: most trials to run. Hyperband sizes its brackets from
            ``max_epochs`` and stops at ``max_trials`` or at the end of one
            Hyperband iteration, whichever comes first.
        max_epochs: epochs of a fully trained trial.
        directory, project_name: the results go to
            ``directory/project_name`` (see the module docstring); for a
            distributed search, a folder every machine sees.
        overwrite: delete an earlier search in that folder and start over
            (a folder that holds no keras-ae search is never deleted).
        seed: seeds the oracle's sampling and the weights.
        mixed_precision: ``"auto"`` (on a GPU), ``True`` or ``False``.
        description: optional JSON-serialisable description of the data
            (e.g. its source), stored in ``search.json`` and checked on a
            resume like the other settings.
        callbacks: Keras callbacks for every trial's ``fit`` (each trial
            gets a deep copy), e.g. ``keras.callbacks.EarlyStopping``.
        verbose: 0 quiet, 1 a line per trial, 2 also ``fit``'s per-epoch lines.

    Returns:
        A ``SearchResult``. On a single machine or the chief it holds the
        best model, also saved as ``best_model.keras``.

    Raises:
        ValueError: before any trial runs, for an unknown ``tuner``, datasets
            whose images the hypermodel was not made for, a folder that holds
            another search or files that are not a search, or bad numbers.
        RuntimeError: if no trial finished (each trial's error is in
            ``trials.csv`` and KerasTuner's ``trial.json``).

    Example::

        data = keras_ae.data.load("fashion_mnist")
        result = search(data.train, data.validation, tuner="random",
                        max_trials=10, max_epochs=5, directory="runs",
                        project_name="tune1")
        result.best_hyperparameters["builder_arguments"]
    """
    if tuner not in TUNERS:
        raise ValueError(f"tuner must be one of {list(TUNERS)}, got {tuner!r}.")
    for name, value in (("max_trials", max_trials), ("max_epochs", max_epochs)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if not isinstance(verbose, int) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}.")
    if validation is None:
        raise ValueError(
            "validation must be a dataset: the search compares trials by their "
            "validation MSE (e.g. keras_ae.data.load(validation_split=0.1)).")
    shape = dataset_image_shape(train, "train")
    validation_shape = dataset_image_shape(validation, "validation")
    if validation_shape != shape:
        raise ValueError(
            f"train holds images of shape {shape} but validation {validation_shape}.")
    if hypermodel is None:
        hypermodel = AutoencoderHyperModel(shape)
    elif not isinstance(hypermodel, AutoencoderHyperModel):
        raise ValueError(
            f"hypermodel must be an AutoencoderHyperModel, got "
            f"{type(hypermodel).__name__}.")
    if hypermodel.input_shape != shape:
        raise ValueError(
            f"the datasets hold images of shape {shape}, but the hypermodel "
            f"was made for {hypermodel.input_shape}; build it with "
            f"AutoencoderHyperModel({shape}, ...).")

    role = _role()
    if role != "single":
        _without_keras_tuner_debug_print()
    project_dir = Path(directory) / project_name
    settings = json.loads(json.dumps({
        "tuner": tuner, "max_trials": max_trials, "max_epochs": max_epochs,
        "seed": seed, "objective": "val_mse", "hypermodel": hypermodel.get_config(),
        "data": description,
    }))
    start_over = _claim_check(project_dir, settings, overwrite, role)
    resumed = (project_dir / SEARCH_FILE).exists() and not start_over

    devices = configure_devices(mixed_precision)
    previous_policy = keras.mixed_precision.global_policy()
    if devices.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(seed)
        strategy = devices.strategy if devices.gpus > 1 else None
        try:
            tuner_object = _make_tuner(
                tuner, hypermodel, max_trials=max_trials, max_epochs=max_epochs,
                seed=seed, directory=directory, project_name=project_name,
                overwrite=start_over and role != "worker", strategy=strategy)
        except json.JSONDecodeError as error:
            raise ValueError(_damaged_state_message(project_dir, error)) from None
        tuner_object._keras_ae_verbose = verbose
        if role == "chief":
            tuner_object.report_from_the_oracle()
        if role != "worker":
            write_json(project_dir / SEARCH_FILE, settings)
        if verbose and role != "worker":
            _print_start(tuner_object, hypermodel, project_dir, role, resumed)
        with warnings.catch_warnings():
            # Hyperband restarts from a checkpoint that holds optimizer state
            # too; the trial's fresh optimizer starts anew, as it should.
            warnings.filterwarnings("ignore", message=_OPTIMIZER_WARNING)
            tuner_object.search(train, validation_data=validation,
                                epochs=max_epochs, callbacks=list(callbacks),
                                verbose=0 if verbose < 2 else 2)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    if role == "worker":
        return SearchResult(project_dir, role, [], resumed=resumed)
    return _finish(tuner_object, hypermodel, project_dir, role, resumed)


def _damaged_state_message(project_dir, error):
    """KerasTuner writes its JSON files in place: a kill in the middle of a
    write (a few milliseconds) leaves one that no longer parses."""
    damaged = []
    for path in sorted(project_dir.glob("**/*.json")):
        try:
            json.loads(path.read_text())
        except (ValueError, OSError):
            damaged.append(str(path))
    return (f"{project_dir} holds KerasTuner state that does not parse "
            f"({', '.join(damaged) or error}): the search was probably killed "
            f"while writing it. Delete that file (a trial's trial.json: the "
            f"search forgets that trial) or start over with overwrite=True "
            f"(--overwrite).")


def _print_start(tuner, hypermodel, project_dir, role, resumed):
    done = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    space = len(tuner.oracle.get_space().space)
    print(f"{'resuming' if resumed else 'starting'} a {type(tuner).__name__.strip('_')} "
          f"search in {project_dir}: {space} hyperparameters, "
          f"{done} trial{'' if done == 1 else 's'} finished before"
          + ("; serving the oracle to workers" if role == "chief" else ""),
          flush=True)


def _finish(tuner, hypermodel, project_dir, role, resumed):
    rows = trial_rows(tuner.oracle, hypermodel)
    _write_rows(rows, project_dir / TRIALS_FILE)
    best_trials = _best_finished(tuner.oracle)
    if not best_trials:
        raise RuntimeError(
            f"no trial of the search in {project_dir} finished; the errors are "
            f"in {project_dir / TRIALS_FILE} and in each trial_*/trial.json.")
    best = best_trials[0]
    with warnings.catch_warnings():
        # The best model gets a fresh optimizer, which is all a saved model needs.
        warnings.filterwarnings("ignore", message=_OPTIMIZER_WARNING)
        model = tuner.load_model(best)
    # Give the fresh optimizer its variables, so that loading the saved model
    # finds as many as it expects (else Keras warns about skipping them).
    model.optimizer.build(model.trainable_variables)
    builder, arguments = hypermodel.builder_arguments(best.hyperparameters.copy())
    summary = {
        "trial_id": best.trial_id, "val_mse": float(best.score),
        "hyperparameters": dict(best.hyperparameters.values),
        "builder": builder,
        "builder_arguments": json.loads(json.dumps(arguments)),  # tuples as lists
        **hypermodel.training_arguments(best.hyperparameters.copy()),
        "epochs": next(r["epochs"] for r in rows if r["trial_id"] == best.trial_id),
        "parameters": model.count_params(),
        "code_floats": builders.code_floats(model),
    }
    write_atomically(project_dir / BEST_MODEL_FILE, model.save)
    write_json(project_dir / BEST_HYPERPARAMETERS_FILE, summary)
    return SearchResult(project_dir, role, rows, model, summary, resumed)


# --- summaries ---------------------------------------------------------------

def summary_table(rows, top=10):
    """The ``top`` finished trials of ``trial_rows``, best first, as text.

    Example:

    >>> rows = [{"trial_id": "0", "status": "COMPLETED", "val_mse": 0.01,
    ...          "code_floats": 196, "parameters": 34329, "epochs": 10,
    ...          "seconds": 61.5, "model": "conv transpose 32-4 x2",
    ...          "learning_rate": 0.003, "batch_size": 256}]
    >>> print(summary_table(rows))  # doctest: +NORMALIZE_WHITESPACE
    rank trial val MSE code params epochs seconds lr batch model
       1     0 0.01000  196 34,329     10      62 0.003 256 conv transpose 32-4 x2
    """
    done = sorted((r for r in rows if r["status"] == "COMPLETED"
                   and r["val_mse"] not in (None, "")),
                  key=lambda r: float(r["val_mse"]))
    lines = [f"{'rank':>4} {'trial':>5} {'val MSE':>8} {'code':>5} {'params':>9} "
             f"{'epochs':>6} {'seconds':>7} {'lr':>8} {'batch':>5} model"]
    for rank, row in enumerate(done[:top], start=1):
        lines.append(
            f"{rank:>4} {row['trial_id']:>5} {float(row['val_mse']):>8.5f} "
            f"{int(row['code_floats']):>5} {int(row['parameters']):>9,} "
            f"{int(row['epochs']):>6} {float(row['seconds']):>7.0f} "
            f"{float(row['learning_rate']):>8.2g} {int(row['batch_size']):>5} "
            f"{row['model']}")
    skipped = len(rows) - len(done)
    if skipped:
        lines.append(f"({skipped} trial(s) did not finish; see trials.csv)")
    return "\n".join(lines)


def save_trials_plot(rows, path, title="Search trials"):
    """Saves a PNG of every finished trial: validation MSE against parameters.

    One marker per model kind (``conv transpose``, ``dense``, ...), the best
    trial ringed, both axes logarithmic.

    Args:
        rows: ``trial_rows`` (or the rows of a ``trials.csv``).
        path: the PNG to write (atomically).
        title: the figure's title.

    Returns:
        ``path`` as a string.
    """
    from matplotlib.figure import Figure

    done = [r for r in rows if r["status"] == "COMPLETED" and r["val_mse"] not in (None, "")]
    figure = Figure(figsize=(6.4, 4.4), dpi=100)
    axes = figure.subplots()
    kinds = sorted({" ".join(r["model"].split()[:2]) if r["model"].startswith("conv")
                    else "dense" for r in done})
    for kind, marker in zip(kinds, "osD^v<>p*h"):
        mine = [r for r in done if r["model"].startswith(kind)]
        axes.scatter([int(r["parameters"]) for r in mine],
                     [float(r["val_mse"]) for r in mine], marker=marker,
                     label=kind, alpha=0.8)
    if done:
        best = min(done, key=lambda r: float(r["val_mse"]))
        axes.scatter([int(best["parameters"])], [float(best["val_mse"])], s=220,
                     facecolors="none", edgecolors="black",
                     label=f"best: trial {best['trial_id']}")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.legend(fontsize="small")
    axes.set_xlabel("parameters")
    axes.set_ylabel("validation MSE")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    return save_png(figure, path)
