"""``import keras_ae`` is enough for ``keras.models.load_model`` of every
model kind, in either import order and when Keras is only imported by
keras_ae itself; each order runs in a fresh process, since this test
process imported Keras first (conftest)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras_ae

# slow: each case a fresh Python process (`pytest -m "not slow"` leaves them out)
pytestmark = pytest.mark.slow

KINDS = {
    "transpose": dict(decoder="transpose"),
    "upsample": dict(decoder="upsample"),
    "unpool": dict(decoder="unpool"),
    "unpool-average": dict(decoder="unpool", pooling="average"),
    "upsample-average": dict(decoder="upsample", pooling="average"),
    "transpose-sqrt": dict(decoder="transpose", intensity="sqrt"),
}
SHAPE = (12, 12, 1)
SMALL = dict(filters=(4, 2), convs_per_stage=1)

ORDERS = {
    "keras_ae, then keras": "import keras_ae\nimport keras\nload = keras.models.load_model",
    "keras, then keras_ae": "import keras\nimport keras_ae\nload = keras.models.load_model",
    "keras_ae, then tf.keras": ("import keras_ae\nimport tensorflow as tf\n"
                                "load = tf.keras.models.load_model"),
    "tensorflow, then keras_ae": ("import tensorflow as tf\nimport keras_ae\n"
                                  "load = tf.keras.models.load_model"),
}


def run_python(code, cwd):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One .keras file per kind, and each one's output on fixed images."""
    folder = tmp_path_factory.mktemp("kinds")
    x = np.random.default_rng(0).random((2, *SHAPE), "float32")
    np.save(folder / "x.npy", x)
    expected = {}
    for kind, options in KINDS.items():
        model = keras_ae.build_conv_autoencoder(SHAPE, **SMALL, **options)
        model.save(folder / f"{kind}.keras")
        expected[kind] = np.asarray(model(x)).tolist()
    return folder, expected


@pytest.mark.parametrize("order", ORDERS)
def test_every_kind_loads_in_a_fresh_process(order, saved):
    folder, expected = saved
    out = run_python(ORDERS[order] + f"""
import json, numpy as np
x = np.load("x.npy")
print(json.dumps({{kind: np.asarray(load(kind + ".keras")(x)).tolist()
                  for kind in {sorted(KINDS)!r}}}))
""", folder)
    outputs = json.loads(out.strip().splitlines()[-1])
    for kind in KINDS:
        np.testing.assert_allclose(outputs[kind], expected[kind], atol=1e-6,
                                   err_msg=f"{kind} after {order}")


def test_serving_still_loads_no_tensorflow(saved):
    folder, _ = saved
    out = run_python("""
import sys
import keras_ae, keras_ae.runtime.onnx_autoencoder
print("tensorflow" in sys.modules, "keras" in sys.modules)
""", folder)
    assert out.split() == ["False", "False"]


def test_an_unpool_run_resumes_and_finishes_through_the_library(tmp_path):
    """Killed after its first epoch (os._exit, as kill -9 leaves it), then
    resumed and finished, each in a fresh process that imports keras_ae
    first and builds from the first epoch's saved model."""
    common = f"""
import os, sys
import keras_ae
from keras_ae.data import sources as data
from keras_ae.training import loop as training
import numpy as np
rng = np.random.default_rng(0)
images = (rng.random((64, *{SHAPE!r})) * 255).astype(np.uint8)
dataset = data.from_arrays(images[:48], images[48:], batch_size=16,
                           validation_split=0.25)
"""
    run_python(common + f"""
import keras

class Die(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            os._exit(0)  # no cleanup, as after kill -9

training.train(lambda: keras_ae.build_conv_autoencoder(
    {SHAPE!r}, decoder="unpool", **{SMALL!r}), dataset, "run", epochs=2,
    verbose=0, callbacks=[Die()])
""", tmp_path)
    assert (tmp_path / "run" / "backup").exists()
    assert (tmp_path / "run" / "checkpoints" / "epoch_001.keras").exists()
    out = run_python(common + """
import keras
build = lambda: keras.models.load_model("run/checkpoints/epoch_001.keras")
first = training.train(build, dataset, "run", epochs=2, verbose=0)
again = training.train(build, dataset, "run", epochs=2, verbose=0)
print(first.resumed, [r["epoch"] for r in first.history], again.finished_before,
      type(again.model.get_layer("decoder").get_layer("decoder_stage1_unpool")).__name__)
""", tmp_path)
    assert out.split() == ["True", "[0,", "1]", "True", "MaxUnpooling2D"]
