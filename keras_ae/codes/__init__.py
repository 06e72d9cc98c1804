"""Using what the encoder learned: codes as features (a linear probe), clusters
(k-means), denoising, interpolation and sampling.

Every function takes a trained autoencoder, a Keras model or an exported
``keras_ae.runtime.OnnxAutoencoder``; ``encode``, ``reconstruct`` and
``decode`` are the adapter that lets both be used alike::

    from keras_ae import codes
    accuracy = codes.linear_probe(model, (train_x, train_y), (test_x, test_y))["accuracy"]
"""

from keras_ae.public import lazy_exports

# Module (in this package) -> the public names it defines.
_EXPORTS = {
    "adapter": ("DEFAULT_BATCH", "as_images", "check_decoder_runs_alone", "decode", "encode",
                "labeled_arrays", "reconstruct"),
    "probes": ("cluster", "cluster_features", "flat_pixels", "linear_probe", "probe_features",
               "save_code_map"),
    "generation": ("add_noise", "denoising_gain", "interpolate", "psnr", "sample",
                   "save_image_grid"),
    "runs": ("run_cluster", "run_features", "run_generate"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
