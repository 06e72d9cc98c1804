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

# Public name -> the module (in this package) that defines it.
_EXPORTS = {
    "DEFAULT_LEARNING_RATE": "loop",
    "DeviceSetup": "loop",
    "TrainResult": "loop",
    "compile_autoencoder": "loop",
    "configure_devices": "loop",
    "load_run_model": "loop",
    "read_history": "loop",
    "run_folder": "loop",
    "train": "loop",
    "evaluate": "evaluation",
    "reconstruction_errors": "evaluation",
    "save_loss_curves": "evaluation",
    "save_reconstruction_grid": "evaluation",
    "POLICIES": "precision",
    "choose_policy": "precision",
    "tf_config": "multi_worker",
    "RunRecord": "run_record",
    "TrainingRun": "runs",
    "run_training": "runs",
    "read_run_record": "run_record",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
