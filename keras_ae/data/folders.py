"""Folders of image files as ``ImageData``: ``keras_ae.data.sources.from_directory``.

Files are listed in Python, then decoded, converted and resized by
TensorFlow (``tf.io.decode_jpeg`` / ``decode_image`` and
``keras.ops.image.resize``) inside ``tf.data``, in parallel; the recipe is
``keras_ae.runtime.images``'s, which serving repeats with Pillow alone.

Layouts understood (hidden files and folders are skipped, and so are keras_ae
output folders inside it, such as a run folder: their pictures are no data):

- ``DIR/train/...`` and ``DIR/test/...``: the splits as given (the
  validation split is drawn from ``train/``); other entries of ``DIR`` are
  ignored;
- anything else: every image under ``DIR``, at any depth, with a seeded
  ``test_split`` drawn from them.

Under a split's folder (or ``DIR``), when every image lies in a first-level
subfolder, those subfolders are the classes (labels in sorted name order,
as Keras numbers them); a flat folder has no labels.

Before anything is trained, one parallel pass decodes every file to find
unreadable ones, the sizes and whether every image is grey; a second pass
(with ``cache="memory"`` or a file) fills the cache.
"""

import collections
import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from keras_ae import files
from keras_ae.data import decoding
from keras_ae.data import pipelines
from keras_ae.data.source import DataSource
from keras_ae.runtime import images as recipe
from keras_ae.runtime import tiles
from keras_ae.errors import InputError

__all__ = ["COLOR_MODES", "find_images", "from_directory"]

COLOR_MODES = ("auto", *recipe.COLOR_MODES)
# cache="auto" keeps the decoded images in memory up to this share of RAM.
MEMORY_CACHE_SHARE = 0.25
# Shuffle buffer for a split read back from a cache file, which replays
# one fixed order: a bound in bytes, so that memory does not grow with
# the folder.
FILE_CACHE_SHUFFLE_BYTES = 256 * 2 ** 20
# Seeds the test draw apart from the validation draw (which uses the seed
# alone, as keras_ae.data.sources.from_arrays does).
_TEST_DRAW = 7357
_SHOWN = 3  # files named in an error message


def _count(number, noun):
    """``"1 image"``, ``"2 images"``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


# --- finding the files -----------------------------------------------------

def _is_output_folder(path):
    """A folder a keras_ae command writes (its manifest or lock is there):
    a run folder inside the images is never read as images."""
    return any(os.path.lexists(os.path.join(path, name))
               for name in (files.MANIFEST_FILE, files.LOCK_FILE))


def _walk(root, seen, outputs):
    """``(image paths, other paths)`` under ``root``, sorted, hidden skipped,
    keras_ae's output folders left out (appended to ``outputs``).

    Symbolic links are followed, but only to what the walk has not seen:
    ``seen`` holds the real paths of folders and files met so far (across
    calls), so a link back into the tree neither loops nor counts a file
    twice.
    """
    images, others = [], []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        seen.add(os.path.realpath(folder))
        kept = []
        for name in sorted(d for d in subfolders if not d.startswith(".")):
            real = os.path.realpath(os.path.join(folder, name))
            if _is_output_folder(real):
                outputs.append(os.path.join(folder, name))
            elif real not in seen:
                seen.add(real)
                kept.append(name)
        subfolders[:] = kept
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            is_image = name.lower().endswith(recipe.IMAGE_EXTENSIONS)
            (images if is_image else others).append(path)
    return sorted(images), sorted(others)


def _classes(root, paths):
    """Each path's first-level folder under ``root``, or ``None`` for all
    when any image lies directly in ``root``."""
    folders = [os.path.relpath(path, root).split(os.sep) for path in paths]
    if any(len(parts) < 2 for parts in folders):
        return None
    return [parts[0] for parts in folders]


def find_images(directory):
    """The image files of a folder, by split, with their classes.

    Args:
        directory: the folder (see the module docstring for layouts).

    Returns:
        A dict: ``"splits"``, ``{"train": paths, "test": paths}`` for a
        ``train/`` + ``test/`` layout, else ``{"all": paths}``;
        ``"classes"``, the same keys with each path's class name (``None``
        for a split without class folders); ``"class_names"``, sorted, or
        ``None``; ``"others"``, files that are not images; ``"ignored"``,
        top-level entries a ``train/`` + ``test/`` layout leaves out;
        ``"output_folders"``, keras_ae output folders (run folders, say)
        inside it, never read as images.

    Raises:
        FileNotFoundError: if ``directory`` does not exist.
        ValueError: if it is not a folder, or holds no image files (naming
            what it holds instead).

    Example:

    >>> import pathlib, tempfile
    >>> from PIL import Image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("dogs/a.png", "cats/b.jpg", "cats/c.png", "notes.txt"):
    ...     (folder / name).parent.mkdir(exist_ok=True)
    ...     Image.new("L", (4, 4)).save(folder / name, format="PNG")
    >>> found = find_images(folder)
    >>> found["class_names"], len(found["splits"]["all"]), len(found["others"])
    (['cats', 'dogs'], 3, 1)
    """
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise FileNotFoundError(f"no folder at {directory}")
    if not os.path.isdir(directory):
        raise InputError(f"{directory} is a file; expected a folder of images.")
    given = all(os.path.isdir(os.path.join(directory, s)) for s in ("train", "test"))
    roots = ({s: os.path.join(directory, s) for s in ("train", "test")} if given
             else {"all": directory})
    splits, classes, others, seen, output_folders = {}, {}, [], set(), []
    for split, root in roots.items():
        splits[split], other = _walk(root, seen, output_folders)
        others += other
        classes[split] = _classes(root, splits[split])
    if not any(splits.values()):
        raise InputError(_no_images_message(directory, others))
    for split, paths in splits.items():
        if not paths:
            raise InputError(
                f"{roots[split]} holds no images; a folder with train/ and "
                f"test/ needs images in both.")
    names = sorted({c for labels in classes.values() if labels for c in labels})
    ignored = (sorted(e for e in os.listdir(directory)
                      if e not in ("train", "test") and not e.startswith("."))
               if given else [])
    return {"splits": splits, "classes": classes,
            "class_names": names or None, "others": others, "ignored": ignored,
            "output_folders": sorted(output_folders)}


def _no_images_message(directory, others):
    kinds = ", ".join(recipe.IMAGE_EXTENSIONS)
    if not others:
        return f"{directory} holds no files; expected images ({kinds})."
    suffixes = collections.Counter(os.path.splitext(p)[1].lower() or "(none)"
                                   for p in others)
    found = ", ".join(f"{n} {s}" for s, n in suffixes.most_common(4))
    return (f"{directory} holds no images ({kinds}): it has {len(others)} other "
            f"files ({found}), e.g. {others[0]}. TIFF and other formats must "
            f"be converted first.")


# --- splitting -------------------------------------------------------------

def _draw_splits(found, test_split, validation_split, seed):
    """``{"train": idx, "validation": idx, "test": idx}`` into one file list,
    and that list with its labels."""
    splits, classes = found["splits"], found["classes"]
    names = found["class_names"] or []
    paths, labels, parts = [], [], {}
    for split in splits:  # "all", or "train" then "test"
        start = len(paths)
        paths += splits[split]
        labels += ([names.index(c) for c in classes[split]] if classes[split]
                   else [-1] * len(splits[split]))
        parts[split] = np.arange(start, len(paths))
    if "all" in parts:
        everything = parts.pop("all")
        held_out = _drawn_count(len(everything), test_split, "test_split")
        order = np.random.default_rng([seed, _TEST_DRAW]).permutation(len(everything))
        parts = {"test": np.sort(everything[order[:held_out]]),
                 "train": np.sort(everything[order[held_out:]])}
    train = parts["train"]
    held_out = pipelines.validation_size(len(train), validation_split,
                                         "training images")
    order = np.random.default_rng(seed).permutation(len(train))
    parts["validation"] = np.sort(train[order[:held_out]])
    parts["train"] = np.sort(train[order[held_out:]])
    return parts, paths, np.asarray(labels, np.int64)


def _drawn_count(num, share, name):
    count = round(num * share)
    if not 0 < count < num:
        raise InputError(
            f"{name}={share} of {num} images leaves {count} test and "
            f"{num - count} training images; expected at least one of each. "
            f"Add images, change {name}, or give the folder train/ and test/ "
            f"subfolders.")
    return count


# --- checks on what the scan found -----------------------------------------

def _bad_files_message(directory, paths, bad, total):
    shown = "; ".join(f"{paths[i]} ({decoding.reason(paths, bad, i)})"
                      for i in sorted(bad)[:_SHOWN])
    more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return (f"{len(bad)} of {total:,} images in {directory} cannot be read: "
            f"{shown}{more}. Replace or remove them, or pass "
            f"skip_bad_images=True (--skip-bad-images) to leave them out.")


def _common_size(directory, paths, found):
    """The one ``(height, width)`` every image has; else ValueError."""
    by_size = collections.defaultdict(list)
    for index, scanned in found.items():
        by_size[(scanned.height, scanned.width)].append(index)
    if len(by_size) == 1:
        return next(iter(by_size))
    ranked = sorted(by_size.items(), key=lambda item: (-len(item[1]), item[0]))
    shown = ", ".join(
        f"{recipe.describe_size(*size)} ({_count(len(where), 'image')}, e.g. "
        f"{paths[min(where)]})" for size, where in ranked[:_SHOWN])
    more = (f", and {len(ranked) - _SHOWN} more sizes" if len(ranked) > _SHOWN
            else "")
    raise InputError(
        f"the images in {directory} differ in size (height x width): {shown}"
        f"{more}. Pass image_size=(H, W) (--image-size HxW) to resize them "
        f"all to one size.")


# --- caches ----------------------------------------------------------------

def _memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 2 ** 30


def _cache_kind(cache, image_bytes):
    """``"memory"``, ``None`` (decode every epoch) or a cache-file prefix."""
    if cache is True or cache == "memory":
        return "memory"
    if cache is False or cache is None or cache == "none":
        return None
    if cache == "auto":
        fits = image_bytes <= MEMORY_CACHE_SHARE * _memory_bytes()
        return "memory" if fits else None
    if isinstance(cache, (str, os.PathLike)):
        return os.fspath(cache)
    raise InputError(
        f"cache must be 'auto', 'memory', 'none' (or True/False/None) or a "
        f"cache-file path, got {cache!r}.")


def _fingerprint(paths, split, preprocessing):
    """Names a cache file by what is in it, so that other images or sizes
    never read a stale cache."""
    digest = hashlib.sha256(json.dumps(preprocessing, sort_keys=True).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(os.fsencode(os.path.abspath(path))
                      + f"\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"{split}-{digest.hexdigest()[:16]}"


def _fill_file_cache(images, prefix, progress):
    """Writes ``images`` to ``prefix`` once, before training reads it."""
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(prefix + ".index"):
        return images.cache(prefix)
    # A run killed while writing leaves PREFIX_N.lockfile and temporary
    # files, which would stop every later run (tf.data's AlreadyExistsError).
    stale = os.path.basename(prefix) + "_"
    for name in os.listdir(folder):
        if name.startswith(stale):
            os.remove(os.path.join(folder, name))
    cached = images.cache(prefix)
    for batch in cached.batch(256).as_numpy_iterator():
        progress.advance(len(batch))
    return cached


def _into_memory(images, count, shape, progress):
    """Decodes a split once into one uint8 array."""
    array = np.empty((count, *shape), np.uint8)
    done = 0
    for batch in images.batch(256).prefetch(2).as_numpy_iterator():
        array[done:done + len(batch)] = batch
        done += len(batch)
        progress.advance(len(batch))
    return array


# --- the route -------------------------------------------------------------

def _tiler(shape, tiling):
    """``(image -> dataset of its tiles, tiles per image, tile shape)``, or
    ``(None, 1, shape)`` without tiling (``keras_ae.runtime.tiles``' grid)."""
    if tiling is None:
        return None, 1, shape
    tile, overlap = tiling
    origins = tiles.grid_of(shape, tile, overlap)

    def tiles_of(image):
        return tf.data.Dataset.from_tensor_slices(tf.stack(
            [image[top:top + tile, left:left + tile] for top, left in origins]))

    return tiles_of, len(origins), (tile, tile, shape[2])


def _split(paths, pillow, labels, shape, resize, cache, name, preprocessing, progress,
           tiling=None):
    """A ``pipelines.Split`` of files (``pillow``: which ones Pillow
    decodes, ``decoding.Scanned``), streamed, cached in memory or to a
    file; of their overlapping tiles with ``tiling`` ``(tile, overlap)``."""
    decode = decoding.loader(shape, resize)
    tiles_of, per_image, shape = _tiler(shape, tiling)
    labels = None if (labels < 0).any() else np.repeat(labels, per_image)
    names = tf.data.Dataset.from_tensor_slices(
        (decoding.as_bytes(paths), np.asarray(pillow, bool)))
    parallel = tf.data.AUTOTUNE

    def read(files):
        images = files.map(decode, num_parallel_calls=parallel)
        return images if tiles_of is None else images.flat_map(tiles_of)

    images = read(names)
    count = len(paths) * per_image
    if cache == "memory":
        return pipelines.array_split(_into_memory(images, count, shape, progress), labels)
    labeled = None
    if cache is None:
        if labels is not None:
            labeled = tf.data.Dataset.zip(images, tf.data.Dataset.from_tensor_slices(labels))
        # Shuffle file names, not decoded images: memory stays flat.
        return pipelines.Split(
            images, labeled, count,
            shuffled=lambda seed: read(names.shuffle(
                len(paths), seed=seed, reshuffle_each_iteration=True)))
    prefix = f"{cache}-{_fingerprint(paths, name, preprocessing)}"
    images = _fill_file_cache(images, prefix, progress)
    if labels is not None:
        labeled = tf.data.Dataset.zip(images, tf.data.Dataset.from_tensor_slices(labels))
    buffer = max(1, min(count, FILE_CACHE_SHUFFLE_BYTES // int(np.prod(shape))))
    return pipelines.Split(images, labeled, count, shuffle_buffer=buffer)


def from_directory(directory, *, image_size=None, resize=recipe.DEFAULT_RESIZE,
                   color_mode="auto", batch_size=256, validation_split=0.1,
                   test_split=0.1, noise_factor=0.0, seed=0, cache="auto",
                   skip_bad_images=False, max_image_pixels=recipe.MAX_IMAGE_PIXELS,
                   tile=None, tile_overlap=0, verbose=True):
    """Pipelines over a folder of image files (PNG, JPEG, BMP, GIF, WebP).

    See the module docstring for the layouts understood and how labels
    come from class folders. Images are read by ``keras_ae.runtime.images``'
    recipe: first frame, alpha dropped, converted to ``color_mode``,
    resized to ``image_size``, 8 bits per channel.

    Args:
        directory: the folder.
        image_size: ``(height, width)`` every image is resized to; ``None``
            to keep their own size, which must then be the same for all.
        resize: how a different aspect ratio is met: ``"stretch"``
            (default: keeps every pixel and adds no border; see
            ``keras_ae.runtime.images``), ``"crop"`` (centre crop) or ``"pad"``
            (black borders).
        color_mode: ``"grayscale"``, ``"rgb"``, or ``"auto"``: grey when
            every image is (stored grey, or with three equal channels),
            else RGB.
        batch_size, validation_split, noise_factor, seed: as for
            ``keras_ae.data.sources.from_arrays``; the validation split is drawn
            from the training images.
        test_split: share of the images drawn (seeded) for the test split,
            where the folder has no ``train/`` and ``test/`` subfolders.
        cache: where decoded images are kept between epochs: ``"auto"``
            (default: in memory when they take at most a quarter of RAM,
            else decoded from disk every epoch), ``"memory"``, ``"none"``
            (every epoch streams from disk, memory flat however large the
            folder), or a file-name prefix (``tf.data``'s file cache, filled
            once before training; the files are named by their content).
        skip_bad_images: leave out files that do not decode, or have more
            pixels than ``max_image_pixels`` (listed in
            ``ImageData.skipped``), rather than raise.
        max_image_pixels: the most pixels an image may have, read from each
            file's header before anything is decoded (default
            ``keras_ae.runtime.images.MAX_IMAGE_PIXELS``); ``None`` for no limit.
        tile, tile_overlap: cut every split's images into overlapping
            ``tile`` x ``tile`` tiles, ``tile_overlap`` pixels shared by
            neighbours (``keras_ae.runtime.tiles``), so that a model of the
            tile's size learns every pixel of large images; ``image_shape``
            is then the tile's. (Anomaly detection scores whole images tile
            by tile: ``keras_ae.anomaly.TiledDetector``.)
        verbose: print what was found and progress bars.

    Returns:
        An ``ImageData`` with ``source="images:<absolute folder>"``,
        ``class_names`` where class folders give labels (``labeled()``
        works then), ``preprocessing`` and ``skipped``.

    Raises:
        FileNotFoundError: for a missing folder.
        ValueError: one line naming what was found and what was expected:
            no images; unreadable files (up to three named; see
            ``skip_bad_images``); images of several sizes with
            ``image_size=None`` (sizes and files named); splits that would
            be empty; a bad option.

    Example::

        data = from_directory("photos/", image_size=(64, 64), color_mode="rgb")
        model = keras_ae.build_conv_autoencoder(data.image_shape)
        model.fit(data.train, validation_data=data.validation)
    """
    options = pipelines.check_options(batch_size, validation_split, noise_factor,
                                      seed, False)
    image_size = recipe.check_image_size(image_size)
    recipe.check_resize(resize)
    if color_mode not in COLOR_MODES:
        raise InputError(
            f"color_mode must be one of {', '.join(map(repr, COLOR_MODES))}, "
            f"got {color_mode!r}.")
    if not pipelines.is_real(test_split) or not 0 < test_split < 1:
        raise InputError(f"test_split must be a number in (0, 1), got {test_split!r}.")
    _cache_kind(cache, 0)  # checks the value before any file is read
    recipe.check_max_pixels(max_image_pixels)
    if image_size is not None:  # the images every file becomes: within the limit too
        recipe.check_pixels(*image_size, max_image_pixels,
                            "image_size")
    tiling = None if tile is None else tiles.check_tiling(tile, tile_overlap)
    directory = os.fspath(directory)

    found = find_images(directory)
    parts, paths, labels = _draw_splits(found, test_split,
                                        options["validation_split"], seed)
    if verbose:
        _say_found(directory, found, len(paths))
    probed, bad = decoding.scan(paths, verbose, max_image_pixels)
    skipped = ()
    if bad:
        if not skip_bad_images:
            raise InputError(_bad_files_message(directory, paths, bad, len(paths)))
        skipped = tuple((paths[i], decoding.reason(paths, bad, i)) for i in sorted(bad))
        parts = {s: idx[np.isin(idx, list(bad), invert=True)]
                 for s, idx in parts.items()}
        for split in ("train", "test"):
            if not len(parts[split]):
                raise InputError(
                    f"every image of the {split} split of {directory} is unreadable.")
    size = image_size or _common_size(directory, paths, probed)
    if color_mode == "auto":
        color_mode = ("grayscale" if all(scanned.grey for scanned in probed.values())
                      else "rgb")
    shape = (*size, recipe.CHANNELS[color_mode])
    preprocessing = {"image_size": None if image_size is None else list(image_size),
                     "resize": resize, "color_mode": color_mode}
    if tiling is not None:
        tiles.tile_origins(min(shape[:2]), *tiling)  # the images hold a tile
        preprocessing.update(tile=tiling[0], tile_overlap=tiling[1])
    # items held: whole images, or the tiles of the training ones
    per_image = 1 if tiling is None else len(tiles.grid_of(shape, *tiling))
    tile_bytes = int(np.prod(shape)) if tiling is None else tiling[0] ** 2 * shape[2]
    items = {split: len(idx) * per_image for split, idx in parts.items()}
    kind = _cache_kind(cache, sum(items.values()) * tile_bytes)
    if verbose:
        _say_splits(parts, shape, preprocessing, kind, skipped)
        if tiling is not None:
            print(f"  tiles: {tiling[0]}x{tiling[0]}, overlap {tiling[1]}: {per_image} "
                  f"per image, {items['train']:,} for training")
    progress = decoding.Progress(sum(items.values()) if kind is not None else 0, verbose,
                                 "reading" if kind == "memory" else "caching")
    splits = {}
    for split, idx in parts.items():
        if len(idx):
            splits[split] = _split([paths[i] for i in idx],
                                   [probed[i].pillow for i in idx], labels[idx], shape,
                                   resize, kind, split, preprocessing, progress, tiling)
    model_shape = shape if tiling is None else (tiling[0], tiling[0], shape[2])
    return pipelines.assemble(
        splits, model_shape, f"images:{os.path.abspath(directory)}", options,
        class_names=None if found["class_names"] is None
        else tuple(found["class_names"]),
        preprocessing=preprocessing, skipped=skipped,
        origin=DataSource(images=os.path.abspath(directory), image_size=image_size,
                          resize=resize, color_mode=color_mode, test_split=test_split,
                          skip_bad_images=skip_bad_images, max_image_pixels=max_image_pixels,
                          tile=None if tiling is None else tiling[0],
                          tile_overlap=0 if tiling is None else tiling[1],
                          validation_split=options["validation_split"], seed=options["seed"]))


def _say_found(directory, found, total):
    layout = ("train/ and test/ as given" if "train" in found["splits"]
              else "test split drawn from the files")
    classes = (f"{len(found['class_names'])} classes" if found["class_names"]
               else "no class folders, no labels")
    print(f"found {total:,} images in {directory} ({layout}; {classes})")
    if found["others"]:
        print(f"  ignored {_count(len(found['others']), 'non-image file')}, "
              f"e.g. {found['others'][0]}")
    if found["ignored"]:
        print(f"  ignored beside train/ and test/: {', '.join(found['ignored'])}")
    if found["output_folders"]:
        print(f"  left out {_count(len(found['output_folders']), 'keras-ae output folder')} "
              f"inside it (not images to learn), e.g. {found['output_folders'][0]}")


def _say_splits(parts, shape, preprocessing, kind, skipped):
    counts = ", ".join(f"{len(parts[s]):,} {s}" for s in pipelines.SPLITS)
    size = ("own size" if preprocessing["image_size"] is None
            else f"resized ({preprocessing['resize']})")
    where = {"memory": "cached in memory", None: "decoded from disk every epoch"}
    print(f"images: {counts}; {recipe.describe_size(*shape[:2])} "
          f"{preprocessing['color_mode']} ({size}); "
          f"{where.get(kind, f'cached in {kind}-*')}")
    if skipped:
        print(f"  skipped {len(skipped)} unreadable files, e.g. "
              f"{skipped[0][0]} ({skipped[0][1]})")
