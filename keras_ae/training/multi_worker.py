"""Training on several machines: ``TF_CONFIG``, the strategy, a custom loop.

``keras_ae.training.loop.train`` (and so ``keras-ae train``) takes this route by
itself when the ``TF_CONFIG`` environment variable names a cluster: the same
command runs on every machine, each with its own ``TF_CONFIG``. Variables are
mirrored on every worker by ``tf.distribute.MultiWorkerMirroredStrategy``,
each worker computes the gradients of its share of every global batch, and the
gradients are summed by collective all-reduce, so all workers end every step
with the same weights.

Why not ``model.fit``: under this strategy it fails on Keras 3.15 with two
or more workers (keras-team/keras#20585). ``fit_on_cluster`` therefore runs
a custom loop under ``strategy.run`` and drives ordinary Keras callbacks, so
the run folder is the one ``fit`` writes; the reasons and when to drop the
loop: docs/design/multi_worker_loop.md.

Resuming: every worker keeps its own ``tf.train.Checkpoint`` of the model and
optimizer after each epoch (the latest 3) in a folder of its own, so no
shared disk is needed. A restarted cluster resumes from the newest epoch that
every worker has saved.
"""

import hashlib
import json
import math
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from keras_ae.errors import InputError

EXPECTED_TF_CONFIG = ('{"cluster": {"worker": ["host:port", ...]}, '
                      '"task": {"type": "worker", "index": 0}}')
CHECKPOINTS_KEPT = 3

# TensorFlow sets up collective ops once, at program start: one strategy
# per process, made before any other TensorFlow work and reused after.
_strategy = None


# --- the cluster -----------------------------------------------------------

def tf_config():
    """The cluster ``TF_CONFIG`` names, checked; ``None`` where it is unset.

    Returns:
        The parsed ``TF_CONFIG`` dict, or ``None`` if the variable is unset
        or empty (one machine).

    Raises:
        InputError: if ``TF_CONFIG`` is not valid JSON or does not have the
            expected shape; the message shows what was found.
    """
    text = os.environ.get("TF_CONFIG")
    if not text or not text.strip():
        return None
    return _checked_tf_config(text)


def multi_worker_strategy():
    """The ``MultiWorkerMirroredStrategy`` of the cluster in ``TF_CONFIG``.

    Call it first thing, before loading data or building a model: TensorFlow
    sets up collective ops only at program start. Every worker must call it;
    the first collective waits until all workers are up. Later calls return
    the same strategy.

    ``TF_CONFIG`` is a JSON object such as ``{"cluster": {"worker":
    ["10.0.0.1:2222", "10.0.0.2:2222"]}, "task": {"type": "worker", "index":
    0}}``: the same cluster on every worker, each its own task. Worker 0 is
    the chief (it writes the run folder) unless a ``"chief"`` job is listed.

    Returns:
        A ``tf.distribute.MultiWorkerMirroredStrategy``.

    Raises:
        InputError: if ``TF_CONFIG`` is unset or malformed, or if TensorFlow
            already ran something in this process.
    """
    global _strategy
    if _strategy is None:
        if tf_config() is None:
            raise InputError(
                f"TF_CONFIG must be set to a JSON object like "
                f"{EXPECTED_TF_CONFIG}, got {os.environ.get('TF_CONFIG')!r}.")
        try:
            _strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:
            if "program startup" not in str(error):
                raise
            raise InputError(
                "TF_CONFIG names a cluster, but TensorFlow already ran in this "
                "process; call keras_ae.training.loop.configure_devices() first, "
                "before loading data or building a model.") from None
    return _strategy


def is_chief(strategy):
    """True on the worker that writes the run folder (and on one machine)."""
    return bool(strategy.extended.should_checkpoint)


def task_name(strategy):
    """This worker's name in the cluster, e.g. ``"worker_1"``."""
    resolver = getattr(strategy, "cluster_resolver", None)
    kind = getattr(resolver, "task_type", None) or "worker"
    return f"{kind}_{getattr(resolver, 'task_id', None) or 0}"


def share(strategy, values):
    """Sums ``values`` (a list of numbers) over all workers.

    Returns:
        A numpy array: the sums, followed by the number of workers.
    """
    local = tf.constant([float(v) for v in values] + [1.0], tf.float64)
    # A plain tensor counts once per worker, whatever its local replicas.
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, local, axis=None)
    return np.asarray(total)


def weights_fingerprint(model):
    """A short hash of ``model``'s weights: equal on workers that agree."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:16]


def _checked_tf_config(text):
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"TF_CONFIG must be JSON like {EXPECTED_TF_CONFIG}, got {text!r} "
            f"({error}).") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise InputError(
            "TF_CONFIG must have a 'cluster' and a 'task' object, like "
            f"{EXPECTED_TF_CONFIG}, got {text!r}.")
    if "worker" not in cluster and "chief" not in cluster:
        raise InputError(
            "TF_CONFIG's cluster must list 'worker' (or 'chief') addresses, "
            f"like {EXPECTED_TF_CONFIG}, got cluster {cluster!r}.")
    for job, addresses in cluster.items():
        if (not isinstance(addresses, list) or not addresses
                or not all(_is_host_port(a) for a in addresses)):
            raise InputError(
                f"TF_CONFIG's cluster[{job!r}] must be a non-empty list of "
                f"'host:port' strings, got {addresses!r}.")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster:
        raise InputError(
            f"TF_CONFIG's task type must be one of the cluster's jobs "
            f"{sorted(cluster)}, got task {task!r}.")
    if (isinstance(index, bool) or not isinstance(index, int)
            or not 0 <= index < len(cluster[kind])):
        raise InputError(
            f"TF_CONFIG's task index must be an integer in "
            f"[0, {len(cluster[kind])}) for the {len(cluster[kind])} "
            f"{kind!r} addresses, got task {task!r}.")
    return config


def _is_host_port(address):
    if not isinstance(address, str):
        return False
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit()


# --- the loop --------------------------------------------------------------

def fit_on_cluster(model, train, validation=None, *, strategy, epochs,
                   backup_dir, callbacks=(), verbose=1):
    """Trains a compiled autoencoder like ``model.fit``, with a custom loop.

    The loss is the mean squared error between ``model(input)`` and the
    target over the global batch: each replica divides the sum of its
    per-example errors by the examples in the step on all replicas, so the
    gradients that Keras' optimizer sums across replicas are those of the
    global mean (a short last batch included). An epoch's ``loss`` and
    ``val_loss`` are means over its examples, as ``fit`` reports them.

    Args:
        model: a model built and compiled under ``strategy.scope()``; its
            optimizer is used (with its loss scaling, under mixed precision).
        train: a ``tf.data.Dataset`` of global ``(input, target)`` batches,
            the same on every worker (seeded); each worker takes its share of
            each batch.
        validation: such a dataset, or ``None``.
        strategy: the ``tf.distribute.Strategy``, e.g. from
            ``multi_worker_strategy()``; any strategy works, even the default
            one.
        epochs: the epoch to train up to, counting epochs already saved.
        backup_dir: this worker's own folder for per-epoch checkpoints, or
            ``None`` for none; the newest epoch all workers saved is restored
            first, and the folder is deleted when training ends.
        callbacks: Keras callbacks run on this worker.
        verbose: 0 for silence, 1 for Keras' progress bar.

    Returns:
        The ``keras.callbacks.History`` of the epochs run by this call.
    """
    with strategy.scope():
        # Built now, so that a checkpoint restores its slots at once.
        model.optimizer.build(model.trainable_variables)
    train_step, test_step = _steps(model, strategy)
    backup = _Backup(model, backup_dir, strategy, epochs)
    first = backup.restore()
    batches = _distribute(strategy, train)
    validation_batches = (None if validation is None
                          else _distribute(strategy, validation))

    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=bool(verbose),
        model=model, verbose=int(bool(verbose)), epochs=epochs, steps=None)
    model.stop_training = False
    callback_list.on_train_begin()
    logs = {}
    for epoch in range(first, epochs):
        callback_list.on_epoch_begin(epoch)
        logs = {"loss": _run_epoch(batches, train_step, callback_list, "train")}
        if validation_batches is not None:
            callback_list.on_test_begin()
            val_loss = _run_epoch(validation_batches, test_step, callback_list,
                                  "test")
            callback_list.on_test_end({"loss": val_loss})
            logs["val_loss"] = val_loss
        callback_list.on_epoch_end(epoch, logs)
        backup.save(epoch + 1)
        if model.stop_training:  # e.g. EarlyStopping, the same on all workers
            break
    callback_list.on_train_end(logs)
    backup.remove()
    return model.history


def _distribute(strategy, dataset):
    options = tf.data.Options()
    # Each worker reads the same seeded batches and keeps its share of each:
    # the global batch stays what it is on one machine.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def _run_epoch(batches, step, callback_list, kind):
    """Runs ``step`` over ``batches``; returns the mean loss per example."""
    total = examples = 0.0
    for index, batch in enumerate(batches):
        getattr(callback_list, f"on_{kind}_batch_begin")(index)
        loss, count = step(batch)
        # The step's loss is a mean; weigh it by its examples.
        total += float(loss) * float(count)
        examples += float(count)
        getattr(callback_list, f"on_{kind}_batch_end")(
            index, {"loss": total / examples if examples else math.nan})
    return total / examples if examples else math.nan


def _steps(model, strategy):
    """``tf.function``s of one distributed batch -> (mean loss, examples)."""
    optimizer = model.optimizer

    def global_mean(inputs, targets, training):
        count = tf.cast(tf.shape(inputs)[0], tf.float32)
        # Examples in this step on all replicas together: dividing by it
        # (not by this replica's count) makes the summed gradients a mean.
        global_count = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, count)
        outputs = model(inputs, training=training)
        errors = tf.square(tf.cast(targets, "float32")
                           - tf.cast(outputs, "float32"))
        per_example = tf.reduce_mean(
            tf.reshape(errors, (tf.shape(errors)[0], -1)), axis=1)
        loss = tf.math.divide_no_nan(tf.reduce_sum(per_example), global_count)
        if training and model.losses:  # e.g. weight regularizers
            loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        return loss, count

    def replica_train_step(inputs, targets):
        with tf.GradientTape() as tape:
            loss, count = global_mean(inputs, targets, training=True)
            scaled = optimizer.scale_loss(loss)  # loss scaling, mixed precision
        gradients = tape.gradient(scaled, model.trainable_variables)
        # Keras' optimizer unscales and sums the gradients across replicas.
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss, count

    def replica_test_step(inputs, targets):
        return global_mean(inputs, targets, training=False)

    def distributed(replica_step):
        @tf.function
        def step(batch):
            inputs, targets = batch[0], batch[1]
            loss, count = strategy.run(replica_step, args=(inputs, targets))
            total = tf.distribute.ReduceOp.SUM
            return (strategy.reduce(total, loss, axis=None),
                    strategy.reduce(total, count, axis=None))
        return step

    return distributed(replica_train_step), distributed(replica_test_step)


# --- each worker's checkpoints ---------------------------------------------

class _Backup:
    """Per-epoch checkpoints of one worker, and the epoch all can resume."""

    def __init__(self, model, folder, strategy, epochs):
        self._folder = None if folder is None else os.fspath(folder)
        self._strategy = strategy
        self._epochs = epochs
        self._checkpoint = tf.train.Checkpoint(model=model,
                                               optimizer=model.optimizer)
        self._manager = None if folder is None else tf.train.CheckpointManager(
            self._checkpoint, self._folder, max_to_keep=CHECKPOINTS_KEPT,
            checkpoint_name="epoch")

    def restore(self):
        """Restores the newest epoch every worker saved; returns it (0: none).

        Workers killed at different moments may have saved different epochs;
        starting them at different epochs would hang their collectives.
        """
        saved = {} if self._manager is None else {
            int(path.rsplit("-", 1)[1]): path
            for path in self._manager.checkpoints}
        has = [1.0] + [float(epoch in saved)
                       for epoch in range(1, self._epochs + 1)]
        counts = share(self._strategy, has)
        common = [epoch for epoch, count in enumerate(counts[:-1])
                  if count == counts[-1]]
        epoch = max(common)
        if epoch:
            self._checkpoint.restore(saved[epoch]).assert_existing_objects_matched()
        return epoch

    def save(self, epoch):
        if self._manager is not None:  # every worker: saves may need collectives
            self._manager.save(checkpoint_number=epoch)

    def remove(self):
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
