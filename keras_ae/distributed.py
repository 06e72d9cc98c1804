"""Multi-worker training with ``tf.distribute.MultiWorkerMirroredStrategy``.

Every worker runs the same program; ``TF_CONFIG`` tells each one the cluster
and its own place in it. Variables are mirrored on every worker, each worker
trains on its own shard of the data, and gradients are summed across workers
by collective all-reduce, so all workers end every step with the same weights.

Why not ``model.fit``: with Keras 3.15 on TensorFlow 2.21, ``fit`` under this
strategy with two or more workers fails before the first step. Keras' TF
trainer (``keras/src/backend/tensorflow/trainer.py``) builds the model from
one batch by calling ``strategy.reduce("MEAN", (x, y), axis=None)`` on the
whole ``(x, y)`` structure of ``PerReplica`` values
(``TensorFlowTrainer._maybe_symbolic_build``). With more than one worker the
strategy all-reduces that value with collectives, which starts with
``convert_to_tensor`` on the tuple::

    ValueError: Attempt to convert a value (PerReplica:{ 0: <tf.Tensor ...
    shape=(8, 16, 16, 1) ...> }) with an unsupported type
    (<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor.

Getting past that, the train step fails next: ``reduce_per_replica`` reduces
the scalar loss and metrics with ``strategy.reduce("MEAN", v, axis=0)``, and
a scalar has no axis 0 ("Invalid reduction dimension 0 for input with 0
dimensions"). This is keras-team/keras#20585; both seen with two CPU workers
on 127.0.0.1. ``fit_distributed`` therefore uses a custom training loop under
``strategy.run``, the pattern of TensorFlow's "Custom training loop with Keras
and MultiWorkerMirroredStrategy" tutorial.

Example, the same script started once per worker::

    strategy = multi_worker_strategy()  # first, before other TF work

    def make_dataset(context):
        batch = context.get_per_replica_batch_size(64)  # 64 = global batch
        images = tf.data.Dataset.from_tensor_slices(x_train)
        images = images.shard(context.num_input_pipelines,
                              context.input_pipeline_id)
        return images.map(lambda x: (x, x)).batch(batch)

    result = fit_distributed(
        lambda: keras_ae.build_conv_autoencoder((28, 28, 1)), make_dataset,
        strategy=strategy, epochs=10, checkpoint_dir="/shared/ckpt")
    result["model"].save("autoencoder.keras")  # on the chief, say
"""

import json
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf

from keras_ae.errors import InputError

EXPECTED_TF_CONFIG = ('{"cluster": {"worker": ["host:port", ...]}, '
                      '"task": {"type": "worker", "index": 0}}')


# --- the strategy ----------------------------------------------------------

def multi_worker_strategy():
    """A ``MultiWorkerMirroredStrategy`` for the cluster in ``TF_CONFIG``.

    Create it at the start of the program, before any other TensorFlow
    operation: it starts this worker's server and sets up collective ops.
    Every worker must create it; creation waits until all workers are up.

    The cluster comes from the ``TF_CONFIG`` environment variable, a JSON
    object such as ``{"cluster": {"worker": ["10.0.0.1:2222",
    "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 0}}``, the same
    cluster on every worker and each its own task. Worker 0 is the chief
    (it writes checkpoints and prints progress) unless a ``"chief"`` job is
    listed.

    Returns:
        A ``tf.distribute.MultiWorkerMirroredStrategy``.

    Raises:
        ValueError: if ``TF_CONFIG`` is missing, is not valid JSON, or does
            not have the expected shape; the message shows what was found.

    Example:

    >>> os.environ["TF_CONFIG"] = json.dumps({  # doctest: +SKIP
    ...     "cluster": {"worker": ["localhost:12345", "localhost:23456"]},
    ...     "task": {"type": "worker", "index": 0}})
    >>> strategy = multi_worker_strategy()  # doctest: +SKIP
    >>> strategy.num_replicas_in_sync  # doctest: +SKIP
    2
    """
    _check_tf_config(os.environ.get("TF_CONFIG"))
    return tf.distribute.MultiWorkerMirroredStrategy()


def _check_tf_config(text):
    """Validates ``TF_CONFIG`` before TensorFlow reads it (and fails obscurely)."""
    if not text or not text.strip():
        raise InputError(
            f"TF_CONFIG must be set to a JSON object like {EXPECTED_TF_CONFIG}, "
            f"got {text!r}.")
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


def _is_host_port(address):
    if not isinstance(address, str):
        return False
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit()


# --- training --------------------------------------------------------------

def fit_distributed(build_model, make_dataset, *, strategy, epochs,
                    learning_rate=1e-3, steps_per_epoch=None,
                    checkpoint_dir=None, verbose=1):
    """Trains an autoencoder with a custom loop under ``strategy``.

    The loss is the mean squared error between ``model(input)`` and the
    target, averaged over the global batch: each replica divides the sum of
    its per-example losses by the number of examples in the step across all
    replicas, so the gradients that Keras' optimizer sums across replicas are
    those of the global mean (a short last batch included). The reported loss
    of a step is the sum of the replicas' losses, i.e. that global mean; an
    epoch's loss is the mean over its examples.

    With ``checkpoint_dir``, ``model``, ``optimizer`` and ``epoch`` are saved
    after every epoch (the latest 3 kept) and the newest checkpoint there is
    restored first, so a restarted job continues after the saved epoch. Only
    the chief writes to ``checkpoint_dir``; the others must still save (a save
    may need collectives), so they write to a temporary directory of their own
    and delete it. Every worker restores from ``checkpoint_dir``, so it must be
    on storage they all read (a shared disk, GCS).

    Args:
        build_model: function of no arguments returning an uncompiled
            ``keras.Model``; called inside ``strategy.scope()``.
        make_dataset: function of a ``tf.distribute.InputContext`` returning a
            ``tf.data.Dataset`` of ``(input, target)`` batches of the
            per-replica batch size (``context.get_per_replica_batch_size``),
            sharded by ``context.input_pipeline_id``. Every worker must get
            as many batches per epoch; a shorter last one is fine.
        strategy: the ``tf.distribute.Strategy``, e.g. from
            ``multi_worker_strategy()``. Any strategy works, even the default
            one, ``tf.distribute.get_strategy()``.
        epochs: the epoch to train up to, counting epochs already saved in
            ``checkpoint_dir``.
        learning_rate: of the ``keras.optimizers.Adam`` optimizer.
        steps_per_epoch: steps per epoch, or ``None`` to run through the
            dataset each epoch. With a number, the dataset is read on across
            epochs and should ``repeat()``.
        checkpoint_dir: directory for checkpoints, or ``None`` for none.
        verbose: 1 to print one line per epoch on the chief, 0 for silence.
            The first epoch's time includes tracing the train step.

    Returns:
        A dict: ``"model"``, the trained ``keras.Model``; and, one entry per
        epoch run by this call (none when the checkpoint is already at
        ``epochs``), ``"epochs"`` (1-based epoch numbers), ``"loss"`` (mean
        loss), ``"steps"`` (steps run, the same on every worker) and
        ``"images"`` (examples seen by all workers together).

    Raises:
        ValueError: for a bad argument, a ``build_model`` that returns no
            ``keras.Model``, a dataset that does not yield ``(input,
            target)`` pairs or runs out before ``steps_per_epoch``, or workers
            that restored different epochs from ``checkpoint_dir``.

    Example:

    >>> import keras_ae
    >>> strategy = tf.distribute.get_strategy()  # one process, for the demo
    >>> def make_dataset(context):
    ...     images = tf.random.uniform((32, 16, 16, 1), seed=1)
    ...     batch = context.get_per_replica_batch_size(16)
    ...     return tf.data.Dataset.from_tensor_slices((images, images)).batch(batch)
    >>> result = fit_distributed(
    ...     lambda: keras_ae.build_conv_autoencoder((16, 16, 1), filters=(4,)),
    ...     make_dataset, strategy=strategy, epochs=2, verbose=0)
    >>> len(result["loss"]), result["steps"], result["images"]
    (2, [2, 2], [32, 32])
    """
    _check_arguments(build_model, make_dataset, strategy, epochs,
                     learning_rate, steps_per_epoch, verbose)
    with strategy.scope():
        model = build_model()
        if not isinstance(model, keras.Model):
            raise InputError(
                f"build_model must return a keras.Model, got {model!r}.")
        optimizer = keras.optimizers.Adam(learning_rate)
        # Built now, so that a checkpoint restores its slots at once.
        optimizer.build(model.trainable_variables)
    dataset = strategy.distribute_datasets_from_function(make_dataset)
    _check_pairs(dataset.element_spec)

    # A plain variable: only Python reads it, between steps.
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                     epoch=epoch)
    saver = _Saver(checkpoint, checkpoint_dir, strategy)
    try:
        saver.restore()
        history = _train(model, optimizer, dataset, strategy, epoch, epochs,
                         steps_per_epoch, saver, verbose)
    finally:
        saver.close()
    return {"model": model, **history}


def _check_arguments(build_model, make_dataset, strategy, epochs,
                     learning_rate, steps_per_epoch, verbose):
    for name, value in (("build_model", build_model),
                        ("make_dataset", make_dataset)):
        if not callable(value):
            raise InputError(f"{name} must be callable, got {value!r}.")
    if not isinstance(strategy, tf.distribute.Strategy):
        raise InputError(
            f"strategy must be a tf.distribute.Strategy, got {strategy!r}.")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be a positive integer, got {epochs!r}.")
    if (isinstance(learning_rate, bool)
            or not isinstance(learning_rate, (int, float))
            or not learning_rate > 0):
        raise InputError(
            f"learning_rate must be a positive number, got {learning_rate!r}.")
    if steps_per_epoch is not None and (
            isinstance(steps_per_epoch, bool)
            or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise InputError(
            "steps_per_epoch must be None or a positive integer, got "
            f"{steps_per_epoch!r}.")
    if verbose not in (0, 1):
        raise InputError(f"verbose must be 0 or 1, got {verbose!r}.")


def _check_pairs(element_spec):
    if not isinstance(element_spec, tuple) or len(element_spec) != 2:
        raise InputError(
            "make_dataset must return a dataset of (input, target) pairs, got "
            f"elements {element_spec!r}.")


def _train(model, optimizer, dataset, strategy, epoch, epochs,
           steps_per_epoch, saver, verbose):
    """Runs epochs ``epoch + 1 .. epochs``; returns their history."""
    train_step = _train_step(model, optimizer, strategy)
    # With steps_per_epoch, one iterator reads on across epochs, like fit.
    iterator = iter(dataset) if steps_per_epoch else None
    history = {"epochs": [], "loss": [], "steps": [], "images": []}
    for number in range(int(epoch.numpy()) + 1, epochs + 1):
        start = time.perf_counter()
        batches = (_take(iterator, steps_per_epoch, number) if iterator
                   else dataset)
        loss_sum = images = steps = 0
        for batch in batches:
            loss, count = train_step(batch)
            # The step's loss is a mean; weigh it by its examples.
            loss_sum += float(loss) * float(count)
            images += int(count)
            steps += 1
        seconds = time.perf_counter() - start
        loss = loss_sum / images if images else float("nan")
        epoch.assign(number)
        saver.save(number)
        for key, value in (("epochs", number), ("loss", loss),
                           ("steps", steps), ("images", images)):
            history[key].append(value)
        if verbose and strategy.extended.should_checkpoint:
            print(f"epoch {number}/{epochs}: loss {loss:.6f}, {seconds:.1f} s, "
                  f"{images / seconds:.0f} images/s", flush=True)
    return history


def _take(iterator, steps, number):
    for step in range(steps):
        try:
            # Raised on every worker at once: the distributed iterator agrees
            # across workers on whether data is left.
            yield next(iterator)
        except StopIteration:
            raise InputError(
                f"make_dataset's dataset ran out after {step} of "
                f"steps_per_epoch={steps} steps in epoch {number}; expected "
                "a dataset that lasts, e.g. one ending in .repeat().") from None


def _train_step(model, optimizer, strategy):
    """A ``tf.function`` of one distributed batch -> (loss, examples)."""

    def replica_step(inputs, targets):
        count = tf.cast(tf.shape(inputs)[0], tf.float32)
        # Examples in this step on all replicas together: dividing by it
        # (not by this replica's count) makes the summed gradients a mean.
        global_count = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, count)
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True)
            loss = tf.math.divide_no_nan(
                tf.reduce_sum(_per_example_mse(targets, outputs)),
                global_count)
            if model.losses:  # e.g. weight regularizers, once per replica
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        # Keras' optimizer sums the gradients across replicas itself.
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss, count

    @tf.function
    def train_step(batch):
        loss, count = strategy.run(replica_step, args=batch)
        sum_ = tf.distribute.ReduceOp.SUM
        return (strategy.reduce(sum_, loss, axis=None),
                strategy.reduce(sum_, count, axis=None))

    return train_step


def _per_example_mse(targets, outputs):
    """Mean squared error of each example, over all its other axes."""
    errors = tf.square(tf.cast(targets, outputs.dtype) - outputs)
    return tf.reduce_mean(tf.reshape(errors, (tf.shape(errors)[0], -1)),
                          axis=1)


# --- checkpoints -----------------------------------------------------------

class _Saver:
    """Saves on every worker, keeping only the chief's checkpoints."""

    def __init__(self, checkpoint, checkpoint_dir, strategy):
        self._checkpoint = checkpoint
        self._dir = checkpoint_dir
        self._strategy = strategy
        self._manager = None
        self._temp_dir = None
        if checkpoint_dir is None:
            return
        write_dir = checkpoint_dir
        if not strategy.extended.should_checkpoint:
            self._temp_dir = write_dir = tempfile.mkdtemp(
                prefix=f"keras_ae_worker{_task_id(strategy)}_")
        self._manager = tf.train.CheckpointManager(checkpoint, write_dir,
                                                   max_to_keep=3)

    def restore(self):
        """Restores the chief's latest checkpoint, if there is one."""
        if self._dir is None:
            return
        latest = tf.train.latest_checkpoint(self._dir)
        if latest:
            self._checkpoint.restore(latest).assert_existing_objects_matched()
        _check_same_epoch(self._strategy, int(self._checkpoint.epoch.numpy()),
                          self._dir)

    def save(self, number):
        if self._manager is None:
            return
        self._manager.save(checkpoint_number=number)
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    def close(self):
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)


def _task_id(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return getattr(resolver, "task_id", None) or 0


def _check_same_epoch(strategy, epoch, checkpoint_dir):
    """Fails on every worker, rather than hang, if their epochs differ.

    Workers that start at different epochs run different numbers of steps,
    and the collectives of the extra steps would wait forever.
    """
    mean_op = tf.distribute.ReduceOp.MEAN
    value = tf.constant(float(epoch))
    mean = strategy.reduce(mean_op, value, axis=None)
    spread = float(strategy.reduce(mean_op, tf.square(value - mean), axis=None))
    if spread > 0:
        raise InputError(
            f"workers restored different epochs from checkpoint_dir "
            f"{checkpoint_dir!r} (this one: {epoch}, mean of all: "
            f"{float(mean):g}); expected the same on all, so checkpoint_dir "
            "must be on storage every worker can read.")
