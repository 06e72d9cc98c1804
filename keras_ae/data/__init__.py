"""Images for training, as ``tf.data`` pipelines: from arrays, IDX files,
tensorflow-datasets and image folders.

Every route ends in an ``ImageData``: batched ``(input, target)`` pairs of
float32 images in [0, 1], split into train, validation and test. ``load``
picks the route from a string (a folder, ``tfds:NAME``, Fashion-MNIST's IDX
files by default); ``from_arrays``, ``from_idx``, ``from_tfds`` and
``from_directory`` are the routes themselves::

    from keras_ae import data
    images = data.from_directory("photos/", image_size=(64, 64), resize="pad")
"""

from keras_ae.public import lazy_exports

# Module (in this package) -> the public names it defines.
_EXPORTS = {
    "sources": ("FASHION_MNIST_DIR", "MissingDataError", "from_arrays", "from_idx", "load",
                "load_idx_folder", "read_idx", "write_idx"),
    "folders": ("find_images", "from_directory"),
    "tfds": ("from_tfds",),
    "source": ("DataSource",),
    "pipelines": ("ImageData", "SPLITS", "Split", "class_labels", "keep_classes", "labels_of"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
