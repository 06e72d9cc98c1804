"""Pictures of anomaly detection: where the scores fall, and where in each
image the detector sees the anomaly."""

import numpy as np

from keras_ae.errors import InputError

from keras_ae.files import save_png


def save_score_histogram(scores, anomalous, threshold, path,
                         title="Anomaly scores", xlabel="score"):
    """Saves a PNG: histograms of normal and anomalous images' scores, and
    the threshold.

    Args:
        scores: per-image anomaly scores ``(N,)``.
        anomalous: ``(N,)`` booleans, ``True`` for the anomalies.
        threshold: drawn as a vertical line.
        path: the PNG to write (atomically).
        title, xlabel: the figure's title and x-axis label.

    Returns:
        ``path`` as a string.
    """
    from matplotlib.figure import Figure

    scores, anomalous = np.asarray(scores, np.float64), np.asarray(anomalous, bool)
    low, high = min(scores.min(), threshold), max(scores.max(), threshold)
    bins = np.linspace(low, high + 1e-9, 60)
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.subplots()
    axes.hist(scores[~anomalous], bins=bins, alpha=0.6, label="normal")
    axes.hist(scores[anomalous], bins=bins, alpha=0.6, label="anomalies")
    axes.axvline(threshold, color="black", linestyle="--", label="threshold")
    axes.set_yscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("images")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    return save_png(figure, path)


def save_map_overlays(images, maps, scores, path, *, threshold=None, masks=None,
                      labels=None, title=None, scale="shared"):
    """Saves a PNG: each image beside its anomaly map laid over it (and its
    defect mask's outline in cyan, where given), titled with its score.

    The heat map's colours run from the smallest value of all the maps shown
    to their 99.5th percentile (values above it in the top colour), so
    images compare with each other and a faint defect is not drowned by a
    large one: the hotter, the more the model missed there.

    Args:
        images: ``(N, H, W, C)`` in [0, 1] (or uint8), grey or RGB.
        maps: ``(N, H, W)`` anomaly maps.
        scores: ``(N,)`` image scores, printed above each pair.
        path: the PNG to write (atomically).
        threshold: marks scores above it "anomaly" in the titles.
        masks: optional ``(N, H, W)`` bool defect masks, outlined in cyan.
        labels: optional ``(N,)`` text under each score (a class or kind).
        title: the figure's title.
        scale: ``"shared"`` (one colour scale for all, as above) or
            ``"each"``: each map from its own smallest value to its largest,
            to see where within each image (no colour bar then).

    Returns:
        ``path`` as a string.
    """
    import matplotlib
    from matplotlib.figure import Figure

    from keras_ae.runtime.pixels import to_unit_float

    images = to_unit_float(np.asarray(images))
    if images.ndim == 3:
        images = images[..., np.newaxis]
    maps = np.asarray(maps, np.float64)
    # the top of the scale at the 99.5th percentile, not the largest value:
    # one large dark region would otherwise leave a thin crack elsewhere in
    # the darkest colours (values above it show at the top colour)
    if scale not in ("shared", "each"):
        raise InputError(f"scale must be 'shared' or 'each', got {scale!r}.")
    axes = (1, 2) if scale == "each" else None
    low = maps.min(axis=axes, keepdims=True)
    high = (maps.max(axis=axes, keepdims=True) if scale == "each"
            else np.percentile(maps, 99.5, keepdims=True))
    heat = np.clip((maps - low) / np.where(high > low, high - low, 1.0), 0, 1)
    count = len(images)
    columns = min(count, 4)
    rows = -(-count // columns)
    figure = Figure(figsize=(columns * 3.2 + 0.8, rows * 1.75 + (0.5 if title else 0.1)),
                    dpi=100, layout="constrained")
    grid = figure.subplots(rows, 2 * columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    colours = matplotlib.colormaps["inferno"]
    for index in range(count):
        left, right = grid[index // columns, 2 * (index % columns):][:2]
        shown = images[index][..., 0] if images.shape[-1] == 1 else images[index]
        left.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        # The map over a dimmed grey copy, opaque where it is hot: the
        # image shows through where the model found nothing.
        overlay = colours(heat[index])
        overlay[..., 3] = 0.25 + 0.75 * heat[index]
        right.imshow(images[index].mean(-1) * 0.6, cmap="gray", vmin=0, vmax=1,
                     interpolation="nearest")
        right.imshow(overlay, interpolation="nearest")
        if masks is not None and np.asarray(masks[index]).any():
            right.contour(np.asarray(masks[index], float), levels=[0.5],
                          colors="cyan", linewidths=1.0)
        verdict = ("" if threshold is None else
                   ", anomaly" if scores[index] > threshold else ", normal")
        text = f"score {scores[index]:.2f}{verdict}"
        if labels is not None:
            text = f"{labels[index]}: {text}"
        left.set_title(text, fontsize=8, loc="left")
    if scale == "shared":
        low, high = float(low.ravel()[0]), float(high.ravel()[0])
        mappable = matplotlib.cm.ScalarMappable(
            matplotlib.colors.Normalize(low, high if high > low else low + 1e-9), colours)
        figure.colorbar(mappable, ax=grid[:, -1].tolist(), shrink=0.9, label="anomaly map",
                        extend="max")
    if title:
        figure.suptitle(title)
    return save_png(figure, path)
