"""Where images come from and how they are read, as one value of plain fields.

A ``DataSource`` is both what a user asks for (the command line's data flags
map one to one onto its fields) and what was read: every route records the
source it read, resolved (the folder made absolute, the colour found, the
classes kept), on the ``ImageData`` it returns (``data.origin``). A run
records it in ``run.json`` and ``metrics.json`` (``to_json``), and whatever
needs the same images later (export's int8 calibration, anomaly detection on
a trained run) reads them again with ``DataSource.from_json(...).load()``:
no display string is ever parsed.
"""

import dataclasses

from keras_ae.errors import InputError
from keras_ae.runtime import images as recipe


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A dataset, an IDX folder or an image folder, and how to read it.

    Attributes:
        dataset: a tensorflow-datasets name (or the label of ``data_dir``);
            ``None`` with no folder for Fashion-MNIST (``keras_ae.data.load``'s
            order: Debian's IDX files, then tensorflow-datasets).
        data_dir: a folder of MNIST-style IDX files.
        tfds_data_dir: tensorflow-datasets' data folder.
        images: a folder of image files (then leave out ``dataset`` and
            ``data_dir``).
        image_size, resize, color_mode, test_split, cache, skip_bad_images,
            max_image_pixels, tile, tile_overlap: ``keras_ae.data.from_directory``'s options;
            ``None`` for its defaults or, with ``model_shape`` given to
            ``load``, for what the model takes.
        classes: keep these labels only (``keep_classes``); ``None`` for all.
        in_memory: the images were NumPy arrays (``from_arrays``), which
            cannot be read again.
        validation_split, seed: the split every route draws, and its seed.

    Example:

    >>> source = DataSource(data_dir="/usr/share/datasets/fashion-mnist")
    >>> DataSource.from_json(source.to_json()) == source, source.route
    (True, 'idx')
    """

    dataset: str | None = None
    data_dir: str | None = None
    tfds_data_dir: str | None = None
    images: str | None = None
    image_size: tuple | None = None
    resize: str | None = None
    color_mode: str | None = None
    test_split: float | None = None
    cache: str | None = None
    skip_bad_images: bool = False
    max_image_pixels: int | None = recipe.MAX_IMAGE_PIXELS
    tile: int | None = None
    tile_overlap: int = 0
    classes: tuple | None = None
    in_memory: bool = False
    validation_split: float = 0.1
    seed: int = 0

    def __post_init__(self):
        for name in ("image_size", "classes"):  # JSON gives lists
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.image_size is not None:  # refused before a model or a file is made
            recipe.check_pixels(*recipe.check_image_size(self.image_size),
                                recipe.check_max_pixels(self.max_image_pixels),
                                "image_size")

    @property
    def route(self):
        """``"arrays"``, ``"images"``, ``"idx"`` or ``"tfds"`` (``None``:
        Fashion-MNIST, wherever ``keras_ae.data.load`` finds it)."""
        if self.in_memory:
            return "arrays"
        if self.images is not None:
            return "images"
        if self.data_dir is not None:
            return "idx"
        return None if self.dataset is None else "tfds"

    def to_json(self):
        """A JSON-ready dict of every field."""
        fields = dataclasses.asdict(self)
        for name in ("image_size", "classes"):
            if fields[name] is not None:
                fields[name] = list(fields[name])
        return fields

    @classmethod
    def from_json(cls, fields):
        """The source ``to_json`` wrote; a one-line error for anything else."""
        if not isinstance(fields, dict):
            raise InputError(f"expected a recorded data source (a dict), got {fields!r}.")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in fields.items() if key in known})

    def load(self, *, batch_size=256, noise_factor=0.0, model_shape=None, recorded=None,
             verbose=True):
        """The images as ``ImageData``.

        Args:
            batch_size, noise_factor: the pipelines' batching and noise.
            model_shape: ``(H, W, C)`` of a trained model: an image folder is
                then read at its size and colour unless the source says
                otherwise.
            recorded: the model's recorded image recipe (``preprocessing``
                of its run or export): its ``resize`` is used likewise.
            verbose: say what an image folder holds.

        Raises:
            InputError: for arrays (held in memory by the process that read
                them), or as the route raises (a folder gone, say).
        """
        from keras_ae.data import folders, pipelines, sources

        if self.in_memory:
            raise InputError("the images came from arrays in memory, which cannot be read "
                             "again; give the data itself (an IDX folder, a tfds name or an "
                             "image folder).")
        options = dict(batch_size=batch_size, noise_factor=noise_factor,
                       validation_split=self.validation_split, seed=self.seed)
        if self.images is None:
            data = sources.load(self.dataset, data_dir=self.data_dir,
                                tfds_data_dir=self.tfds_data_dir, **options)
        else:
            image_size, color, resize = self.image_size, self.color_mode, self.resize
            tile, overlap = self.tile, self.tile_overlap
            if model_shape is not None:  # as the model takes its images
                recorded = recorded or {}
                if tile is None and recorded.get("tile"):  # trained on tiles
                    tile, overlap = recorded["tile"], recorded.get("tile_overlap", 0)
                    image_size = image_size or recorded.get("image_size")
                if tile is None:
                    image_size = image_size or tuple(model_shape[:2])
                color = color or {1: "grayscale", 3: "rgb"}.get(model_shape[2])
                resize = resize or recorded.get("resize")
            data = folders.from_directory(
                self.images, image_size=image_size, resize=resize or recipe.DEFAULT_RESIZE,
                color_mode=color or "auto",
                test_split=0.1 if self.test_split is None else self.test_split,
                cache=self.cache or "auto", skip_bad_images=self.skip_bad_images,
                max_image_pixels=self.max_image_pixels, tile=tile, tile_overlap=overlap,
                verbose=verbose, **options)
        return data if self.classes is None else pipelines.keep_classes(data, self.classes)
