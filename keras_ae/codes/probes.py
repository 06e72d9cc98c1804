"""What the codes are worth as features: a linear probe and k-means.

- ``linear_probe``: a softmax classifier (multinomial logistic regression)
  trained on the frozen encoder's codes with the labels; test accuracy.
- ``cluster``: k-means on the codes, scored against the labels (adjusted
  Rand index, normalized mutual information); ``save_code_map`` draws them.

Both take a trained autoencoder, Keras or ONNX (``keras_ae.codes.adapter``),
and labeled data as ``(images, labels)`` arrays or a ``tf.data`` dataset.
"""

import numpy as np

from keras_ae.codes.adapter import DEFAULT_BATCH, encode, labeled_arrays
from keras_ae.errors import InputError
from keras_ae.runtime import pixels

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
            ``keras_ae.runtime.onnx_autoencoder.OnnxAutoencoder``; only its encoder runs, and
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

        data = keras_ae.data.sources.load()
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

        cluster(model, keras_ae.data.sources.load().labeled("test"))
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
