"""Using what the encoder learned: features, clusters, anomaly scores,
denoising and generation.

An autoencoder is trained without labels; its code is a compressed
description of each image, and its reconstruction error says how familiar
an image is. These functions take a trained autoencoder: a Keras model from
``keras_ae``'s builders, or an exported model opened with
``keras_ae.serving.OnnxAutoencoder`` (no TensorFlow needed then, except to
read ``tf.data`` datasets):

- ``linear_probe``: a softmax classifier (multinomial logistic regression)
  trained on the frozen encoder's codes with the labels; test accuracy.
- ``cluster``: k-means on the codes, scored against the labels (adjusted
  Rand index, normalized mutual information); ``save_code_map`` draws them.

Anomaly detection is ``keras_ae.anomaly``'s.

Images the autoencoder makes (denoised, interpolated, sampled) are in
``keras_ae.generation``.

Labeled data comes as ``(images, labels)`` arrays, or as a ``tf.data``
dataset of ``(images, labels)`` batches such as
``keras_ae.data.load().labeled("test")``.
"""

import numpy as np

from keras_ae import pixels
from keras_ae.errors import InputError

DEFAULT_BATCH = 256


# --- data ---------------------------------------------------------------------

def labeled_arrays(data, name="data"):
    """``(images, labels)`` as numpy arrays from arrays or a labeled dataset.

    Args:
        data: a tuple ``(images, labels)`` of arrays, or a ``tf.data.Dataset``
            of ``(images, labels)`` batches (``ImageData.labeled(split)``).
        name: how to call the data in error messages.

    Returns:
        ``(images, labels)``: images as given (uint8 or float in [0, 1]),
        ``(N, H, W, C)``; labels as int64 ``(N,)``.

    Raises:
        ValueError: for data without labels, or labels whose count differs
            from the images'.

    Example:

    >>> images, labels = labeled_arrays((np.zeros((3, 4, 4)), [0, 1, 1]))
    >>> images.shape, labels.tolist()
    ((3, 4, 4, 1), [0, 1, 1])
    """
    if isinstance(data, tuple) and len(data) == 2:
        images, labels = (np.asarray(part) for part in data)
    elif _is_dataset(data):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise InputError(
                f"{name} must yield (images, labels) batches, got elements "
                f"{spec}: the labels are missing. Use ImageData.labeled(split).")
        parts = list(data.as_numpy_iterator())
        if not parts:
            raise InputError(f"{name} holds no images.")
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
    else:
        raise InputError(
            f"{name} must be (images, labels) arrays or a tf.data.Dataset of "
            f"(images, labels) batches, got {type(data).__name__}: the labels "
            f"are needed.")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if labels.ndim != 1 or len(labels) != len(images) or not len(images):
        raise InputError(
            f"{name} must hold one label per image: {len(images)} images of "
            f"shape {images.shape[1:]}, labels of shape {labels.shape}.")
    if labels.dtype.kind not in "iu":
        raise InputError(f"{name}'s labels must be integers, got {labels.dtype}.")
    return images, labels.astype(np.int64)


def _is_dataset(value):
    import sys
    tf = sys.modules.get("tensorflow")  # a dataset implies TensorFlow is loaded
    return tf is not None and isinstance(value, tf.data.Dataset)


# --- codes --------------------------------------------------------------------

def encode(model, images, batch_size=DEFAULT_BATCH):
    """The codes of ``images``, one flat row per image.

    Args:
        model: a Keras autoencoder from ``keras_ae``'s builders (its nested
            ``encoder`` runs; an unpool encoder's argmax indices are not part
            of the code), or a ``keras_ae.serving.OnnxAutoencoder``.
        images: ``(N, H, W, C)`` (or ``(N, H, W)``) uint8 or float in [0, 1].
        batch_size: images per call.

    Returns:
        float32 array ``(N, code_floats)``.

    Raises:
        ValueError: for a model without an encoder.

    Example:

    >>> model = keras_ae.build_dense_autoencoder((4, 4, 1), code_size=3)
    >>> encode(model, np.zeros((5, 4, 4), "float32")).shape
    (5, 3)
    """
    images = as_images(images)
    if not hasattr(model, "can_encode") and not hasattr(model, "get_layer"):
        raise InputError(
            f"model {model!r} is not an autoencoder; expected one from "
            "keras_ae's builders or an OnnxAutoencoder.")
    check_image_shape(model, images)
    if _is_onnx(model):
        if not model.can_encode:
            raise InputError(f"{model!r} was exported without encoder.onnx; "
                             "export the model again to get its codes.")
        codes = model.encode(images, batch_size=batch_size)
    else:
        try:
            encoder = model.get_layer("encoder")
        except ValueError:
            raise InputError(
                f"model {getattr(model, 'name', model)!r} has no nested 'encoder' "
                "model; expected an autoencoder from keras_ae's builders or an "
                "OnnxAutoencoder.") from None
        outputs = encoder.predict(images, batch_size=batch_size, verbose=0)
        codes = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    codes = np.asarray(codes, np.float32)
    return codes.reshape(len(codes), -1)


def flat_pixels(images):
    """Raw pixels as features: ``(N, H * W * C)`` float32 in [0, 1]."""
    images = pixels.to_unit_float(np.asarray(images))
    return images.reshape(len(images), -1)


# --- a linear probe -------------------------------------------------------------

def probe_features(train_features, train_labels, test_features, test_labels, *,
                   max_iter=1000, regularization=1.0):
    """Test accuracy of a softmax classifier trained on given features.

    A linear probe: the features are standardized with the training set's
    mean and standard deviation, then one softmax layer (multinomial
    logistic regression, scikit-learn's L-BFGS, run to convergence) learns
    the labels. Trained to convergence rather than for a number of epochs,
    so that features of different sizes (codes, raw pixels) are compared
    fairly.

    Args:
        train_features, test_features: ``(N, D)`` arrays.
        train_labels, test_labels: integer class labels ``(N,)``.
        max_iter: L-BFGS iterations at most.
        regularization: inverse strength of the L2 penalty (scikit-learn's
            ``C``).

    Returns:
        A dict: ``test_accuracy``, ``train_accuracy``, ``features`` (D),
        ``classes``, ``train_images``, ``test_images``.

    Raises:
        ValueError: for mismatched shapes or fewer than two classes.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_features = np.asarray(train_features, np.float32)
    test_features = np.asarray(test_features, np.float32)
    if train_features.ndim != 2 or test_features.shape[1:] != train_features.shape[1:]:
        raise InputError(
            f"features must be (N, D) with the same D for train and test, got "
            f"{train_features.shape} and {test_features.shape}.")
    if len(np.unique(train_labels)) < 2:
        raise InputError("the training labels hold fewer than two classes.")
    probe = make_pipeline(StandardScaler(),
                          LogisticRegression(C=regularization, max_iter=max_iter))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(train_features, train_labels)
    return {"test_accuracy": float(probe.score(test_features, test_labels)),
            "train_accuracy": float(probe.score(train_features, train_labels)),
            "converged": not any(issubclass(w.category, ConvergenceWarning)
                                 for w in caught),
            "features": int(train_features.shape[1]),
            "classes": len(np.unique(train_labels)),
            "train_images": len(train_features), "test_images": len(test_features)}


def linear_probe(model, train, test, *, max_iter=1000, regularization=1.0,
                 batch_size=DEFAULT_BATCH):
    """Freezes the encoder and trains a softmax classifier on its codes.

    Args:
        model: a trained autoencoder (Keras, from keras_ae's builders) or a
            ``keras_ae.serving.OnnxAutoencoder``; only its encoder runs, and
            its weights do not change.
        train, test: labeled images: ``(images, labels)`` arrays or a dataset
            of ``(images, labels)`` batches (``ImageData.labeled("train")``);
            a few labels are enough, that is the point.
        max_iter, regularization: as for ``probe_features``.
        batch_size: images per encoder call.

    Returns:
        ``probe_features``' dict for the codes.

    Raises:
        ValueError: for data without labels, or a model without an encoder.

    Example::

        data = keras_ae.data.load()
        linear_probe(model, data.labeled("train"), data.labeled("test"))
        # {'test_accuracy': 0.8..., 'features': 196, ...}
    """
    train_images, train_labels = labeled_arrays(train, "train")
    test_images, test_labels = labeled_arrays(test, "test")
    return probe_features(encode(model, train_images, batch_size), train_labels,
                          encode(model, test_images, batch_size), test_labels,
                          max_iter=max_iter, regularization=regularization)


# --- clustering -----------------------------------------------------------------

def cluster_features(features, labels, *, clusters=None, seed=0):
    """k-means on features, scored against the labels.

    Args:
        features: ``(N, D)`` array.
        labels: the true classes ``(N,)``, used only to score.
        clusters: k; defaults to the number of classes in ``labels``.
        seed: seeds k-means' initialisation.

    Returns:
        A dict: ``adjusted_rand_index`` (0 for chance, 1 for the labels'
        partition), ``normalized_mutual_information`` (0 to 1),
        ``clusters``, ``features``, ``images``, and ``assignments`` (the
        cluster of each image, a numpy array).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    features = np.asarray(features, np.float32)
    k = int(clusters or len(np.unique(labels)))
    if not 2 <= k <= len(features):
        raise InputError(
            f"clusters must be between 2 and the number of images "
            f"({len(features)}), got {k}.")
    assignments = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(features)
    return {"adjusted_rand_index": float(adjusted_rand_score(labels, assignments)),
            "normalized_mutual_information": float(
                normalized_mutual_info_score(labels, assignments)),
            "clusters": k, "features": int(features.shape[1]),
            "images": len(features), "assignments": assignments}


def cluster(model, data, *, clusters=None, seed=0, batch_size=DEFAULT_BATCH):
    """k-means on the encoder's codes, scored against the labels.

    Args:
        model: a trained autoencoder (Keras or ``OnnxAutoencoder``).
        data: labeled images, as for ``linear_probe``.
        clusters: k; defaults to the number of classes.
        seed: seeds k-means.
        batch_size: images per encoder call.

    Returns:
        ``cluster_features``' dict for the codes.

    Example::

        cluster(model, keras_ae.data.load().labeled("test"))
        # {'adjusted_rand_index': 0.3..., 'normalized_mutual_information': 0.5..., ...}
    """
    images, labels = labeled_arrays(data, "data")
    return cluster_features(encode(model, images, batch_size), labels,
                            clusters=clusters, seed=seed)


def save_code_map(features, labels, path, title="Codes, PCA", class_names=None):
    """Saves a PNG of the codes projected to 2-D (PCA), coloured by label.

    Args:
        features: ``(N, D)`` codes (or any features).
        labels: integer labels ``(N,)``.
        path: the PNG to write (atomically).
        title: the figure's title.
        class_names: optional names for the legend, indexed by label.

    Returns:
        ``path`` as a string.
    """
    from matplotlib.figure import Figure
    from sklearn.decomposition import PCA

    from keras_ae.files import save_png

    points = PCA(n_components=2, random_state=0).fit_transform(
        np.asarray(features, np.float32))
    figure = Figure(figsize=(6.4, 5.2), dpi=100)
    axes = figure.subplots()
    for label in np.unique(labels):
        mine = labels == label
        name = class_names[label] if class_names is not None else str(label)
        axes.scatter(points[mine, 0], points[mine, 1], s=4, alpha=0.6, label=name)
    axes.set_title(title)
    axes.set_xlabel("first principal component")
    axes.set_ylabel("second principal component")
    axes.legend(markerscale=3, fontsize="small", ncol=2 if len(np.unique(labels)) > 5
                else 1)
    figure.tight_layout()
    return save_png(figure, path)


# --- models of both kinds: Keras and onnxruntime --------------------------------

def _is_onnx(model):
    return hasattr(model, "can_encode") and hasattr(model, "reconstruct")


def as_images(images):
    """``images`` as float32 ``(N, H, W, C)`` in [0, 1] (a channel axis
    added to grey ``(N, H, W)``)."""
    images = pixels.to_unit_float(np.asarray(images))
    return images[..., np.newaxis] if images.ndim == 3 else images


def check_image_shape(model, images):
    """A one-line ValueError unless ``images`` have the shape ``model`` takes."""
    try:
        expected = tuple(model.input_shape if _is_onnx(model) else model.input_shape[1:])
    except (AttributeError, ValueError):  # a subclassed model: no fixed shape
        return
    if tuple(images.shape[1:]) != expected:
        raise InputError(
            f"{getattr(model, 'name', model)!r} takes images of shape {expected}, "
            f"got images of shape {tuple(images.shape[1:])}.")


def reconstruct(model, images, batch_size=DEFAULT_BATCH):
    """The model's reconstructions of ``images``, float32 ``(N, H, W, C)``."""
    images = as_images(images)
    check_image_shape(model, images)
    if _is_onnx(model):
        return np.asarray(model.reconstruct(images, batch_size=batch_size), np.float32)
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0),
                      np.float32)


def check_decoder_runs_alone(model):
    """Raises a ValueError unless ``model``'s decoder can decode codes alone
    (an unpool decoder needs the encoder's pooling positions)."""
    if _is_onnx(model):
        alone, why = model.can_decode, "it was exported without decoder.onnx"
    else:
        inputs = len(model.get_layer("decoder").inputs)
        alone, why = inputs == 1, f"its decoder takes {inputs} inputs"
    if not alone:
        raise InputError(
            f"{getattr(model, 'name', model)!r} has no decoder that runs alone "
            f"({why}): an unpool decoder after max pooling needs the "
            "encoder's pooling positions, which only an image gives. Generate "
            "with a transpose, upsample, average-pooling or dense model.")


def decode(model, codes, batch_size=DEFAULT_BATCH):
    """Images decoded from flat codes ``(N, code_size)``, float32
    ``(N, H, W, C)``; for decoders that run alone."""
    check_decoder_runs_alone(model)
    if _is_onnx(model):
        codes = codes.reshape(len(codes), *model.code_shape)
        return np.asarray(model.decode(codes, batch_size=batch_size), np.float32)
    decoder = model.get_layer("decoder")
    codes = codes.reshape(len(codes), *decoder.inputs[0].shape[1:])
    return np.asarray(decoder.predict(codes, batch_size=batch_size, verbose=0),
                      np.float32)
