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

# Public name -> the module (in this package) that defines it.
_EXPORTS = {
    "FASHION_MNIST_DIR": "sources",
    "MissingDataError": "sources",
    "from_arrays": "sources",
    "from_idx": "sources",
    "load": "sources",
    "load_idx_folder": "sources",
    "read_idx": "sources",
    "write_idx": "sources",
    "find_images": "folders",
    "from_directory": "folders",
    "from_tfds": "tfds",
    "DataOrigin": "origin",
    "DataRequest": "origin",
    "ImageData": "pipelines",
    "SPLITS": "pipelines",
    "Split": "pipelines",
    "class_labels": "pipelines",
    "keep_classes": "pipelines",
    "labels_of": "pipelines",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
