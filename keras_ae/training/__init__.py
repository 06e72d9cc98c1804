"""Training an autoencoder: the loop (Adam and MSE, resumable run folders),
several machines through ``tf.distribute``, the precision policy, the run
record, and the measures and pictures of a trained model.

``train(model, data, "runs/x")`` writes the run folder, ``run.json`` and
``metrics.json`` included; ``read_run_record`` reads them back for export
and the other commands::

    from keras_ae import training
    devices = training.configure_devices()
    model = training.compile_autoencoder(keras_ae.build_conv_autoencoder())
    result = training.train(model, images, "runs/conv", epochs=10)
"""

from keras_ae.public import lazy_exports

# Module (in this package) -> the public names it defines.
_EXPORTS = {
    "loop": ("DEFAULT_LEARNING_RATE", "DeviceSetup", "TrainResult", "compile_autoencoder",
             "configure_devices", "load_run_model", "read_history", "run_folder", "train"),
    "evaluation": ("evaluate", "reconstruction_errors", "save_loss_curves",
                   "save_reconstruction_grid"),
    "precision": ("POLICIES", "choose_policy"),
    "multi_worker": ("tf_config",),
    "run_record": ("RunRecord", "read_run_record"),
    "runs": ("TrainingRun", "run_training"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
