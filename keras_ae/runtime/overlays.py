"""An anomaly map laid over its image, drawn with Pillow alone: the picture
``keras-ae predict --anomaly`` writes in the serving install (no matplotlib).

The image on the left; on the right a dimmed grey copy under the map,
coloured black, red, yellow from the map's lowest to its highest value and
opaque where it is hot, so the image shows through where the model found
nothing; the score and the verdict above. Small images are enlarged
(nearest neighbour, every pixel a square) so that a 28x28 map is readable.
The report pictures of ``keras-ae anomaly`` (several images on one colour
scale) are ``keras_ae.anomaly.save_map_overlays``, drawn with matplotlib.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from keras_ae import files
from keras_ae.runtime.pixels import to_unit_float

MIN_HEIGHT = 224  # pixels of each panel, at least: small images are enlarged
TITLE_HEIGHT = 18


def save_overlay(image, heat_map, path, *, score, threshold=None):
    """Saves one image beside its anomaly map as a PNG (atomically).

    Args:
        image: ``(H, W)`` or ``(H, W, C)``, uint8 or floats in [0, 1].
        heat_map: ``(H, W)`` anomaly map of that image.
        path: the PNG to write.
        score: the image's anomaly score, written above it.
        threshold: with it, the title says ``anomaly`` or ``normal``.

    Returns:
        ``path`` as a string.

    Example::

        scores, maps = detector.scores_and_maps(batch)
        save_overlay(batch[0], maps[0], "part_anomaly_map.png", score=scores[0],
                     threshold=detector.threshold)
    """
    image = to_unit_float(np.asarray(image))
    grey = image if image.ndim == 2 else image.mean(axis=-1)
    shown = image if image.ndim == 2 or image.shape[-1] != 1 else image[..., 0]
    heat = np.asarray(heat_map, np.float64)
    if heat.shape != grey.shape:
        raise ValueError(f"the map is {heat.shape}, its image {grey.shape}: expected the "
                         f"image's height and width")  # a caller's bug, not a user's
    low, high = float(heat.min()), float(heat.max())
    heat = np.clip((heat - low) / (high - low if high > low else 1.0), 0, 1)

    def pixels(values):
        return Image.fromarray(np.round(np.clip(values, 0, 1) * 255).astype(np.uint8))

    left = pixels(shown).convert("RGB")
    colours = ImageOps.colorize(pixels(heat), black="black", mid="red", white="yellow")
    right = Image.composite(colours, pixels(grey * 0.6).convert("RGB"),
                            pixels(0.25 + 0.75 * heat))
    scale = max(1, -(-MIN_HEIGHT // grey.shape[0]))
    size = (grey.shape[1] * scale, grey.shape[0] * scale)
    picture = Image.new("RGB", (2 * size[0] + 4, size[1] + TITLE_HEIGHT), "white")
    picture.paste(left.resize(size, Image.Resampling.NEAREST), (0, TITLE_HEIGHT))
    picture.paste(right.resize(size, Image.Resampling.NEAREST), (size[0] + 4, TITLE_HEIGHT))
    verdict = ("" if threshold is None else
               f": {'anomaly' if score > threshold else 'normal'} (threshold {threshold:.4f})")
    ImageDraw.Draw(picture).text((2, 2), f"score {float(score):.4f}{verdict}", fill="black")
    return files.write_atomically(path, lambda tmp: picture.save(tmp, format="PNG"))
