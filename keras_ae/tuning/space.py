"""The search space: ``AutoencoderHyperModel``, KerasTuner's view of the
keras_ae builders, with the checks that every model in it can be built."""

import math
import numbers
import time

import keras_tuner as kt

from keras_ae.models import builders
from keras_ae.models import shapes
from keras_ae.models.builders import DECODERS, POOLINGS
from keras_ae.errors import InputError
from keras_ae.tuning.trial_data import trial_dataset

FAMILIES = ("conv", "dense")
OBJECTIVE = "val_loss"  # the validation MSE: the loss is MSE
BUILDERS = {"conv": "build_conv_autoencoder", "dense": "build_dense_autoencoder"}


# --- checking the search space ----------------------------------------------

def _choices(name, values, allowed=None, kind=int):
    """A non-empty tuple of distinct values, each of ``kind`` (and ``allowed``)."""
    if isinstance(values, (str, numbers.Number)):
        values = (values,)
    try:
        values = tuple(values)
    except TypeError:
        raise InputError(f"{name} must be a sequence, got {values!r}.") from None
    if not values or len(set(values)) != len(values):
        raise InputError(
            f"{name} must be a non-empty sequence without repeats, got {values!r}.")
    for value in values:
        if allowed is not None:
            if value not in allowed:
                raise InputError(
                    f"{name} must be chosen from {list(allowed)}, got {value!r}.")
        elif kind is int and (isinstance(value, bool)
                              or not isinstance(value, numbers.Integral)
                              or value < 1):
            raise InputError(
                f"{name} must hold positive integers, got {values!r}.")
        elif kind is float and (isinstance(value, bool)
                                or not isinstance(value, numbers.Real)
                                or not 0 <= value < math.inf):
            raise InputError(
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
        raise InputError(
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
        raise InputError(
            f"{name} must be an integer >= {smallest} or a (fewest, most) range "
            f"of them, got {value!r}.")
    return int(low), int(high)


def _stage_range(stages, input_shape):
    low, high = _int_range("stages", stages, 1)
    most = int(math.log2(min(input_shape[:2])))
    if high > most:
        raise InputError(
            f"stages {stages!r} cannot build for images of shape {input_shape}: "
            f"each stage halves height and width, so at most {most} fit.")
    return low, high


# --- the hypermodel -----------------------------------------------------------

class AutoencoderHyperModel(kt.HyperModel):
    """A KerasTuner search space of dense and convolutional autoencoders.

    Each trial's model is built by ``keras_ae.build_conv_autoencoder`` or
    ``keras_ae.build_dense_autoencoder`` and compiled with Adam and MSE.
    Hyperparameters (KerasTuner names):

    - ``family``: ``"conv"`` or ``"dense"`` (of ``families``);
    - conv: ``decoder`` (of ``decoders``), ``pooling`` (of ``poolings``),
      ``stages`` (poolings),
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
      task). Give it clean data (``noise_factor=0`` in ``keras_ae.data.sources``),
      or the noise adds up.

    ``fit`` rebatches the training and validation datasets to the trial's
    batch size (``model.fit`` ignores ``batch_size`` for datasets; the order
    is the dataset's own, so shuffle the training set, as ``keras_ae.data.sources``'s
    pipelines do), adds the trial's noise, and returns the best epoch's ``val_loss`` with the
    model's ``parameters``, ``code_floats`` and training ``seconds``.

    Args:
        input_shape: ``(height, width, channels)`` of the images.
        families: which builders to search over.
        decoders: conv decoder kinds, of ``keras_ae.DECODERS``.
        poolings: conv pooling kinds, of ``keras_ae.POOLINGS`` (``"max"``,
            ``"average"``); max only by default, as the benchmarks were.
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
                 decoders=tuple(DECODERS), poolings=("max",), stages=(2, 3),
                 filters=(16, 32, 64),
                 convs_per_stage=(1, 2), code_size=None, code_filters=(2, 4, 8),
                 hidden_units=(128, 256, 512), hidden_layers=(0, 2),
                 dense_code_sizes=(16, 32, 64, 128),
                 learning_rate=(3e-4, 1e-2), batch_sizes=(64, 128, 256),
                 noise_factors=None, name="autoencoder_hypermodel"):
        super().__init__(name=name)
        self.input_shape = builders.image_shape(input_shape)
        self.pixels = math.prod(self.input_shape)
        self.families = _choices("families", families, allowed=FAMILIES)
        self.decoders = _choices("decoders", decoders, allowed=tuple(DECODERS))
        self.poolings = _choices("poolings", poolings, allowed=tuple(POOLINGS))
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
                raise InputError(
                    f"code_size must be a positive integer or None, got "
                    f"{self.code_size!r}.")
            self.code_size = int(self.code_size)
            if self.code_size >= self.pixels:
                raise InputError(
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
                raise InputError(
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
            "decoders": list(self.decoders), "poolings": list(self.poolings),
            "stages": list(self.stages),
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
        return BUILDERS[family], chosen

    def _conv_arguments(self, hp):
        decoder = (self._pick(hp, "decoder", self.decoders),
                   self._pick(hp, "pooling", self.poolings))
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
        decoder, pooling = decoder
        return {"input_shape": self.input_shape, "filters": tuple(filters),
                "decoder": decoder, "pooling": pooling,
                "convs_per_stage": convs, "code_size": code_size}

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
        from keras_ae.training.loop import compile_autoencoder

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
        counts = self.__dict__.setdefault("_image_counts", {})
        train = trial_dataset(x, "x", self.input_shape, settings, counts,
                              noisy=True)
        validation = (None if validation_data is None else
                      trial_dataset(validation_data, "validation_data",
                                    self.input_shape, settings, counts,
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
