"""Training an autoencoder: Adam and MSE, checkpoints, resumable runs, logs.

Pixel values in [0, 1] are a regression target, so the loss is the mean
squared error, not a cross-entropy. A run writes into one folder::

    run/
      run.json          what was asked for (model, data, training settings)
      history.csv       one row per finished epoch (loss, val_loss, seconds),
                        epochs numbered from 0 as keras.callbacks.CSVLogger does
      checkpoints/      the model after each epoch (epoch_001.keras, ...)
      backup/           BackupAndRestore state while the run is unfinished
      logs/             TensorBoard logs
      model.keras       the trained model, written when training ends

Started again with the same settings, an interrupted run (even by kill -9)
resumes from its last finished epoch. On a GPU, training uses mixed precision
(float16 compute, float32 output) and ``MirroredStrategy`` over all local GPUs;
on a CPU with bfloat16 instructions it computes in bfloat16 (see
``keras_ae.training.precision``); ``jit_compile=True`` adds XLA.

Several machines: where ``TF_CONFIG`` names a cluster, the same ``train`` call
(the same ``keras-ae train`` command) on every machine trains one model under
``MultiWorkerMirroredStrategy`` with the custom loop of ``keras_ae.training.multi_worker``.
The chief writes the run folder as above; every worker keeps its own per-epoch
checkpoints in ``backup/<task>/`` to resume from, and EarlyStopping stops all
workers at the same epoch.
"""

import contextlib
import dataclasses
import json
import math
import numbers
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from keras_ae.training import multi_worker
from keras_ae import outputs
from keras_ae.training import precision
from keras_ae.errors import InputError
from keras_ae.training import signals
from keras_ae.files import claim_folder, write_json
from keras_ae.training import run_record
from keras_ae.training.divergence import StopOnDivergence
from keras_ae.training.run_files import Checkpoints, HistoryCsv, read_history, save_model
from keras_ae.training.run_record import METRICS_FILE, RUN_FILE

DEFAULT_LEARNING_RATE = 3e-3  # best of 1e-3, 2e-3, 3e-3 in 10 epochs (docs/benchmarks.md)
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.keras"


@dataclasses.dataclass(frozen=True)
class DeviceSetup:
    """Where training runs: the strategy, the GPUs it found, the precision."""

    strategy: tf.distribute.Strategy
    gpus: int
    policy: str           # the Keras precision policy, one of precision.POLICIES
    workers: int = 1      # processes of the cluster in TF_CONFIG; 1 without
    chief: bool = True    # this process writes the run folder
    task: str = ""        # this process in the cluster, e.g. "worker_1"
    # one line for people, e.g. "CPU, mixed_bfloat16" (set from the above)
    description: str = dataclasses.field(init=False, default="")

    def __post_init__(self):
        local = f"CPU, {self.policy}"
        if self.gpus:
            local = (f"{self.gpus} GPU(s), {type(self.strategy).__name__}, "
                     f"{self.policy}")
        if self.workers > 1:
            local = (f"{self.task} of {self.workers} workers, "
                     f"MultiWorkerMirroredStrategy, {local} each")
        object.__setattr__(self, "description", local)

    @property
    def mixed_precision(self):
        """Whether layers compute in a 16-bit type."""
        return self.policy != "float32"


def configure_devices(mixed_precision="auto"):
    """Picks the distribution strategy and precision for this machine.

    Args:
        mixed_precision: ``"auto"`` (``mixed_float16`` on GPUs,
            ``mixed_bfloat16`` on a CPU with bfloat16 instructions, else
            float32), ``"on"``, ``"off"`` (or ``True``, ``False``), or a policy
            name; see ``keras_ae.training.precision.choose_policy``. keras_ae's
            builders keep the sigmoid output in float32.

    Under a cluster (``TF_CONFIG`` set), call it first thing, before loading
    data or building a model: TensorFlow sets up the cluster's collective ops
    only at program start. Later calls return the same strategy.

    Returns:
        A ``DeviceSetup``: ``MultiWorkerMirroredStrategy`` where ``TF_CONFIG``
        names a cluster; else ``MirroredStrategy`` over every local GPU when
        there are several; else the default strategy.

    Raises:
        InputError: for a ``mixed_precision`` other than those, a
            malformed ``TF_CONFIG``, or a cluster asked for too late.
    """
    config = multi_worker.tf_config()
    gpus = len(tf.config.list_physical_devices("GPU"))
    policy = precision.choose_policy(mixed_precision, gpus=gpus)
    if config is not None:
        strategy = multi_worker.multi_worker_strategy()
        count = sum(len(addresses) for job, addresses
                    in config["cluster"].items() if job in ("chief", "worker"))
        return DeviceSetup(strategy, gpus, policy, workers=count,
                           chief=multi_worker.is_chief(strategy),
                           task=multi_worker.task_name(strategy))
    strategy = (tf.distribute.MirroredStrategy() if gpus > 1
                else tf.distribute.get_strategy())
    return DeviceSetup(strategy, gpus, policy)


def compile_autoencoder(model, learning_rate=DEFAULT_LEARNING_RATE,
                        jit_compile=False):
    """Compiles ``model`` with Adam and mean squared error.

    Args:
        model: an autoencoder from ``keras_ae.build_*``.
        learning_rate: Adam's step size.
        jit_compile: compile the train step with XLA.

    Returns:
        The same model, compiled.

    Example:

    >>> model = compile_autoencoder(keras_ae.build_dense_autoencoder())
    >>> model.loss
    'mse'
    """
    check_learning_rate(learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse",
                  jit_compile=jit_compile)
    return model


def check_learning_rate(learning_rate):
    """Refuses a learning rate that is not a positive finite number."""
    if (isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real)
            or not 0 < learning_rate < math.inf):
        raise InputError(f"learning_rate must be a positive finite number, got "
                         f"{learning_rate!r}.")


# --- the run folder ------------------------------------------------------------

# What a run folder holds: the training files and the run record's.
RUN_ENTRIES = (RUN_FILE, HISTORY_FILE, MODEL_FILE, "checkpoints", "backup",
               "logs", METRICS_FILE, "reconstructions.png", "loss_curves.png")


@contextlib.contextmanager
def run_folder(output_dir, settings, overwrite=False):
    """Claims ``output_dir`` for a run with ``settings`` and holds its lock.

    A new or empty folder gets ``run.json``. A folder with the same
    ``run.json`` is the same run, to be resumed. Anything else is refused
    (``keras_ae.outputs``' rule), so that nothing already written is lost;
    with ``overwrite``, a different run's own files are deleted and the run
    starts over, beside any other files, which are left alone.

    Args:
        output_dir: the run folder.
        settings: a JSON-serialisable dict describing the run; ``"epochs"``
            may differ between the first start and a resume.
        overwrite: start over, deleting the files of the run the folder
            holds (this one or another).

    Yields:
        ``True`` if the folder already held this run (a resume), else ``False``.

    Raises:
        ValueError: if the folder holds a different run or unrelated files,
            or another process is writing it.
    """
    folder = outputs.claim(output_dir, "train", str(settings.get("source")),
                           names=RUN_ENTRIES, overwrite=overwrite)
    with folder:
        state = claim_folder(
            output_dir, RUN_FILE, settings, kind="run", ignore={"epochs"},
            allow_different=overwrite,
            remedy="Choose another output folder, or pass overwrite=True "
                   "(--overwrite) to start over (only the run's own files "
                   "are replaced).")
        if overwrite:
            removed = folder.remove_own()
            if removed:
                print(f"{output_dir}: starting over; removed the earlier run's "
                      f"{', '.join(removed)}")
        folder.record(RUN_ENTRIES)  # without checksums while the run goes on
        write_json(Path(output_dir) / RUN_FILE, settings)  # epochs may have changed
        yield state == "same" and not overwrite
        folder.record(RUN_ENTRIES, fingerprints=True)


def prepare_run_folder(output_dir, settings, overwrite=False):
    """``run_folder`` without holding the lock after it returns (a cluster's
    chief claims before its workers start); returns whether it resumes."""
    with run_folder(output_dir, settings, overwrite) as resumed:
        return resumed


def run_callbacks(output_dir, patience=None, monitor="val_loss"):
    """The callbacks of a keras_ae run folder.

    Args:
        output_dir: the run folder.
        patience: epochs without improvement of ``monitor`` before stopping
            early (restoring the best weights), or ``None`` to never stop.
        monitor: the quantity early stopping watches.

    Returns:
        A list: per-epoch ``.keras`` checkpoints, ``BackupAndRestore`` (kept
        twice over, so a file torn by a kill falls back to the one before),
        the history CSV, TensorBoard and, with ``patience``, ``EarlyStopping``.
    """
    output = Path(output_dir)
    checkpoints, history_csv, tensorboard = _run_folder_writers(output)
    backup = keras.callbacks.BackupAndRestore(str(output / "backup"),
                                              double_checkpoint=True)
    return ([checkpoints, backup, history_csv, tensorboard]
            + _early_stopping(patience, monitor))


def _run_folder_writers(output):
    """What is written into the run folder each epoch, on one machine or by
    a cluster's chief: checkpoints, ``history.csv``, TensorBoard logs."""
    return (Checkpoints(output / "checkpoints"),
            HistoryCsv(output / HISTORY_FILE),
            keras.callbacks.TensorBoard(str(output / "logs")))


def _early_stopping(patience, monitor):
    """``[EarlyStopping]`` restoring the best weights, or ``[]`` without
    ``patience``."""
    if patience is None:
        return []
    return [keras.callbacks.EarlyStopping(
        monitor=monitor, patience=patience, restore_best_weights=True)]


# --- training -----------------------------------------------------------------

@dataclasses.dataclass
class TrainResult:
    """What ``train`` gives back."""

    model: keras.Model
    history: list            # rows of history.csv, every epoch of the run
    resumed: bool            # the folder held an unfinished run of the same settings
    devices: DeviceSetup
    train_images_per_second: float  # epochs run here, after the first; nan if none
    finished_before: bool = False  # the folder held this run, finished: loaded, not trained
    weights_fingerprint: str = ""  # on a cluster: a hash of the weights, equal on all workers
    metrics: dict | None = None  # metrics.json as written (measure=True, on the chief)


def train(build_model, data, output_dir, *, epochs=10,
          learning_rate=DEFAULT_LEARNING_RATE,
          patience=None, jit_compile=False, mixed_precision="auto", devices=None,
          settings=None, callbacks=(), overwrite=False, measure=True, verbose="auto"):
    """Trains an autoencoder with Adam and MSE into a resumable run folder.

    On one machine this is ``model.fit``. Where ``TF_CONFIG`` names a
    cluster, every worker makes this same call: they train one model under
    ``MultiWorkerMirroredStrategy`` with ``keras_ae.training.multi_worker.fit_on_cluster``,
    the chief writes the run folder, and each worker keeps its own backup in
    ``output_dir/backup/<task>/`` (call ``configure_devices()`` first, before
    loading data).

    Args:
        build_model: a function of no arguments returning an uncompiled
            autoencoder (called under the device strategy's scope and the
            chosen precision policy), or an already built ``keras.Model``.
        data: a ``keras_ae.data.sources.ImageData`` (``train`` and optional
            ``validation`` datasets of ``(input, target)`` batches).
        output_dir: the run folder (see the module docstring).
        epochs: total epochs of the run, counting those already done.
        learning_rate: Adam's step size.
        patience: early-stopping patience in epochs, or ``None``.
        jit_compile: compile the train step with XLA.
        mixed_precision: ``"auto"`` (float16 on a GPU, bfloat16 on a CPU
            that has it), ``"on"``, ``"off"`` or a policy name; see
            ``configure_devices``. The policy that ran is recorded in
            ``run.json`` as ``precision_policy``.
        devices: the ``DeviceSetup`` of ``configure_devices``, where the
            caller made it already (then ``mixed_precision`` is not read).
        settings: JSON-serialisable description of the run, stored in
            ``run.json`` beside what ``train`` records itself (the data's
            ``DataSource``, image shape, batch size, noise, epochs, learning
            rate, precision policy); a later start must match it (except
            ``epochs``).
        callbacks: more Keras callbacks, run after keras_ae's own.
        overwrite: start the run over where ``output_dir`` holds one (this
            or another), and write beside other files; only a run's own
            files are deleted (``run_folder``).
        measure: after training, measure the model (in float32, as it will
            be served) on the test split and write the run record
            (``keras_ae.training.run_record``: ``metrics.json``,
            ``reconstructions.png``, ``loss_curves.png``).
        verbose: Keras' ``fit`` verbosity (``"auto"`` shows progress bars).

    Returns:
        A ``TrainResult``. The trained model is also in ``output_dir/model.keras``.
        On a cluster, the chief's ``history`` is that of ``history.csv``, the
        other workers' only that of the epochs they ran in this process.

    Raises:
        ValueError: if ``output_dir`` holds another run or unrelated files,
            for a non-positive ``epochs`` or ``learning_rate``, or where
            ``build_model`` fails or its model does not take the data's image
            shape; all before anything is written.

    Example::

        data = keras_ae.data.sources.load("fashion_mnist")
        result = train(lambda: keras_ae.build_conv_autoencoder(), data, "runs/ae")
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be a positive integer, got {epochs!r}.")
    check_learning_rate(learning_rate)  # before the folder is claimed
    started = time.time()
    settings = dict(settings or {}, **_data_settings(data), epochs=epochs,
                    learning_rate=learning_rate)
    devices = devices or configure_devices(mixed_precision)
    settings["precision_policy"] = devices.policy
    # Built before the folder is claimed: a model the images cannot feed
    # (too small for its pooling, another shape) fails with nothing written.
    model = _build(build_model, devices, learning_rate, jit_compile)
    _check_shapes(model, data)
    monitor = "val_loss" if data.validation is not None else "loss"
    if devices.workers > 1:
        # the chief holds the folder's lock to the last picture; the other
        # workers write only their backups
        with (outputs.locked(output_dir, "train") if devices.chief
              else contextlib.nullcontext()):
            result = _train_on_cluster(model, data, Path(output_dir), settings,
                                       devices, epochs, patience, monitor,
                                       callbacks, verbose, overwrite)
            if measure and devices.chief:
                result = _measured(result, data, Path(output_dir), settings, started)
        return result
    with run_folder(output_dir, settings, overwrite) as resumed:
        output = Path(output_dir)
        if _finished(output, resumed):
            # Finished before: keep its model rather than train over it.
            result = TrainResult(load_run_model(output / MODEL_FILE),
                                 read_history(output / HISTORY_FILE), True, devices,
                                 float("nan"), finished_before=True)
            return _measured(result, data, output, settings, started) if measure else result

        # first: it stops a diverged run before a checkpoint of it is written
        divergence = StopOnDivergence(epochs, learning_rate)
        callbacks = ([divergence, signals.StopOnSignal()]
                     + run_callbacks(output_dir, patience, monitor) + list(callbacks))
        with (signals.interruptions_named(_epoch_under_way(divergence)),
              signals.between_batches()):
            # shuffle=False: the pipeline already shuffles, seeded (Keras would ignore it)
            model.fit(data.train, validation_data=data.validation, epochs=epochs,
                      callbacks=callbacks, shuffle=False, verbose=verbose)
        save_model(model, Path(output_dir) / MODEL_FILE)

        history = next(c for c in callbacks if isinstance(c, HistoryCsv))
        result = TrainResult(model, read_history(history.path), resumed, devices,
                             _images_per_second(data.num_train,
                                                history.seconds_this_process))
        return _measured(result, data, output, settings, started) if measure else result


def _epoch_under_way(progress):
    """What ``signals.interruptions_named`` says of a run: the epoch under
    way (``progress.epoch``, from 0); a resumed run goes on from the last
    finished one."""
    return lambda: f"during epoch {progress.epoch + 1} of {progress.epochs}"


def _data_settings(data):
    """What ``run.json`` records of the data: where from, as plain fields."""
    return {"source": data.source,
            "data": None if data.origin is None else data.origin.to_json(),
            "image_shape": list(data.image_shape), "preprocessing": data.preprocessing,
            "batch_size": data.batch_size, "noise_factor": data.noise_factor}


def _measured(result, data, output, settings, started):
    """``result`` with its run record written (``run_record.measure``) and
    the loss curves drawn. A run finished before keeps the speed and time
    it trained in, not those of loading it again."""
    from keras_ae.models.loading import as_float32
    from keras_ae.training import evaluation

    speed = result.train_images_per_second
    figures = {"train_images_per_second": None if math.isnan(speed) else round(speed, 1),
               "seconds": round(time.time() - started, 1)}
    previous = output / METRICS_FILE
    if result.finished_before and previous.exists():
        earlier = json.loads(previous.read_text())
        figures = {key: earlier.get(key, value) for key, value in figures.items()}
    model = as_float32(result.model)  # measured as it will be served
    evaluation.save_loss_curves(output / HISTORY_FILE, output / "loss_curves.png",
                                title=model.name)
    record = run_record.measure(
        model, data, output, title=model.name, **figures,
        epochs_run=len(result.history), devices=result.devices.description,
        # the claim made run.json equal these settings (epochs aside), so a
        # finished run loaded again reports the policy it trained in
        precision_policy=settings["precision_policy"], settings=settings)
    return dataclasses.replace(result, metrics=record)


def load_run_model(path):
    """A run's ``model.keras`` (Keras' safe mode); a one-line error naming
    the file and what to do when it does not load (truncated, say)."""
    try:
        return keras.models.load_model(path)
    except Exception as error:  # Keras raises many kinds for a damaged file
        raise InputError(
            f"{path} does not load ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no message'}): "
            f"the run's trained model is damaged. Train again with "
            f"--overwrite (overwrite=True) to start the run over, or restore "
            f"the file from checkpoints/.") from None


def _finished(output, resumed):
    """The folder holds this run, trained to the end (no backup left)."""
    return (resumed and (output / MODEL_FILE).exists()
            and not (output / "backup").exists())


def _train_on_cluster(model, data, output, settings, devices, epochs,
                      patience, monitor, callbacks, verbose, overwrite):
    """``train`` on one worker of a cluster: the chief claims and writes the
    run folder; every worker trains and keeps its own backup."""
    strategy = devices.strategy
    problem, resumed = None, False
    if devices.chief:
        try:
            resumed = prepare_run_folder(output, settings, overwrite)
        except InputError as error:
            problem = error
    refused, resumed, finished, _ = multi_worker.share(strategy, [
        problem is not None, resumed,
        devices.chief and problem is None and _finished(output, resumed)])
    if problem is not None:
        raise problem
    if refused:
        raise InputError(
            f"the chief refused the run folder {str(output)!r} (see its "
            "message); expected a new folder or this run's own.")
    if finished:  # on every worker, so that none waits for the others
        if devices.chief:
            model = load_run_model(output / MODEL_FILE)
        return TrainResult(model, read_history(output / HISTORY_FILE),
                           True, devices, float("nan"), finished_before=True)

    checkpoints, history_csv, tensorboard = _run_folder_writers(output)
    writers = [checkpoints, history_csv, tensorboard] if devices.chief else []
    divergence = StopOnDivergence(epochs, float(model.optimizer.learning_rate.numpy()))
    with signals.interruptions_named(_epoch_under_way(divergence)):
        history = multi_worker.fit_on_cluster(
            model, data.train, data.validation, strategy=strategy, epochs=epochs,
            backup_dir=output / "backup" / devices.task,
            callbacks=([divergence] + writers + _early_stopping(patience, monitor)
                       + list(callbacks)),
            verbose=verbose != 0 and devices.chief)
    # Every worker's backup is gone before the chief removes backup/, which
    # marks the run finished, after the model is saved.
    multi_worker.share(strategy, [])
    if devices.chief:
        save_model(model, output / MODEL_FILE)
        shutil.rmtree(output / "backup", ignore_errors=True)
        # A copy outside the strategy: evaluating the cluster's own model on
        # the chief alone would wait for the other workers' collectives.
        rows = read_history(output / HISTORY_FILE)
        speed = _images_per_second(data.num_train,
                                   history_csv.seconds_this_process)
        trained = keras.models.load_model(output / MODEL_FILE)
        return TrainResult(trained, rows, bool(resumed), devices, speed,
                           weights_fingerprint=multi_worker.weights_fingerprint(model))
    rows = [{"epoch": epoch, **{k: float(v[i]) for k, v in history.history.items()}}
            for i, epoch in enumerate(history.epoch)]
    return TrainResult(model, rows, bool(resumed), devices, float("nan"),
                       weights_fingerprint=multi_worker.weights_fingerprint(model))


def _check_shapes(model, data):
    expected = tuple(model.input_shape[1:])
    if expected != tuple(data.image_shape):
        raise InputError(
            f"model {model.name!r} takes images of shape {expected}, but the "
            f"data holds images of shape {tuple(data.image_shape)}.")


def _images_per_second(images_per_epoch, seconds):
    """Steady-state speed: the first epoch run here also traces and compiles,
    so it is left out when later ones exist."""
    steady = seconds[1:] or seconds
    total = sum(steady)
    return images_per_epoch * len(steady) / total if total else float("nan")


def _build(build_model, devices, learning_rate, jit_compile):
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(devices.policy)
    try:
        with devices.strategy.scope():
            model = build_model if isinstance(build_model, keras.Model) else build_model()
            compile_autoencoder(model, learning_rate, jit_compile)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return model
