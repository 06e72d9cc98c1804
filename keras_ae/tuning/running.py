"""Running a search: KerasTuner's tuners over ``AutoencoderHyperModel``,
resumable, on one machine or several (``keras_ae.tuning.roles``), with the
results a user needs afterwards in one folder (see ``keras_ae.tuning``)."""

import contextlib
import dataclasses
import json
import numbers
import time
import warnings
from pathlib import Path

import keras
import keras_tuner as kt

from keras_ae.models import builders
from keras_ae import compat
from keras_ae import outputs
from keras_ae.errors import InputError
from keras_ae.files import claim_folder, write_atomically, write_json
from keras_ae.training import signals
from keras_ae.training.loop import configure_devices
from keras_ae.tuning import roles
from keras_ae.tuning.reports import (best_finished, progress_line, trial_rows,
                                     write_rows, write_trials_csv)
from keras_ae.tuning.space import OBJECTIVE, AutoencoderHyperModel
from keras_ae.tuning.trial_data import dataset_image_shape

TUNERS = ("hyperband", "random", "bayesian")
SEARCH_FILE = "search.json"
TRIALS_FILE = "trials.csv"
BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.json"
BEST_MODEL_FILE = "best_model.keras"
# KerasTuner names its own files (oracle.json, tuner0.json, trial_0001/) and
# writes them in place: they live in this subfolder, which the folder's
# manifest owns whole, so that no name of a user's is ever taken for one.
KERAS_TUNER_FOLDER = "keras_tuner"

_OPTIMIZER_WARNING = "Skipping variable loading for optimizer"


# --- KerasTuner's tuners, with keras_ae's progress and results ------------------

class _Reporting:
    """Mixed into KerasTuner's tuners: a progress line and ``trials.csv``
    after each trial."""

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self._report(trial.trial_id)

    def report(self, verbose, role):
        """Reports each trial as it ends: a line if ``verbose``, and, but on
        a worker, ``trials.csv``. The chief runs no trial: it reports each
        trial that a worker ends, as the oracle records it."""
        self._keras_ae_verbose, self._keras_ae_role = verbose, role
        if role == "chief":
            compat.call_after_oracle_end_trial(
                self.oracle, lambda trial: self._report(trial.trial_id))

    def _report(self, trial_id):
        worker = self._keras_ae_role == "worker"
        if self._keras_ae_verbose:
            print(progress_line(self, self.oracle.get_trial(trial_id), worker),
                  flush=True)
        if not worker:
            write_trials_csv(self.oracle, self.hypermodel,
                             Path(self.project_dir).parent / TRIALS_FILE)


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


# --- the results folder ----------------------------------------------------

# What a search folder holds: keras_ae's files and KerasTuner's.
SEARCH_FILES = (SEARCH_FILE, TRIALS_FILE, BEST_HYPERPARAMETERS_FILE, BEST_MODEL_FILE)
# ``keras-ae tune`` writes the run record beside them (tuning.runs).
RECORD_FILES = ("metrics.json", "reconstructions.png", "trials.png")
SEARCH_ENTRIES = SEARCH_FILES + RECORD_FILES + (KERAS_TUNER_FOLDER,)



def _claim(project_dir, settings, overwrite, role):
    """Claims the search folder (``keras_ae.outputs``' rule) before anything
    is written; ``(folder, start_over)``, the folder ``None`` on a worker
    (the chief claims it, and may start it over)."""
    remedy = ("Choose another folder, or pass overwrite=True (--overwrite) "
              "to start it over (only the search's own files are deleted).")
    if role == "worker":  # the chief's folder: a worker checks its settings only
        _wait_for_the_chief(project_dir)
        if not overwrite and (project_dir / SEARCH_FILE).exists():
            claim_folder(project_dir, SEARCH_FILE, settings, kind="search",
                         remedy=remedy)
        return None, False
    folder = outputs.claim(project_dir, "tune", str(settings.get("data")),
                           names=SEARCH_ENTRIES, overwrite=overwrite)
    state = claim_folder(project_dir, SEARCH_FILE, settings, kind="search",
                         allow_different=overwrite, remedy=remedy)
    return folder, overwrite and state != "new"


def _wait_for_the_chief(project_dir, seconds=3600):
    """Until the chief has claimed the folder: KerasTuner makes its
    subfolder as a worker's tuner is made, and made first it would be a
    stranger's to the chief's claim. (KerasTuner's client waits an hour.)"""
    started, said = time.monotonic(), False
    while KERAS_TUNER_FOLDER not in outputs.read_manifest(project_dir)["writers"].get(
            "tune", {}).get("entries", []):
        waited = time.monotonic() - started
        if waited > seconds:
            raise InputError(f"no chief claimed {project_dir} in {seconds} s; start "
                             f"the chief (KERASTUNER_TUNER_ID=chief) with the same "
                             f"--output.")
        if waited > 5 and not said:
            print(f"waiting for the chief to claim {project_dir}", flush=True)
            said = True
        time.sleep(0.2)


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
            target)`` pairs, batched or not, e.g. ``keras_ae.data.sources.load().train``
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
        overwrite: start over where the folder holds a search (this or
            another), and write beside other files; only a search's own
            files are deleted (``keras_ae.outputs``).
        seed: seeds the oracle's sampling and the weights.
        mixed_precision: ``"auto"`` (float16 on a GPU, bfloat16 on a CPU
            that has it), ``"on"``, ``"off"`` or a policy name (see
            ``keras_ae.training.loop.configure_devices``); every trial trains
            under it.
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

        data = keras_ae.data.sources.load("fashion_mnist")
        result = search(data.train, data.validation, tuner="random",
                        max_trials=10, max_epochs=5, directory="runs",
                        project_name="tune1")
        result.best_hyperparameters["builder_arguments"]
    """
    if tuner not in TUNERS:
        raise InputError(f"tuner must be one of {list(TUNERS)}, got {tuner!r}.")
    for name, value in (("max_trials", max_trials), ("max_epochs", max_epochs)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}.")
    if not isinstance(verbose, int) or verbose not in (0, 1, 2):
        raise InputError(f"verbose must be 0, 1 or 2, got {verbose!r}.")
    if validation is None:
        raise InputError(
            "validation must be a dataset: the search compares trials by their "
            "validation MSE (e.g. keras_ae.data.sources.load(validation_split=0.1)).")
    shape = dataset_image_shape(train, "train")
    validation_shape = dataset_image_shape(validation, "validation")
    if validation_shape != shape:
        raise InputError(
            f"train holds images of shape {shape} but validation {validation_shape}.")
    if hypermodel is None:
        hypermodel = AutoencoderHyperModel(shape)
    elif not isinstance(hypermodel, AutoencoderHyperModel):
        raise InputError(
            f"hypermodel must be an AutoencoderHyperModel, got "
            f"{type(hypermodel).__name__}.")
    if hypermodel.input_shape != shape:
        raise InputError(
            f"the datasets hold images of shape {shape}, but the hypermodel "
            f"was made for {hypermodel.input_shape}; build it with "
            f"AutoencoderHyperModel({shape}, ...).")

    role = roles.role()
    if role != "single":
        compat.silence_keras_tuner_debug_print()
    project_dir = Path(directory) / project_name
    settings = json.loads(json.dumps({
        "tuner": tuner, "max_trials": max_trials, "max_epochs": max_epochs,
        "seed": seed, "objective": "val_mse", "hypermodel": hypermodel.get_config(),
        "data": description,
    }))
    folder, start_over = _claim(project_dir, settings, overwrite, role)
    with folder or contextlib.nullcontext():
        if start_over:  # never KerasTuner's overwrite: it deletes the whole folder
            folder.remove_own()
        if folder is not None:
            folder.record(SEARCH_ENTRIES)
        result = _search(train, validation, hypermodel, tuner, max_trials,
                         max_epochs, seed, project_dir, settings, role,
                         mixed_precision, callbacks, verbose)
        if folder is not None:
            folder.record(SEARCH_FILES, fingerprints=True)
        return result


def _search(train, validation, hypermodel, tuner, max_trials, max_epochs, seed,
            project_dir, settings, role,
            mixed_precision, callbacks, verbose):
    resumed = (project_dir / SEARCH_FILE).exists()

    devices = configure_devices(mixed_precision)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(devices.policy)
    try:
        keras.utils.set_random_seed(seed)
        strategy = devices.strategy if devices.gpus > 1 else None
        try:
            tuner_object = _make_tuner(
                tuner, hypermodel, max_trials=max_trials, max_epochs=max_epochs,
                seed=seed, directory=project_dir, project_name=KERAS_TUNER_FOLDER,
                overwrite=False, strategy=strategy)
        except json.JSONDecodeError as error:
            raise InputError(_damaged_state_message(project_dir, error)) from None
        tuner_object.report(verbose, role)
        if role != "worker":
            write_json(project_dir / SEARCH_FILE, settings)
        if verbose and role != "worker":
            _print_start(tuner_object, hypermodel, project_dir, role, resumed)
        with warnings.catch_warnings():
            # Hyperband restarts from a checkpoint that holds optimizer state
            # too; the trial's fresh optimizer starts anew, as it should.
            warnings.filterwarnings("ignore", message=_OPTIMIZER_WARNING)
            def under_way():  # started again, the search runs that trial anew
                return f"during trial {len(tuner_object.oracle.trials)} of at most {max_trials}"

            with signals.interruptions_named(under_way), signals.between_batches():
                tuner_object.search(train, validation_data=validation, epochs=max_epochs,
                                    callbacks=[signals.StopOnSignal(), *callbacks],
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
    write_rows(rows, project_dir / TRIALS_FILE)
    best_trials = best_finished(tuner.oracle)
    if not best_trials:
        raise RuntimeError(
            f"no trial of the search in {project_dir} finished; the errors are "
            f"in {project_dir / TRIALS_FILE} and in each "
            f"{KERAS_TUNER_FOLDER}/trial_*/trial.json.")
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
