"""How good is an autoencoder: reconstruction scores and pictures.

``evaluate`` scores a model's reconstructions by mean squared error, PSNR and
SSIM; ``reconstruction_errors`` gives one MSE per image (a high one means the
model has seen nothing like that image, the basis of anomaly detection).
``save_reconstruction_grid`` and ``save_loss_curves`` draw PNGs for people to
look at.

Every function takes its data in any of three forms:

- a ``tf.data.Dataset`` of batched ``(input, target)`` pairs (or of batched
  images alone, which are then both input and target);
- a tuple of numpy arrays ``(inputs, targets)``;
- a numpy array of images, which are both input and target.

Images are float ``(batch, height, width, channels)`` with values in [0, 1].
In denoising mode the input is a noisy copy of the target, and every score
compares the reconstruction with the clean target.

Pictures are drawn on a ``matplotlib.figure.Figure`` (the Agg renderer, no
display needed) and written atomically: to a temporary file in the same
folder, then renamed into place, so a failed save never leaves half a file
where a good one was. matplotlib is imported only when drawing.

Example:

>>> import keras
>>> identity = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Identity()])
>>> images = np.random.default_rng(0).uniform(size=(4, 8, 8, 1))
>>> scores = evaluate(identity, images)
>>> scores["mse"], scores["psnr"], round(scores["ssim"], 6), scores["images"]
(0.0, inf, 1.0, 4)
"""

import csv
import errno
import math
import os

import numpy as np
import tensorflow as tf

from keras_ae import files
from keras_ae.errors import positive_int
from keras_ae.errors import InputError
from keras_ae.runtime.pixels import per_image_mse

SSIM_FILTER_SIZE = 11  # tf.image.ssim's default Gaussian window
CELL_INCHES = 1.2  # width of one image in a grid: a digit's strokes show
ROWS = ("original", "noisy input", "reconstruction")


# --- data ------------------------------------------------------------------

def _checked_images(what, images):
    """``images`` as a float32 ``(batch, H, W, C)`` array with values in [0, 1]."""
    try:
        images = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(
            f"{what} must be numeric image arrays, got {type(images).__name__}."
        ) from None
    if images.ndim != 4:
        raise InputError(
            f"{what} must be batches of images shaped (batch, height, width, "
            f"channels), got shape {images.shape}. (Batch a tf.data.Dataset; "
            f"give grey images a channel axis with images[..., None].)")
    # NaN fails both comparisons, so it is caught here too.
    if images.size and not (images.min() >= 0.0 and images.max() <= 1.0):
        found = ("NaN" if np.isnan(images).any()
                 else f"values from {images.min():g} to {images.max():g}")
        raise InputError(
            f"{what} must have values in [0, 1], got {found}. "
            f"(Scale 8-bit images by 1/255.)")
    return images


def _checked_pair(inputs, targets):
    targets = _checked_images("targets", targets)
    inputs = _checked_images("inputs", inputs)
    if len(inputs) != len(targets):
        raise InputError(
            f"inputs and targets must hold the same number of images, got "
            f"{len(inputs)} inputs and {len(targets)} targets.")
    return inputs, targets


def _dataset_pair(element):
    """One dataset element, ``(input, target)`` or images alone, as a pair."""
    if isinstance(element, (tuple, list)):
        if len(element) == 1:
            element = element[0]
        elif len(element) == 2:
            return _checked_pair(*element)
        else:
            raise InputError(
                f"dataset elements must be (input, target) pairs or images, "
                f"got a tuple of {len(element)} items.")
    return _checked_pair(element, element)


def _batches(data, batch_size):
    """Yields ``(inputs, targets)`` float32 batches from any accepted data.

    Datasets come in the batches they were made with; arrays are cut into
    ``batch_size`` images (converted batch by batch, to spare memory).
    """
    if isinstance(data, tf.data.Dataset):
        for element in data:
            yield _dataset_pair(element)
        return
    if isinstance(data, tuple):
        if len(data) != 2:
            raise InputError(
                f"data as a tuple must be (inputs, targets), got a tuple of "
                f"{len(data)} items.")
        inputs, targets = data
    elif isinstance(data, (np.ndarray, list, tf.Tensor)):
        inputs = targets = data
    else:
        raise InputError(
            f"data must be a tf.data.Dataset, a tuple (inputs, targets) of "
            f"arrays, or an array of images, got {type(data).__name__}.")
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    if len(inputs) != len(targets):
        raise InputError(
            f"inputs and targets must hold the same number of images, got "
            f"{len(inputs)} inputs and {len(targets)} targets.")
    for start in range(0, len(targets), batch_size):
        stop = start + batch_size
        yield _checked_pair(inputs[start:stop], targets[start:stop])


# --- model -----------------------------------------------------------------

def _static_shape(model, attribute):
    """Per-image shape of the model's ``inputs``/``outputs``, or None if unknown."""
    try:
        tensors = getattr(model, attribute, None)
    except (AttributeError, ValueError):  # a subclassed model not yet built
        return None
    if not tensors:
        return None
    if attribute == "outputs" and len(tensors) != 1:
        raise InputError(
            f"the model must have one output, the reconstruction, got "
            f"{len(tensors)} outputs.")
    return tuple(tensors[0].shape[1:]) if len(tensors) == 1 else None


def _check_shape(what, model_shape, data_shape):
    """Raises unless the model's per-image shape fits the data's (None: any)."""
    if model_shape is None:
        return
    if len(model_shape) != len(data_shape) or any(
            m is not None and m != d for m, d in zip(model_shape, data_shape)):
        raise InputError(
            f"the model {what} images of shape {model_shape}, but the data's "
            f"images have shape {tuple(data_shape)}.")


def _predict(model, inputs):
    """The model's reconstruction of one batch, as a float32 array."""
    if hasattr(model, "predict_on_batch"):  # a keras.Model: compiled, fast
        output = model.predict_on_batch(inputs)
    else:  # a layer or any callable
        output = model(inputs)
    if isinstance(output, (list, tuple, dict)):
        raise InputError(
            f"the model must return one array, the reconstruction, got a "
            f"{type(output).__name__} of {len(output)}.")
    # float32 even when the model computes (or returns) float16
    return np.asarray(output, dtype=np.float32)


def _reconstructions(model, data, batch_size):
    """Yields ``(inputs, targets, reconstructions)`` batch by batch, in order.

    Shapes are checked against the model's static shapes before each batch
    is predicted, so a model for other images fails on the first batch.
    """
    batch_size = positive_int("batch_size", batch_size)
    images = 0
    for inputs, targets in _batches(data, batch_size):
        if not len(targets):
            continue
        _check_shape("outputs", _static_shape(model, "outputs"), targets.shape[1:])
        _check_shape("takes", _static_shape(model, "inputs"), inputs.shape[1:])
        reconstructions = _predict(model, inputs)
        _check_shape("outputs", reconstructions.shape[1:], targets.shape[1:])
        images += len(targets)
        yield inputs, targets, reconstructions
    if not images:
        raise InputError("data must hold at least one image, got none.")


def _ssim(reconstructions, targets):
    """Per-image SSIM with a window no larger than the image (odd, as TF needs)."""
    height, width = targets.shape[1:3]
    size = min(SSIM_FILTER_SIZE, height, width)
    size -= 1 - size % 2
    return tf.image.ssim(reconstructions, targets, max_val=1.0,
                         filter_size=size).numpy()


# --- scores ----------------------------------------------------------------

def reconstruction_errors(model, data, batch_size=256):
    """Mean squared error of each image's reconstruction, in data order.

    Args:
        model: a ``keras.Model`` (or any callable) from input images to
            reconstructions of the targets' shape.
        data: a batched ``tf.data.Dataset`` of ``(input, target)`` pairs or of
            images, a tuple ``(inputs, targets)`` of arrays, or an array of
            images; values in [0, 1].
        batch_size: images per prediction for array data; a dataset is read
            in its own batches.

    Returns:
        A float64 array ``(N,)``: ``mean((reconstruction - target) ** 2)`` over
        each image's pixels and channels.

    Raises:
        ValueError: for data with no images, images outside [0, 1] or NaN,
            arrays that are not ``(batch, height, width, channels)``, or a
            model whose input or output shape differs from the images'.

    Example:

    >>> import keras
    >>> half = keras.Sequential([keras.Input((2, 2, 1)),
    ...                          keras.layers.Lambda(lambda x: 0 * x + 0.5)])
    >>> images = np.stack([np.zeros((2, 2, 1)), np.ones((2, 2, 1)) * 0.75])
    >>> reconstruction_errors(half, images).tolist()
    [0.25, 0.0625]
    """
    errors = [per_image_mse(reconstructions, targets)
              for _, targets, reconstructions in
              _reconstructions(model, data, batch_size)]
    return np.concatenate(errors)


def evaluate(model, data, batch_size=256):
    """MSE, PSNR and SSIM of the model's reconstructions, in one pass.

    Every score compares the reconstruction of each input with its target,
    so in denoising mode they measure how well the clean image came back.

    - ``mse``: mean over all pixels and channels of all images.
    - ``psnr``: mean over images of ``tf.image.psnr(..., max_val=1.0)``, in dB,
      i.e. ``10 * log10(1 / mse)`` per image. A perfect reconstruction has an
      MSE of 0 and a PSNR of ``inf`` (as ``tf.image.psnr`` and scikit-image
      say): no finite cap, which would pass it off as merely very good. One
      perfect image therefore makes the mean ``inf``.
    - ``ssim``: mean over images of ``tf.image.ssim(..., max_val=1.0)`` (1 for a
      perfect reconstruction). The Gaussian window is TF's default 11 pixels
      wide (sigma 1.5) but no larger than the image: ``min(11, H, W)``, made
      odd, since TF's default fails on images smaller than 11 pixels.

    Args:
        model, data, batch_size: as for ``reconstruction_errors``; a
            mixed-precision model is fine (its output is scored in float32).

    Returns:
        ``{"mse": float, "psnr": float, "ssim": float, "images": int}``.

    Raises:
        ValueError: as ``reconstruction_errors``.

    Example:

    >>> import keras
    >>> half = keras.Sequential([keras.Input((8, 8, 1)),
    ...                          keras.layers.Lambda(lambda x: 0 * x + 0.5)])
    >>> scores = evaluate(half, np.zeros((3, 8, 8, 1)))
    >>> scores["mse"], round(scores["psnr"], 4), scores["images"]
    (0.25, 6.0206, 3)
    """
    squared, values, psnr, ssim = 0.0, 0, [], []
    for _, targets, reconstructions in _reconstructions(model, data, batch_size):
        diff = reconstructions.astype(np.float64) - targets
        squared += float(np.sum(diff * diff))
        values += diff.size
        psnr.append(tf.image.psnr(reconstructions, targets, max_val=1.0).numpy())
        ssim.append(_ssim(reconstructions, targets))
    psnr, ssim = np.concatenate(psnr), np.concatenate(ssim)
    return {
        "mse": squared / values,
        "psnr": float(np.mean(psnr, dtype=np.float64)),
        "ssim": float(np.mean(ssim, dtype=np.float64)),
        "images": len(psnr),
    }


# --- pictures --------------------------------------------------------------

def _save_png(figure, path):
    """Writes ``figure`` to ``path`` atomically; returns ``path`` as a str."""
    files.save_png(figure, path)
    return os.fspath(path)


def _first_images(model, data, n):
    """The first ``n`` (or all, if fewer) inputs, targets and reconstructions."""
    batches = []
    for batch in _reconstructions(model, data, batch_size=n):
        batches.append(batch)
        if sum(len(targets) for _, targets, _ in batches) >= n:
            break  # predict no more than the grid shows
    return [np.concatenate(parts)[:n] for parts in zip(*batches)]


def _show(axes, image):
    if image.shape[-1] == 1:
        axes.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0,
                    interpolation="nearest")
    else:
        axes.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
    # Keep the frame (it holds the row label) but drop ticks and spines.
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_visible(False)


def save_reconstruction_grid(model, data, path, n=10, title=None):
    """Draws originals above their reconstructions, with each one's MSE.

    One column per image: the target on top, the noisy input in the middle
    when the inputs differ from the targets (denoising mode), and the
    reconstruction at the bottom with its MSE beneath. Grey images are drawn
    in grey, colour images as RGB; each column is about 1.2 inches wide.
    Only the first ``n`` images are predicted.

    Args:
        model: a ``keras.Model`` (or any callable) from input images to
            reconstructions of the targets' shape.
        data: as for ``evaluate``; the first ``n`` images are shown.
        path: where to write the PNG (always PNG, whatever the suffix); its
            folder is created if missing, an existing file is replaced.
        n: how many images to show, at most as many as the data holds.
        title: optional title above the grid.

    Returns:
        ``path`` as a str.

    Raises:
        ValueError: as ``evaluate``; for a non-positive ``n``; for images
            with other than 1 (grey) or 3 (RGB) channels.

    Example:

    .. code-block:: python

        model = keras_ae.build_conv_autoencoder((28, 28, 1))
        ...  # train it
        save_reconstruction_grid(model, (noisy_test, test), "grid.png", n=8)
    """
    n = positive_int("n", n)
    inputs, targets, reconstructions = _first_images(model, data, n)
    height, width, channels = targets.shape[1:]
    if channels not in (1, 3):
        raise InputError(
            f"a grid can show grey (1 channel) or RGB (3 channel) images, got "
            f"{channels} channels.")
    noisy = inputs.shape != targets.shape or not np.array_equal(inputs, targets)
    rows = [targets, inputs, reconstructions] if noisy else [targets, reconstructions]
    labels = ROWS if noisy else (ROWS[0], ROWS[2])
    errors = per_image_mse(reconstructions, targets)

    from matplotlib.figure import Figure

    columns = len(targets)
    cell = (CELL_INCHES, CELL_INCHES * height / width)
    # room for the row labels, the MSE line and the title; never so narrow
    # that a title is cut off
    size = (max(cell[0] * columns + 0.4, 3.0),
            cell[1] * len(rows) + 0.3 + (0.4 if title else 0.0))
    figure = Figure(figsize=size, layout="constrained")
    grid = figure.subplots(len(rows), columns, squeeze=False)
    for row, (label, images) in enumerate(zip(labels, rows)):
        for column in range(columns):
            _show(grid[row, column], images[column])
        grid[row, 0].set_ylabel(label, fontsize=9)
    for column, error in enumerate(errors):
        grid[-1, column].set_xlabel(f"MSE {error:.4f}", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save_png(figure, path)


# --- loss curves -----------------------------------------------------------

def _csv_history(path):
    """CSVLogger's file as ``(epochs, {column: values})``; "NA" cells are NaN."""
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, "no training log CSV at", path)
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        columns = reader.fieldnames or []
    logs = {name: [_float_or_nan(row[name]) for row in rows]
            for name in columns if name != "epoch"}
    epochs = None
    if "epoch" in columns:
        epochs = [_float_or_nan(row["epoch"]) + 1 for row in rows]  # 0-based
    return epochs, logs


def _float_or_nan(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _history_logs(history):
    """Any accepted history as ``(1-based epochs, {name: float64 array})``."""
    epochs = None
    if isinstance(history, (str, os.PathLike)):
        epochs, logs = _csv_history(os.fspath(history))
    elif isinstance(getattr(history, "history", None), dict):  # keras History
        logs = history.history
        epochs = [e + 1 for e in getattr(history, "epoch", [])]  # 0-based
    elif isinstance(history, dict):
        logs = history
    else:
        raise InputError(
            f"history must be a keras History, a dict of lists or a CSVLogger "
            f"CSV path, got {type(history).__name__}.")
    if "loss" not in logs:
        raise InputError(
            f"history must have a 'loss' entry, got keys {sorted(logs)}.")
    logs = {name: _values(name, values) for name, values in logs.items()}
    count = len(logs["loss"])
    if not count:
        raise InputError("history must cover at least one epoch, got none.")
    if epochs is None or len(epochs) != count:
        epochs = range(1, count + 1)
    return np.asarray(epochs, dtype=np.float64), logs


def _values(name, values):
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(
            f"history[{name!r}] must be a list of numbers, got {values!r}."
        ) from None


def _metric_names(logs):
    """``loss`` first, then every name logged with a ``val_`` twin.

    Columns without a validation twin (such as keras_ae's ``train_seconds``)
    are bookkeeping, not curves to compare.
    """
    names = ["loss"]
    for key in logs:
        if key.startswith("val_") and key[len("val_"):] not in names:
            names.append(key[len("val_"):])
    return names


def save_loss_curves(history, path, title=None):
    """Plots training and validation curves per epoch, one panel per metric.

    The ``loss`` panel comes first, with ``loss`` and ``val_loss``; every other
    ``<name>``/``val_<name>`` pair gets its own panel (columns with no
    ``val_`` twin are left out). Epochs run from 1 on
    the x axis; the y axis is logarithmic (linear for a metric with values
    of 0 or below, which a log scale cannot show). Missing values (CSVLogger's
    "NA") leave gaps.

    Args:
        history: a ``keras.callbacks.History`` (what ``fit`` returns), a dict
            of per-epoch lists such as ``history.history``, or the path of a
            comma-separated CSV with 0-based ``epoch`` numbers, as written by
            ``keras.callbacks.CSVLogger`` and by keras_ae's ``history.csv``
            (columns ``epoch, loss, val_loss, ...``).
        path: where to write the PNG (always PNG, whatever the suffix); its
            folder is created if missing, an existing file is replaced.
        title: optional title above the panels.

    Returns:
        ``path`` as a str.

    Raises:
        ValueError: for a history without ``loss`` (the message lists the
            keys found), with no epochs, or with values that are not numbers.
        FileNotFoundError: for a CSV path that does not exist.

    Example:

    .. code-block:: python

        history = model.fit(x, x, validation_split=0.1, epochs=20,
                            callbacks=[keras.callbacks.CSVLogger("log.csv")])
        save_loss_curves(history, "loss.png")
        save_loss_curves("log.csv", "loss.png")  # the same, from the log
    """
    epochs, logs = _history_logs(history)
    names = _metric_names(logs)

    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(len(names), 3)
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(4.5 * columns, 3.2 * rows + (0.3 if title else 0.0)),
                    layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, name in zip(panels, names):
        curves = [(logs[key], label) for key, label in
                  ((name, "training"), (f"val_{name}", "validation"))
                  if key in logs]
        for values, label in curves:
            axes.plot(epochs[:len(values)], values, marker="o", markersize=3,
                      label=label)
        shown = np.concatenate([values for values, _ in curves])
        shown = shown[np.isfinite(shown)]
        if shown.size and shown.min() > 0:
            axes.set_yscale("log")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    for axes in panels[len(names):]:
        axes.set_visible(False)
    if title:
        figure.suptitle(title)
    return _save_png(figure, path)
