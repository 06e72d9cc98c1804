"""keras_ae.compat: each use of another library's private API still does
what keras_ae relies on, with the installed versions. A failure here names
the function whose assumption broke."""

import contextlib
import io

import pytest
import tensorflow as tf

from keras_ae import compat


def test_in_xla_context_tells_xla_from_plain_graphs():
    seen = {}

    def probe(key):
        seen[key] = compat.in_xla_context()
        return tf.constant(0)

    probe("eager")
    tf.function(lambda: probe("graph"))()
    tf.function(lambda: probe("xla"), jit_compile=True)()
    assert seen == {"eager": False, "graph": False, "xla": True}, (
        "compat.in_xla_context: tensorflow.python.ops.control_flow_util no "
        "longer tells XLA traces apart")


def test_keras_tuner_debug_print_is_silenced():
    pytest.importorskip("keras_tuner")
    try:
        from keras_tuner.src.engine import conditions
    except ImportError:
        pytest.fail("compat.silence_keras_tuner_debug_print: "
                    "keras_tuner.src.engine.conditions moved; check whether "
                    "Parent.to_proto still prints")
    parent = conditions.Parent("family", ["conv"])
    compat.silence_keras_tuner_debug_print()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        proto = parent.to_proto()
    assert printed.getvalue() == "", (
        "compat.silence_keras_tuner_debug_print: Parent.to_proto still prints")
    assert proto.parent.name == "family"
    assert [v.string_value for v in proto.parent.values] == ["conv"]


class _StubOracle:
    def __init__(self):
        self.ended = []

    def end_trial(self, trial):
        self.ended.append(trial.trial_id)


def test_chief_learns_of_each_trial_a_worker_ends():
    kt = pytest.importorskip("keras_tuner")
    try:
        from keras_tuner.src.distribute import oracle_chief
        from keras_tuner.src.engine.trial import Trial
        from keras_tuner.src.protos import get_service
    except ImportError:
        pytest.fail("compat.call_after_oracle_end_trial: KerasTuner's gRPC "
                    "servicer (keras_tuner.src.distribute.oracle_chief) moved")
    oracle, reported = _StubOracle(), []
    compat.call_after_oracle_end_trial(oracle,
                                       lambda t: reported.append(t.trial_id))
    servicer = oracle_chief.OracleServicer(oracle)
    trial = Trial(kt.HyperParameters(), trial_id="07", status="COMPLETED")
    # the request a worker's OracleClient.end_trial sends
    servicer.EndTrial(get_service().EndTrialRequest(trial=trial.to_proto()),
                      None)
    assert oracle.ended == ["07"], "the oracle's own end_trial did not run"
    assert reported == ["07"], (
        "compat.call_after_oracle_end_trial: KerasTuner's servicer no longer "
        "calls oracle.end_trial when a worker ends a trial")


def test_onnxruntime_load_errors_catch_a_file_that_is_no_model(tmp_path):
    import onnxruntime as ort

    errors = compat.onnxruntime_load_errors()
    assert errors, ("compat.onnxruntime_load_errors: onnxruntime.capi."
                    "onnxruntime_pybind11_state no longer has its error classes")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a protobuf")
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except errors:
        pass
    except Exception as error:  # noqa: BLE001 - the point of the test
        pytest.fail("compat.onnxruntime_load_errors: onnxruntime raised "
                    f"{type(error).__name__}, which is not among {errors}")
    else:
        pytest.fail("onnxruntime loaded a file that is no model")


def test_few_tfds_download_retries_sets_and_restores_the_count():
    pytest.importorskip("tensorflow_datasets")
    try:
        from tensorflow_datasets.core.download import downloader
        before = downloader.MAX_RETRIES
    except (ImportError, AttributeError):
        pytest.fail("compat.few_tfds_download_retries: tensorflow_datasets."
                    "core.download.downloader.MAX_RETRIES moved; offline "
                    "downloads would retry for minutes")
    with compat.few_tfds_download_retries(2):
        assert downloader.MAX_RETRIES == 2
    assert downloader.MAX_RETRIES == before
