"""Every use of another library's private API, in one place.

Each function says why no public API does the job and which versions it was
checked against; ``tests/test_compat.py`` checks each against the installed
versions and fails with a message naming the function if one changes.

- ``in_xla_context``: TensorFlow 2.21 (``tensorflow.python.ops``).
- ``silence_keras_tuner_debug_print`` and ``call_after_oracle_end_trial``:
  KerasTuner 1.4.8 (``keras_tuner.src``).
- ``onnxruntime_load_errors``: onnxruntime 1.31 and 1.32
  (``onnxruntime.capi.onnxruntime_pybind11_state``).
- ``few_tfds_download_retries``: tensorflow-datasets 4.9.10
  (``tensorflow_datasets.core.download.downloader``).

Nothing here imports TensorFlow at module level: ``keras_ae.runtime.onnx_autoencoder`` uses
this module and must run without it.
"""

import contextlib


def in_xla_context():
    """Whether the op being traced will be compiled by XLA.

    ``MaxPoolWithArgmax`` has no XLA kernel, so under ``jit_compile=True``
    ``keras_ae.models.layers.MaxPoolingWithArgmax2D`` switches to an equivalent made
    of XLA-supported ops. TensorFlow offers no public way to ask; if its
    private helper moves, every trace counts as XLA and the portable path
    runs everywhere, which is exact but slower.
    """
    import tensorflow as tf

    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - depends on TF internals
        return True
    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph())


def silence_keras_tuner_debug_print():
    """Mutes the ``print`` KerasTuner 1.4.8 left in ``Parent.to_proto``.

    In the distributed mode every gRPC message about a conditional
    hyperparameter goes through ``keras_tuner.src.engine.conditions.Parent
    .to_proto``, which prints the condition's first value: hundreds of stray
    lines such as ``conv`` on the chief. A module-level ``print`` in that
    one module shadows the built-in for its code alone; nothing else is
    replaced, and a KerasTuner without the print is unaffected.
    """
    try:
        from keras_tuner.src.engine import conditions
    except ImportError:  # moved in a later KerasTuner: nothing to mute
        return
    conditions.print = _no_print


def _no_print(*args, **kwargs):
    del args, kwargs


def call_after_oracle_end_trial(oracle, callback):
    """Calls ``callback(trial)`` each time ``oracle.end_trial(trial)`` returns.

    The chief of a distributed search runs no trial, so no tuner hook
    (``on_trial_end``) runs there; KerasTuner's gRPC servicer
    (``keras_tuner.src.distribute.oracle_chief.OracleServicer.EndTrial``)
    calls the oracle's public ``end_trial`` when a worker reports, and that
    is the only place the chief learns of it. The method is wrapped on this
    one oracle object, not on its class.
    """
    end_trial = oracle.end_trial

    def end_trial_then_call(trial):
        result = end_trial(trial)
        callback(trial)
        return result

    oracle.end_trial = end_trial_then_call


def onnxruntime_load_errors():
    """The exception classes onnxruntime raises for a file it cannot load.

    onnxruntime defines them (``Fail``, ``InvalidProtobuf``, ...) only in
    its private pybind module and exports no common base class, so catching
    "not a loadable model" needs them by name. If the module moves, the
    tuple is empty and such loads fail with onnxruntime's own error (and a
    traceback) instead of keras_ae's one-line message.
    """
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as state
    except ImportError:  # pragma: no cover - an onnxruntime without it
        return ()
    return tuple(
        getattr(state, name)
        for name in ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf",
                     "NoModel", "NotImplemented")
        if isinstance(getattr(state, name, None), type))


@contextlib.contextmanager
def few_tfds_download_retries(retries):
    """Within it, a tensorflow-datasets download tries ``retries`` times.

    Offline, a download then fails in a second rather than minutes:
    tensorflow-datasets reads its retry count from the module constant
    ``downloader.MAX_RETRIES`` when each download starts and offers no
    option for it. If that private name moves, downloads keep tfds' own
    retries.
    """
    try:
        from tensorflow_datasets.core.download import downloader
    except ImportError:  # pragma: no cover - depends on tfds internals
        downloader = None
    if not hasattr(downloader, "MAX_RETRIES"):  # pragma: no cover
        yield
        return
    saved, downloader.MAX_RETRIES = downloader.MAX_RETRIES, retries
    try:
        yield
    finally:
        downloader.MAX_RETRIES = saved
