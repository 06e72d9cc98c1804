"""Using what the encoder learned: codes as features (a linear probe), clusters
(k-means), denoising, interpolation and sampling.

Every function takes a trained autoencoder, a Keras model or an exported
``keras_ae.runtime.OnnxAutoencoder``; ``encode``, ``reconstruct`` and
``decode`` are the adapter that lets both be used alike::

    from keras_ae import codes
    accuracy = codes.linear_probe(model, (train_x, train_y), (test_x, test_y))["accuracy"]
"""

from keras_ae.public import lazy_exports

# Public name -> the module (in this package) that defines it.
_EXPORTS = {
    "DEFAULT_BATCH": "adapter",
    "as_images": "adapter",
    "check_decoder_runs_alone": "adapter",
    "decode": "adapter",
    "encode": "adapter",
    "labeled_arrays": "adapter",
    "reconstruct": "adapter",
    "cluster": "probes",
    "cluster_features": "probes",
    "flat_pixels": "probes",
    "linear_probe": "probes",
    "probe_features": "probes",
    "save_code_map": "probes",
    "add_noise": "generation",
    "run_cluster": "runs",
    "run_features": "runs",
    "run_generate": "runs",
    "denoising_gain": "generation",
    "interpolate": "generation",
    "psnr": "generation",
    "sample": "generation",
    "save_image_grid": "generation",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
