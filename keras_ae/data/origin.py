"""Where a dataset's images come from and how they were read, as plain fields.

Every route records its ``DataOrigin`` on the ``ImageData`` it returns
(``data.origin``). A run records it in ``run.json`` and ``metrics.json``
(``to_json``), and whatever needs the same images later (export's int8
calibration, anomaly detection on a trained run) reads them again with
``DataOrigin.from_json(...).load()``: no display string is ever parsed.
"""

import dataclasses

from keras_ae.errors import InputError
from keras_ae.runtime import images as recipe

ROUTES = ("idx", "tfds", "images", "arrays")


@dataclasses.dataclass(frozen=True)
class DataOrigin:
    """How to read a dataset's images again.

    Attributes:
        route: ``"idx"`` (a folder of IDX files), ``"tfds"``
            (tensorflow-datasets), ``"images"`` (a folder of image files) or
            ``"arrays"`` (NumPy arrays, which cannot be read again).
        location: the IDX or image folder (absolute), or the tfds name.
        dataset: the name an IDX folder's images go by (a label), or ``None``.
        tfds_data_dir: tensorflow-datasets' data folder, or ``None``.
        image_size, resize, color_mode: the image recipe of an image folder
            (``keras_ae.runtime.images``); ``image_size`` ``None`` keeps the
            images' own size.
        test_split, skip_bad_images, max_image_pixels: an image folder's
            other reading options.
        classes: the labels kept (``keep_classes``), or ``None`` for all.
        validation_split, seed: the split every route draws.

    Example:

    >>> origin = DataOrigin("idx", "/usr/share/datasets/fashion-mnist")
    >>> DataOrigin.from_json(origin.to_json()) == origin
    True
    >>> origin.describe()
    'idx:/usr/share/datasets/fashion-mnist'
    """

    route: str
    location: str | None = None
    dataset: str | None = None
    tfds_data_dir: str | None = None
    image_size: tuple | None = None
    resize: str | None = None
    color_mode: str | None = None
    test_split: float | None = None
    skip_bad_images: bool = False
    max_image_pixels: int | None = recipe.MAX_IMAGE_PIXELS
    classes: tuple | None = None
    validation_split: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if self.route not in ROUTES:
            raise InputError(f"a data origin's route must be one of {', '.join(ROUTES)}, "
                             f"got {self.route!r}.")
        for name in ("image_size", "classes"):  # JSON gives lists
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))

    def describe(self):
        """One line for people: ``"images:/home/me/photos"``."""
        text = self.route if self.location is None else f"{self.route}:{self.location}"
        return f"{text} ({self.dataset})" if self.dataset else text

    def to_json(self):
        """A JSON-ready dict of every field."""
        fields = dataclasses.asdict(self)
        for name in ("image_size", "classes"):
            if fields[name] is not None:
                fields[name] = list(fields[name])
        return fields

    @classmethod
    def from_json(cls, fields):
        """The origin ``to_json`` wrote; a one-line error for anything else."""
        if not isinstance(fields, dict) or "route" not in fields:
            raise InputError(f"expected a recorded data origin (a dict with 'route'), "
                             f"got {fields!r}.")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in fields.items() if key in known})

    def load(self, *, batch_size=256, noise_factor=0.0, verbose=True):
        """The same images, read again as the origin says (its classes
        kept, if it records some).

        Raises:
            InputError: for arrays (held in memory by the process that read
                them), or as the route raises (a folder gone, say).
        """
        data = DataRequest.from_origin(self).load(
            batch_size=batch_size, noise_factor=noise_factor, verbose=verbose)
        if self.classes is not None:
            from keras_ae.data.pipelines import keep_classes

            data = keep_classes(data, self.classes)
        return data


@dataclasses.dataclass(frozen=True)
class DataRequest:
    """What a user asks for: a dataset, an IDX folder or an image folder,
    and how to read it; ``load`` picks the route.

    The command line's data flags map one to one onto these fields
    (``--images`` to ``images``, ``--image-size`` to ``image_size``, ...).

    Attributes:
        dataset: a tensorflow-datasets name (or the label of ``data_dir``);
            ``None`` for Fashion-MNIST (``keras_ae.data.load``'s order).
        data_dir: a folder of MNIST-style IDX files.
        tfds_data_dir: tensorflow-datasets' data folder.
        images: a folder of image files (then leave out ``dataset`` and
            ``data_dir``).
        image_size, resize, color_mode, test_split, cache, skip_bad_images,
            max_image_pixels: ``keras_ae.data.from_directory``'s options;
            ``None`` for its defaults, or, with ``model_shape`` given to
            ``load``, for what the model takes.
        validation_split, seed: the split every route draws, and its seed.
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
    validation_split: float = 0.1
    seed: int = 0

    def load(self, *, batch_size=256, noise_factor=0.0, model_shape=None, recorded=None,
             verbose=True):
        """The requested images as ``ImageData``.

        Args:
            batch_size, noise_factor: the pipelines' batching and noise.
            model_shape: ``(H, W, C)`` of a trained model: an image folder is
                then read at its size and colour unless the request says
                otherwise.
            recorded: the model's recorded image recipe (``preprocessing``
                of its run or export): its ``resize`` is used likewise.
            verbose: say what an image folder holds.
        """
        from keras_ae.data import folders, sources

        options = dict(batch_size=batch_size, noise_factor=noise_factor,
                       validation_split=self.validation_split, seed=self.seed)
        if self.images is None:
            return sources.load(self.dataset, data_dir=self.data_dir,
                                tfds_data_dir=self.tfds_data_dir, **options)
        image_size, color, resize = self.image_size, self.color_mode, self.resize
        if model_shape is not None:  # as the model takes its images
            image_size = image_size or tuple(model_shape[:2])
            color = color or {1: "grayscale", 3: "rgb"}.get(model_shape[2])
            resize = resize or (recorded or {}).get("resize")
        return folders.from_directory(
            self.images, image_size=image_size, resize=resize or recipe.DEFAULT_RESIZE,
            color_mode=color or "auto",
            test_split=0.1 if self.test_split is None else self.test_split,
            cache=self.cache or "auto", skip_bad_images=self.skip_bad_images,
            max_image_pixels=self.max_image_pixels, verbose=verbose, **options)

    @classmethod
    def from_origin(cls, origin):
        """The request that reads a recorded ``DataOrigin``'s images again
        (its classes kept apart: ``origin.classes``)."""
        if origin.route == "arrays":
            raise InputError("the images came from arrays in memory, which cannot be read "
                             "again; give the data itself (an IDX folder, a tfds name or "
                             "an image folder).")
        common = dict(validation_split=origin.validation_split, seed=origin.seed)
        if origin.route == "idx":
            return cls(dataset=origin.dataset, data_dir=origin.location, **common)
        if origin.route == "tfds":
            return cls(dataset=origin.location, tfds_data_dir=origin.tfds_data_dir, **common)
        return cls(images=origin.location, image_size=origin.image_size,
                   resize=origin.resize, color_mode=origin.color_mode,
                   test_split=origin.test_split, skip_bad_images=origin.skip_bad_images,
                   max_image_pixels=origin.max_image_pixels, **common)
