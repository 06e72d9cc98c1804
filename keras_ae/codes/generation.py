"""Images an autoencoder makes: denoised, interpolated between two images,
sampled from the codes' distribution.

These take a trained autoencoder, Keras or ``keras_ae.runtime.onnx_autoencoder
.OnnxAutoencoder``, like ``keras_ae.codes.adapter``:

- ``denoising_gain``: PSNR of noisy images and of a denoising model's
  output, against the clean images.
- ``interpolate`` and ``sample``: new images from the decoder alone (not
  for unpool decoders after max pooling, which need the encoder's pooling
  positions).
- ``save_image_grid``: any of them as a PNG.
"""

import numpy as np

from keras_ae.runtime import pixels
from keras_ae.codes.adapter import (DEFAULT_BATCH, as_images,
                                 check_decoder_runs_alone, decode, encode,
                                 reconstruct)
from keras_ae.errors import InputError


# --- denoising ----------------------------------------------------------------------

def add_noise(images, noise_factor, seed=0):
    """Gaussian noise of standard deviation ``noise_factor``, clipped to [0, 1]
    (as ``keras_ae.data.sources`` adds it), seeded."""
    return pixels.add_noise(as_images(images), noise_factor, seed)


def psnr(images, targets):
    """Mean over images of ``10 * log10(1 / MSE)`` in dB (pixels in [0, 1]),
    as ``keras_ae.training.evaluation.evaluate`` reports it."""
    mse = pixels.per_image_mse(as_images(images), as_images(targets))
    with np.errstate(divide="ignore"):
        return float(np.mean(10 * np.log10(1.0 / mse)))


def denoising_gain(model, clean_images, noise_factor, *, seed=0,
                   batch_size=DEFAULT_BATCH):
    """What a denoising autoencoder buys: PSNR before and after it.

    Args:
        model: an autoencoder trained with noisy inputs and clean targets
            (``keras-ae train --noise-factor F``).
        clean_images: test images, uint8 or float in [0, 1].
        noise_factor: standard deviation of the Gaussian noise to add.
        seed: seeds the noise.
        batch_size: images per model call.

    Returns:
        A dict: ``noise_factor``, ``noisy_psnr`` (noisy input against clean),
        ``denoised_psnr`` (the model's output against clean), ``gain_db``,
        ``images``.
    """
    clean = as_images(clean_images)
    noisy = add_noise(clean, noise_factor, seed)
    denoised = reconstruct(model, noisy, batch_size)
    before, after = psnr(noisy, clean), psnr(denoised, clean)
    return {"noise_factor": float(noise_factor), "noisy_psnr": before,
            "denoised_psnr": after, "gain_db": after - before, "images": len(clean)}


# --- generation -----------------------------------------------------------------------

def interpolate(model, first, second, steps=8, batch_size=DEFAULT_BATCH):
    """Images decoded from codes on the line between two images' codes.

    Args:
        model: an autoencoder whose decoder runs alone (not unpool).
        first, second: one image each, ``(H, W, C)`` or ``(H, W)``.
        steps: images in the sequence, both ends included.

    Returns:
        float32 ``(steps, H, W, C)``: ``first``'s reconstruction to
        ``second``'s.

    Raises:
        ValueError: for a decoder that cannot run alone, or ``steps < 2``.
    """
    if steps < 2:
        raise InputError(f"steps must be at least 2, got {steps!r}.")
    check_decoder_runs_alone(model)
    codes = encode(model, np.stack([_single(first), _single(second)]), batch_size)
    weights = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return decode(model, (1 - weights) * codes[0] + weights * codes[1], batch_size)


def _single(image):
    """One image, ``(H, W)`` or ``(H, W, C)``, as a batch of one."""
    return as_images(np.asarray(image)[np.newaxis])[0]


def sample(model, train_images, count=16, *, seed=0, batch_size=DEFAULT_BATCH):
    """New images: codes drawn from a Gaussian fitted to the training codes.

    Args:
        model: an autoencoder whose decoder runs alone (not unpool).
        train_images: images whose codes the Gaussian (mean and full
            covariance) is fitted to.
        count: images to generate.
        seed: seeds the draw.

    Returns:
        float32 ``(count, H, W, C)``.

    Raises:
        ValueError: for a decoder that cannot run alone.
    """
    check_decoder_runs_alone(model)  # before encoding many images
    codes = encode(model, train_images, batch_size).astype(np.float64)
    mean, covariance = codes.mean(axis=0), np.cov(codes, rowvar=False)
    drawn = np.random.default_rng(seed).multivariate_normal(
        mean, np.atleast_2d(covariance), size=count, method="eigh")
    return decode(model, drawn.astype(np.float32), batch_size)


def save_image_grid(images, path, columns=8, title=None):
    """Saves images (``(N, H, W, C)`` in [0, 1], grey or RGB) as a PNG grid."""
    from matplotlib.figure import Figure

    from keras_ae.files import save_png

    images = as_images(images)
    rows = -(-len(images) // columns)
    figure = Figure(figsize=(columns * 1.1, rows * 1.1 + (0.4 if title else 0)))
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, image in zip(grid.flat, images):
        axes.imshow(image[..., 0] if image.shape[-1] == 1 else image,
                    cmap="gray", vmin=0, vmax=1)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return save_png(figure, path)
