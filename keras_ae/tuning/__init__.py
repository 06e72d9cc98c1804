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
      keras_tuner/               KerasTuner's own state and checkpoints
                                 (oracle.json, trial_*/), owned whole

Started again with the same arguments, a search that was interrupted (even
by kill -9) continues where it stopped: finished trials are kept, a trial
that was running is run again from its start.

Several machines: KerasTuner's own distributed mode (see
``keras_ae.tuning.roles``), with ``directory`` on a shared filesystem. The
chief runs no trial: it prints a line and rewrites ``trials.csv`` as each
trial ends, and returns (writing the results) once every trial is done
and every worker that asked for trials has been told to stop. Start all
workers before the search ends: one that first asks after the chief has gone
waits for it (KerasTuner's client gives up after an hour). Workers return
without a best model.

The parts, one job each:

- ``keras_ae.tuning.space``: ``AutoencoderHyperModel``, the search space;
- ``keras_ae.tuning.trial_data``: a trial's datasets (batch size, noise);
- ``keras_ae.tuning.running``: ``search`` and its results folder;
- ``keras_ae.tuning.roles``: chief, worker or single, from the environment;
- ``keras_ae.tuning.reports``: progress lines, ``trials.csv``, a table, a plot;
- ``keras_ae.tuning.runs``: ``run_search``, the whole of ``keras-ae tune``.

Everything a user needs is importable from ``keras_ae.tuning`` itself.
"""

from keras_ae.tuning.reports import (describe_trial, read_trials_csv,
                                     save_trials_plot, summary_table,
                                     trial_rows, write_trials_csv)
from keras_ae.tuning.roles import ROLES
from keras_ae.tuning.runs import SearchOutcome, SearchRun, run_search
from keras_ae.tuning.running import (BEST_HYPERPARAMETERS_FILE, BEST_MODEL_FILE,
                                     SEARCH_FILE, TRIALS_FILE, TUNERS,
                                     SearchResult, search)
from keras_ae.tuning.space import FAMILIES, OBJECTIVE, AutoencoderHyperModel
from keras_ae.tuning.trial_data import dataset_image_shape

__all__ = [
    "AutoencoderHyperModel", "BEST_HYPERPARAMETERS_FILE", "BEST_MODEL_FILE",
    "FAMILIES", "OBJECTIVE", "ROLES", "SEARCH_FILE", "SearchOutcome", "SearchResult",
    "SearchRun", "run_search",
    "TRIALS_FILE", "TUNERS", "dataset_image_shape", "describe_trial",
    "read_trials_csv", "save_trials_plot", "search", "summary_table",
    "trial_rows", "write_trials_csv",
]
