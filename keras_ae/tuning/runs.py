"""A whole search as one call: what ``keras-ae tune`` does.

``SearchRun`` holds what the command's flags ask for; ``run_search`` reads
the data, runs ``search`` in the folder (holding its lock, resuming an
interrupted search), then measures the best model on the test split and
writes the run record (``keras_ae.training.run_record``: ``metrics.json``,
``reconstructions.png``) and ``trials.png``.
"""

import contextlib
import dataclasses
import time
from pathlib import Path

from keras_ae import outputs
from keras_ae.errors import InputError
from keras_ae.tuning import roles
from keras_ae.tuning.reports import save_trials_plot
from keras_ae.tuning.running import RECORD_FILES, search
from keras_ae.tuning.space import AutoencoderHyperModel


@dataclasses.dataclass(frozen=True)
class SearchRun:
    """One search, as asked for.

    Attributes:
        data: a ``keras_ae.data.DataSource``; its ``validation_split`` must
            be above 0 (trials are compared on the validation MSE).
        space: ``AutoencoderHyperModel``'s arguments given (families,
            decoders, stages, ...); the rest keep its defaults.
        tuner, max_trials, max_epochs, seed, mixed_precision: as for
            ``search``.
    """

    data: object
    space: dict = dataclasses.field(default_factory=dict)
    tuner: str = "hyperband"
    max_trials: int = 20
    max_epochs: int = 10
    seed: int = 0
    mixed_precision: str = "auto"


@dataclasses.dataclass(frozen=True)
class SearchOutcome:
    """What ``run_search`` gives back: ``search``'s result and, on the chief
    or a lone search, the record written (``metrics``)."""

    result: object
    metrics: dict | None


def run_search(run, output, *, overwrite=False, verbose=1):
    """Searches as ``run`` asks into the folder ``output``.

    Args:
        run: a ``SearchRun``.
        output: the search folder (``DIR/PROJECT`` of ``search``).
        overwrite: start the search over (only its own files go).
        verbose: ``search``'s verbosity; also says what the data holds.

    Returns:
        A ``SearchOutcome``.

    Raises:
        InputError: bad data or space, no validation split, a folder that
            holds something else.
    """
    import keras

    started = time.time()
    keras.utils.set_random_seed(run.seed)
    data = run.data.load(verbose=bool(verbose))
    if data.validation is None:
        raise InputError("validation_split (--validation-split) must be above 0: the "
                         "search compares trials by their validation MSE.")
    hypermodel = AutoencoderHyperModel(data.image_shape, **run.space)
    if verbose:
        print(data.summary())
    output = Path(output)
    # The chief (or a lone search) holds the folder's lock to the end; the
    # distributed workers write trials into it under the chief's oracle.
    with (outputs.locked(output, "tune") if roles.role() != "worker"
          else contextlib.nullcontext()):
        result = search(
            data.train, data.validation, hypermodel=hypermodel, tuner=run.tuner,
            max_trials=run.max_trials, max_epochs=run.max_epochs,
            directory=output.parent, project_name=output.name, overwrite=overwrite,
            seed=run.seed, mixed_precision=run.mixed_precision,
            description={"source": data.source,
                         "origin": None if data.origin is None else data.origin.to_json(),
                         "validation_split": run.data.validation_split},
            verbose=verbose)
        if result.role == "worker":
            return SearchOutcome(result, None)
        record = _measure(run, result, data, output, hypermodel, started)
        outputs.seal(output, "tune", RECORD_FILES)
        return SearchOutcome(result, record)


def _measure(run, result, data, output, hypermodel, started):
    from keras_ae.models.loading import as_float32
    from keras_ae.training.run_record import measure

    best = result.best_hyperparameters
    save_trials_plot(result.trials, output / "trials.png")
    # measured in float32, as its export will run, whatever the trials ran in
    return measure(
        as_float32(result.best_model), data, output, title=f"best trial {best['trial_id']}",
        epochs_run=best["epochs"], best_trial=best,
        settings={"search": {"tuner": run.tuner, "max_trials": run.max_trials,
                             "max_epochs": run.max_epochs, "seed": run.seed},
                  "space": hypermodel.get_config(), "source": data.source,
                  "validation_split": run.data.validation_split},
        seconds=round(time.time() - started, 1))
