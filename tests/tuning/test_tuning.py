"""keras_ae.tuning: the search space, HyperModel.fit, and search's results,
resume and refusals, on tiny data (a few steps per trial)."""

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import keras_ae
from keras_ae.data import sources as data_lib
from keras_ae import tuning
from conftest import colours, png_pixels, smooth_images

# slow: searches with KerasTuner (`pytest -m "not slow"` leaves them out)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data():
    images = smooth_images(160)
    return data_lib.from_arrays(images, images[:32], validation_split=0.25,
                                batch_size=16)


def small_space(**overrides):
    """Cheap models only: 16x16 images, code pinned to 32 floats."""
    options = dict(stages=(2, 3), filters=(4, 8), convs_per_stage=(1,),
                   hidden_units=(32,), hidden_layers=(0, 1), code_size=32,
                   batch_sizes=(16, 32))
    options.update(overrides)
    return tuning.AutoencoderHyperModel((16, 16, 1), **options)


def fixed(**values):
    hp = kt.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- the search space --------------------------------------------------------

@pytest.mark.parametrize("decoder", sorted(keras_ae.DECODERS))
@pytest.mark.parametrize("stages", [1, 2, 3])
def test_every_conv_point_builds_with_the_pinned_code(decoder, stages):
    hypermodel = tuning.AutoencoderHyperModel((28, 28, 1), code_size=196,
                                              families=("conv",), stages=(1, 3))
    hp = fixed(decoder=decoder, stages=stages)
    model = hypermodel.build(hp)
    assert model.output.shape == (None, 28, 28, 1)
    assert keras_ae.code_floats(model) == 196
    assert model.loss == "mse" and isinstance(model.optimizer, keras.optimizers.Adam)
    builder, arguments = hypermodel.builder_arguments(hp)
    assert builder == "build_conv_autoencoder" and arguments["decoder"] == decoder
    assert len(arguments["filters"]) == stages
    # 14x14 and 7x7 maps divide 196: the last feature map is the code;
    # 4x4 does not: a dense code of 196 follows the last stage.
    assert arguments["code_size"] == (196 if stages == 3 else None)


def test_the_builder_arguments_rebuild_the_same_model():
    hypermodel = tuning.AutoencoderHyperModel((28, 28, 1), code_size=196)
    hp = fixed(family="conv", decoder="upsample", stages=3, filters_stage1=64,
               filters_stage2=32, last_stage_filters=16, convs_per_stage=2)
    model = hypermodel.build(hp)
    builder, arguments = hypermodel.builder_arguments(hp)
    rebuilt = getattr(keras_ae, builder)(**arguments)
    assert arguments["filters"] == (64, 32, 16)
    assert rebuilt.count_params() == model.count_params()


def test_dense_hidden_layers_form_an_hourglass():
    hypermodel = tuning.AutoencoderHyperModel((28, 28, 1), families=("dense",),
                                              hidden_layers=2)
    hp = fixed(units_layer1=128, units_layer2=512, code_size=64)
    builder, arguments = hypermodel.builder_arguments(hp)
    assert builder == "build_dense_autoencoder"
    assert arguments["hidden_units"] == (512, 128) and arguments["code_size"] == 64
    assert keras_ae.code_floats(hypermodel.build(hp)) == 64


def test_the_space_covers_what_the_issue_lists():
    hypermodel = tuning.AutoencoderHyperModel((28, 28, 1), noise_factors=(0.1, 0.3))
    tuner = kt.RandomSearch(hypermodel, objective="val_loss", max_trials=1,
                            directory=None, overwrite=True)
    names = {hp.name for hp in tuner.oracle.get_space().space}
    assert {"family", "decoder", "stages", "filters_stage1", "convs_per_stage",
            "code_filters", "hidden_layers", "units_layer1", "code_size",
            "learning_rate", "batch_size", "noise_factor"} <= names
    assert "noise_factor" not in {
        hp.name for hp in kt.RandomSearch(
            tuning.AutoencoderHyperModel((28, 28, 1)), objective="val_loss",
            max_trials=1, overwrite=True).oracle.get_space().space}


def test_get_config_round_trips():
    hypermodel = small_space(noise_factors=(0.2,))
    again = tuning.AutoencoderHyperModel.from_config(hypermodel.get_config())
    assert again.get_config() == hypermodel.get_config()
    json.dumps(hypermodel.get_config())


@pytest.mark.parametrize("options, message", [
    (dict(code_size=784), "smaller than the image's 784 floats"),
    (dict(code_size=5000), "code_size 5000 cannot build"),
    (dict(code_size=0), "code_size must be a positive integer"),
    (dict(decoders=("transpose", "deconv")),
     "decoders must be chosen from ['transpose', 'upsample', 'unpool'], got 'deconv'"),
    (dict(families=("conv", "vae")), "families must be chosen from ['conv', 'dense']"),
    (dict(stages=(2, 5)), "at most 4 fit"),
    (dict(stages=(3, 2)), "stages must be an integer >= 1"),
    (dict(stages=1, code_filters=(4,)), "code_filters allows a code of 784 floats"),
    (dict(dense_code_sizes=(32, 1024)), "dense_code_sizes allows a code of 1024"),
    (dict(filters=(16, 0)), "filters must hold positive integers"),
    (dict(batch_sizes=()), "batch_sizes must be a non-empty sequence"),
    (dict(learning_rate=(1e-2, 1e-4)), "learning_rate must be a positive number"),
    (dict(learning_rate=0), "learning_rate must be a positive number"),
    (dict(noise_factors=(0.1, -0.2)), "noise_factors must hold finite numbers >= 0"),
    (dict(hidden_layers=-1), "hidden_layers must be an integer >= 0"),
])
def test_a_space_that_cannot_build_is_refused(options, message):
    with pytest.raises(ValueError) as error:
        tuning.AutoencoderHyperModel((28, 28, 1), **options)
    assert message in str(error.value)


def test_images_of_the_wrong_rank_are_refused():
    with pytest.raises(ValueError, match="input_shape must be"):
        tuning.AutoencoderHyperModel((28, 28))


# --- HyperModel.fit ---------------------------------------------------------------

class BatchSizes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


def test_fit_rebatches_to_the_trial_batch_size(data):
    hypermodel = small_space(batch_sizes=(40,), families=("dense",), hidden_layers=0)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    counter = BatchSizes()
    # the data comes in batches of 16; the trial wants 40: 120 images -> 3 steps
    results = hypermodel.fit(hp, model, data.train, validation_data=data.validation,
                             epochs=2, callbacks=[counter], verbose=0)
    assert counter.steps == 2 * 3
    assert results["parameters"] == model.count_params()
    assert results["code_floats"] == 32 and results["epochs_run"] == 2
    assert results["seconds"] > 0
    history = model.history.history
    assert results["val_loss"] == min(history["val_loss"])


def test_fit_takes_unbatched_uint8_images(data):
    hypermodel = small_space(batch_sizes=(32,), families=("dense",), hidden_layers=0)
    images = (smooth_images(64) * 255).astype("uint8")
    unbatched = tf.data.Dataset.from_tensor_slices(images)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    results = hypermodel.fit(hp, model, unbatched, validation_data=unbatched,
                             epochs=1, verbose=0)
    # scaled to [0, 1]: a fresh sigmoid model's error is well under 1
    assert 0 < results["val_loss"] < 0.5


def test_noise_reaches_the_training_inputs_only():
    seen = {}

    class Inputs(keras.Model):
        def train_step(self, batch):
            seen.setdefault("train", batch)
            return super().train_step(batch)

        def test_step(self, batch):
            seen.setdefault("validation", batch)
            return super().test_step(batch)

    hypermodel = small_space(noise_factors=(0.5,), families=("dense",),
                             hidden_layers=0, batch_sizes=(8,))
    hp = kt.HyperParameters()
    base = hypermodel.build(hp)
    model = Inputs(base.inputs, base.outputs)
    model.compile(optimizer="adam", loss="mse", run_eagerly=True)
    images = smooth_images(16)
    dataset = tf.data.Dataset.from_tensor_slices((images, images)).batch(8)
    hypermodel.fit(hp, model, dataset, validation_data=dataset, epochs=1, verbose=0)
    noisy, clean = (np.asarray(t) for t in seen["train"])
    assert np.abs(noisy - clean).mean() > 0.1
    assert noisy.min() >= 0 and noisy.max() <= 1
    np.testing.assert_array_equal(*(np.asarray(t) for t in seen["validation"]))


def test_fit_refuses_data_of_another_shape(data):
    hypermodel = tuning.AutoencoderHyperModel((28, 28, 1))
    hp = kt.HyperParameters()
    with pytest.raises(ValueError, match=r"shape \(16, 16, 1\).*made for \(28, 28, 1\)"):
        hypermodel.fit(hp, hypermodel.build(hp), data.train)


@pytest.mark.parametrize("dataset, message", [
    (np.zeros((4, 16, 16, 1)), "must be a tf.data.Dataset"),
    (tf.data.Dataset.from_tensor_slices(np.zeros((4, 16, 16, 1))).batch(2).map(
        lambda x: (x, x, x)), "images or \\(input, target\\) pairs"),
    (tf.data.Dataset.from_tensor_slices(np.zeros((4, 16))).batch(2),
     "must yield \\(H, W, C\\) images"),
])
def test_dataset_image_shape_refuses_other_data(dataset, message):
    with pytest.raises(ValueError, match=message):
        tuning.dataset_image_shape(dataset)


# --- search -----------------------------------------------------------------------

def run_search(data, directory, **options):
    options = {"hypermodel": small_space(), "tuner": "random", "max_trials": 2,
               "max_epochs": 1, "directory": directory, "project_name": "search",
               **options}
    return tuning.search(data.train, data.validation, **options)


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    directory = tmp_path_factory.mktemp("searches")
    return run_search(data, directory), directory


def test_search_writes_the_best_model_hyperparameters_and_trials(finished, data):
    result, directory = finished
    project = directory / "search"
    for name in ("search.json", "trials.csv", "best_hyperparameters.json",
                 "best_model.keras"):
        assert (project / name).exists(), name
    rows = read_csv(project / "trials.csv")
    assert [row["trial_id"] for row in rows] == ["0", "1"]
    assert all(row["status"] == "COMPLETED" for row in rows)
    for row in rows:
        assert float(row["val_mse"]) > 0 and float(row["seconds"]) > 0
        assert int(row["code_floats"]) == 32 and int(row["parameters"]) > 0
        assert row["family"] in ("conv", "dense") and float(row["learning_rate"]) > 0
    best = json.loads((project / "best_hyperparameters.json").read_text())
    assert best["val_mse"] == min(float(row["val_mse"]) for row in rows)
    assert best == result.best_hyperparameters
    # the saved model is the best trial's, trained: it scores its val MSE
    model = keras.saving.load_model(project / "best_model.keras")
    mse = model.evaluate(data.validation, verbose=0)
    assert mse == pytest.approx(best["val_mse"], rel=1e-4)
    rebuilt = getattr(keras_ae, best["builder"])(**best["builder_arguments"])
    assert rebuilt.count_params() == model.count_params() == best["parameters"]


def test_progress_line_per_trial_and_summary(data, tmp_path, capsys):
    run_search(data, tmp_path, max_trials=1)
    out = capsys.readouterr().out
    assert "starting a RandomSearch search" in out
    line = next(line for line in out.splitlines() if line.startswith("[1/1] trial 0"))
    assert "val MSE" in line and "lr " in line and "batch " in line
    rows = tuning.read_trials_csv(tmp_path / "search" / "trials.csv")
    table = tuning.summary_table(rows)
    assert table.splitlines()[1].split()[:2] == ["1", "0"]


def test_the_same_call_again_runs_no_trial(finished, data, capsys):
    result, directory = finished
    before = (directory / "search" / "trials.csv").read_text()
    again = run_search(data, directory)
    out = capsys.readouterr().out
    assert "resuming" in out and "2 trials finished before" in out
    assert "] trial" not in out
    assert again.resumed
    assert (directory / "search" / "trials.csv").read_text() == before
    assert again.best_hyperparameters == result.best_hyperparameters


@pytest.mark.parametrize("kind", ["hyperband", "bayesian"])
def test_the_other_tuners(kind, data, tmp_path):
    result = run_search(data, tmp_path, tuner=kind, max_trials=4,
                        max_epochs=3 if kind == "hyperband" else 1)
    rows = read_csv(tmp_path / "search" / "trials.csv")
    assert len(rows) == len(result.trials) >= 2
    assert all(row["status"] == "COMPLETED" for row in rows)
    if kind == "hyperband":  # a later round trains an earlier trial further
        assert rows[-1]["continues_trial"] in [row["trial_id"] for row in rows]
        assert rows[-1]["epochs"] == "3"


def test_an_unrelated_folder_is_refused_and_kept(data, tmp_path):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds notes.txt, not written by keras-ae tune"):
        run_search(data, tmp_path)
    assert os.listdir(tmp_path / "search") == ["notes.txt"]


def test_a_different_search_is_refused_before_any_trial(finished, data, capsys):
    _, directory = finished
    before = {name: (directory / "search" / name).read_bytes()
              for name in ("trials.csv", "search.json", "best_model.keras")}
    capsys.readouterr()
    with pytest.raises(ValueError, match="holds a different search.*max_epochs: 1 "
                                         "before, 3 now"):
        run_search(data, directory, max_epochs=3)
    assert "trial" not in capsys.readouterr().out
    assert before == {name: (directory / "search" / name).read_bytes()
                      for name in before}


def test_state_torn_by_a_kill_is_named(finished, data, tmp_path):
    _, directory = finished
    shutil.copytree(directory / "search", tmp_path / "search")
    torn = tmp_path / "search" / "keras_tuner" / "trial_1" / "trial.json"
    torn.write_text(torn.read_text()[:50])
    with pytest.raises(ValueError, match=f"does not parse \\({torn}\\): the search "
                                         "was probably killed"):
        run_search(data, tmp_path)


def test_overwrite_starts_a_different_search_over(data, tmp_path):
    run_search(data, tmp_path, max_trials=1)
    result = run_search(data, tmp_path, max_trials=2, overwrite=True)
    assert not result.resumed
    assert len(read_csv(tmp_path / "search" / "trials.csv")) == 2


@pytest.mark.parametrize("change, message", [
    (dict(tuner="grid"),
     r"tuner must be one of \['hyperband', 'random', 'bayesian'\], got 'grid'"),
    (dict(max_trials=0), "max_trials must be a positive integer"),
    (dict(max_epochs=1.5), "max_epochs must be a positive integer"),
    (dict(validation=None), "validation must be a dataset"),
    (dict(hypermodel=tuning.AutoencoderHyperModel((28, 28, 1))),
     r"images of shape \(16, 16, 1\), but the hypermodel was made for \(28, 28, 1\)"),
    (dict(train=tf.data.Dataset.from_tensor_slices(np.zeros((8, 8, 8, 1))).batch(4)),
     r"train holds images of shape \(8, 8, 1\) but validation \(16, 16, 1\)"),
])
def test_bad_search_arguments_are_refused_before_anything_is_written(
        change, message, data, tmp_path):
    options = {"hypermodel": small_space(), "tuner": "random", "max_trials": 2,
               "max_epochs": 1, "directory": tmp_path, "project_name": "search",
               "train": data.train, "validation": data.validation, **change}
    train, validation = options.pop("train"), options.pop("validation")
    with pytest.raises(ValueError, match=message):
        tuning.search(train, validation, **options)
    assert not (tmp_path / "search").exists()


def test_a_failing_trial_is_reported_not_fatal(data, tmp_path, capsys):
    class Fails(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            raise RuntimeError("out of memory (simulated)")

    with pytest.raises(RuntimeError, match="no trial of the search"):
        run_search(data, tmp_path, max_trials=1, callbacks=[Fails()])
    out = capsys.readouterr().out
    assert "FAILED" in out and "out of memory (simulated)" in out
    row = read_csv(tmp_path / "search" / "trials.csv")[0]
    assert row["status"] == "FAILED" and row["val_mse"] == ""


def test_save_trials_plot_writes_a_png(finished, tmp_path):
    result, _ = finished
    path = tuning.save_trials_plot(result.trials, tmp_path / "trials.png")
    empty = tuning.save_trials_plot([], tmp_path / "empty.png")
    # the trials' markers are the only colour on the plot
    assert colours(png_pixels(path)) and not colours(png_pixels(empty))


# --- kill -9 and resume --------------------------------------------------------------

RESUMABLE = textwrap.dedent("""
    import os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras
    sys.path[:0] = [{tests!r}, os.path.dirname({tests!r})]  # test_tuning, conftest
    from test_tuning import smooth_images, small_space
    from keras_ae.data import sources as data_lib
    from keras_ae import tuning

    MARKER = {marker!r}
    started = []

    class HangInSecondTrial(keras.callbacks.Callback):
        # each trial gets a deep copy; the module-level list counts trials
        def on_epoch_end(self, epoch, logs=None):
            started.append(epoch)
            if len(started) == 2 and not os.path.exists(MARKER):
                open(MARKER, "w").close()
                time.sleep(600)  # killed here, in the middle of trial 1

    images = smooth_images(160)
    data = data_lib.from_arrays(images, images[:32], validation_split=0.25,
                                batch_size=16)
    tuning.search(data.train, data.validation, hypermodel=small_space(),
                  tuner="random", max_trials=3, max_epochs=1,
                  directory={directory!r}, project_name="search",
                  callbacks=[HangInSecondTrial()])
""")


def test_kill_9_mid_trial_then_the_same_call_resumes(tmp_path):
    marker = tmp_path / "killed_here"
    script = tmp_path / "search.py"
    script.write_text(RESUMABLE.format(
        tests=os.path.dirname(__file__), marker=str(marker),
        directory=str(tmp_path)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for _ in range(600):
            if marker.exists() or first.poll() is not None:
                break
            subprocess.run(["sleep", "0.2"])
        assert marker.exists(), first.communicate(timeout=5)[0][-3000:]
    finally:
        first.kill()
    out_first = first.communicate()[0]
    rows = read_csv(tmp_path / "search" / "trials.csv")
    assert [(r["trial_id"], r["status"]) for r in rows] == [("0", "COMPLETED")]

    second = subprocess.run([sys.executable, str(script)], capture_output=True,
                            text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    ran_again = [line.split()[2] for line in second.stdout.splitlines()
                 if "] trial " in line]
    assert "1 trial finished before" in second.stdout
    assert ran_again == ["1", "2"], out_first[-2000:] + second.stdout[-2000:]
    final = read_csv(tmp_path / "search" / "trials.csv")
    assert [(r["trial_id"], r["status"]) for r in final] == [
        ("0", "COMPLETED"), ("1", "COMPLETED"), ("2", "COMPLETED")]
    assert final[0] == rows[0]  # the finished trial was kept, not run again
    assert (tmp_path / "search" / "best_model.keras").exists()
