"""What a search reports: one line per trial, ``trials.csv``, a table of the
best trials and a plot of them all."""

import csv

from keras_ae.files import save_png, write_atomically
from keras_ae.tuning.space import BUILDERS, OBJECTIVE


def describe_trial(hypermodel, hyperparameters):
    """One line naming a trial's model: ``conv upsample 32-4 x2`` (decoder,
    filters per stage, convolutions per stage, ``dense code N`` where a dense
    layer makes the code) or ``dense 512-128 code 196``."""
    hp = hyperparameters.copy()
    builder, arguments = hypermodel.builder_arguments(hp)
    if builder == BUILDERS["conv"]:
        code = ("" if arguments["code_size"] is None
                else f" dense code {arguments['code_size']}")
        pooling = ("" if arguments["pooling"] == "max"
                   else f" {arguments['pooling']}-pool")
        return (f"conv {arguments['decoder']}{pooling} "
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
    return write_rows(trial_rows(oracle, hypermodel), path)


def write_rows(rows, path):
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


def best_finished(oracle):
    """``[best trial]``, or ``[]`` when none finished (KerasTuner would pad
    the list with unfinished ones)."""
    return [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]


def progress_line(tuner, trial, worker):
    """``[3/20] trial 02  conv unpool 32-4 x2  lr 0.003  batch 128  ...``"""
    hypermodel = tuner.hypermodel
    if worker:
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
    best = best_finished(tuner.oracle)
    best_text = (f"  (best {best[0].score:.5f}, trial {best[0].trial_id})"
                 if best else "")
    epochs = _epochs(trial)
    return (f"{head}  {int(epochs or 0)} epochs  val MSE "
            f"{_metric(trial, OBJECTIVE):.5f}{best_text}  "
            f"{_metric(trial, 'seconds'):.0f} s")



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
