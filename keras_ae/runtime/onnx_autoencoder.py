"""Serving exported autoencoders with onnxruntime alone (no TensorFlow).

``keras_ae.export.exporter`` writes a folder holding ``model.onnx`` (image to
reconstruction), ``encoder.onnx`` (image to code) and, where the decoder can
run alone, ``decoder.onnx`` (code to image). ``OnnxAutoencoder`` loads it with
onnxruntime and NumPy only, so a serving container needs neither TensorFlow
nor Keras. Images go in as ``uint8`` in [0, 255] or floats in [0, 1], one at a
time or in batches, with or without the channel axis of grey images; or as
files and Pillow images of any size and colour, prepared (with Pillow) the
way the model's training images were (``resize=True``, see
``OnnxAutoencoder.prepare``):

>>> model = OnnxAutoencoder(folder)  # a folder written by keras_ae.export.exporter
>>> model.input_shape, model.code_shape
((28, 28, 1), (7, 7, 4))
>>> images = np.zeros((5, 28, 28), dtype=np.uint8)
>>> model.reconstruct(images).shape
(5, 28, 28)
>>> model.reconstruction_error(images).shape  # the anomaly score
(5,)
>>> from PIL import Image
>>> photo = Image.new("RGB", (640, 427), (200, 30, 30))  # any size, colour
>>> model.reconstruct(photo, resize=True).shape
(28, 28, 1)

The files' contract is in ``keras_ae.runtime.onnx_files``.
"""

import math
import os
import sys
import threading
from pathlib import Path

import numpy as np

from keras_ae.runtime import images as recipe
from keras_ae.errors import InputError
from keras_ae.errors import positive_int
from keras_ae.runtime.onnx_files import (
    CODE, IMAGE, METADATA_PREFIX, MODEL_FILE, RECONSTRUCTION, check_io,
    default_providers, metadata_of, open_session, part_file, shape_from_metadata,
    static_dims)
from keras_ae.runtime.pixels import check_finite_outputs, per_image_mse, to_unit_float

FLOAT_DTYPES = (np.float16, np.float32, np.float64)

def _as_array(what, values):
    try:
        return np.asarray(values)
    except (TypeError, ValueError) as error:
        raise InputError(f"{what} must be an array of numbers: {error}") from None


def _value_range(what, array):
    """``(min, max)`` of a float array with finite values; else ValueError."""
    if array.dtype not in FLOAT_DTYPES:
        raise InputError(
            f"{what} must be float16, float32 or float64, got dtype {array.dtype}.")
    if not array.size:
        return 0.0, 0.0
    # min and max are NaN or infinite where any value is: no full-size mask.
    low, high = float(array.min()), float(array.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError(
            f"{what} must be finite, got {np.isnan(array).sum()} NaN and "
            f"{np.isinf(array).sum()} infinite values.")
    return low, high


def _batch_shape(shape):
    """``(N, 28, 28, 1)`` for ``(28, 28, 1)``: how error messages show a batch."""
    return "(N, " + ", ".join(str(d) for d in shape) + ")"


def _batch_slices(n, batch_size):
    return (slice(start, min(start + batch_size, n))
            for start in range(0, n, batch_size))


class OnnxAutoencoder:
    """An exported keras_ae autoencoder, run by onnxruntime (no TensorFlow).

    Sessions for ``encoder.onnx`` and ``decoder.onnx`` are created on first
    use, so a server that only scores images loads ``model.onnx`` alone.
    Every method takes one image or a batch and runs large batches in chunks
    of ``batch_size`` images, so memory stays bounded.

    Args:
        path: ``model.onnx`` as written by ``keras_ae.export.exporter``, or the folder
            that holds it; or its int8 twin ``model.int8.onnx``
            (``keras-ae export --quantize int8``), whose ``encode`` then runs
            ``encoder.int8.onnx`` and ``decode`` the float decoder.
        providers: onnxruntime execution providers, best first; ``None``
            uses CUDA (then CPU) where onnxruntime offers it, else CPU.
        intra_op_threads: threads one operator may use; ``None`` keeps
            onnxruntime's default (one per physical core).
        graph_optimization: onnxruntime's graph optimizations, ``"all"``
            (the default), ``"extended"``, ``"basic"`` or ``"disable"``.
        allow_spinning: whether idle threads spin between operators (the
            default; ``False`` frees the cores between calls). See
            ``keras_ae.runtime.onnx_files.session_options`` for what was measured.

    Attributes:
        path: the ``model.onnx`` path, as a string.
        input_shape: ``(height, width, channels)`` of one image.
        code_shape: shape of one image's code, e.g. ``(7, 7, 4)`` or
            ``(32,)``; ``None`` where neither metadata nor an encoder says.
        code_size: number of floats in one code (``None`` likewise).
        decoder_kind: ``"transpose"``, ``"upsample"``, ``"unpool"``,
            ``"dense"`` or ``"custom"``; ``None`` where the metadata has none.
        pooling: the encoder's pooling, ``"max"`` or ``"average"``; ``None``
            where the model does not pool or the metadata does not say.
        version: the keras_ae version that exported the model, or ``None``.
        precision: ``"int8"`` for a ``model.int8.onnx`` that
            ``keras_ae.export.quantize`` wrote, else ``"float32"``.
        quantization: the int8 file's measurements (float and int8 MSE, the
            recipe; see ``keras_ae.export.quantize.quantize_onnx``), or ``None``.
        metadata: every ``keras_ae.*`` metadata property of ``model.onnx``,
            keys as in the file, values parsed from JSON.
        preprocessing: how the training images were made from files
            (``{"image_size", "resize", "color_mode"}``), or ``None`` where
            the export does not say (a model trained on fixed-size images).
        resize_mode: how ``resize=True`` meets another aspect ratio: the
            recorded ``"resize"``, else ``keras_ae.runtime.images.DEFAULT_RESIZE``.

    Raises:
        FileNotFoundError: if ``path`` (or ``model.onnx`` in that folder) does
            not exist.
        ValueError: if the file is not an ONNX model with one float input
            ``image`` and an output ``reconstruction``, or its metadata
            contradicts its graph.

    Example:

    >>> model = OnnxAutoencoder(folder)
    >>> model.code_size, model.decoder_kind, model.can_decode
    (196, 'transpose', True)
    >>> model.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    True
    """

    # The file a folder holds, what writes it, and what to call it in errors
    # (OnnxAnomalyDetector reads another file the same way).
    FILE, WRITER, WHAT = MODEL_FILE, "keras_ae.export.exporter", "model"

    def __init__(self, path, providers=None, intra_op_threads=None, *,
                 graph_optimization="all", allow_spinning=True):
        path = Path(os.fspath(path))
        if path.is_dir():
            path = path / self.FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"No keras_ae {self.WHAT} at {str(path)!r}: expected {self.FILE} "
                f"as written by {self.WRITER}, or the folder that holds it.")
        self.path = str(path)
        self._folder = path.parent
        if providers is None:
            providers = default_providers()
        elif isinstance(providers, str):
            providers = [providers]
        self._providers = list(providers)
        self._settings = dict(intra_op_threads=intra_op_threads,
                              graph_optimization=graph_optimization,
                              allow_spinning=allow_spinning)
        self._lock = threading.Lock()  # lazy sessions, when threads share a model
        self._sessions = {}

        session = self._session_for(path)
        check_io(session, self.path, "autoencoder", IMAGE, RECONSTRUCTION)
        self._model_session = session
        self.metadata = metadata_of(session)
        self.version = self.metadata.get(METADATA_PREFIX + "version")
        self.precision = self.metadata.get(METADATA_PREFIX + "precision", "float32")
        self.quantization = self.metadata.get(METADATA_PREFIX + "quantization")
        self.decoder_kind = self.metadata.get(METADATA_PREFIX + "decoder")
        self.pooling = self.metadata.get(METADATA_PREFIX + "pooling")
        self._encoder_path = self._part_path("encoder_file")
        self._decoder_path = self._part_path("decoder_file")
        self.input_shape = self._find_input_shape(session)
        self.code_shape = self._find_code_shape()
        self.code_size = self._find_code_size()
        try:
            self.preprocessing = recipe.check_preprocessing(
                self.metadata.get(METADATA_PREFIX + "preprocessing"))
        except ValueError as error:
            raise InputError(f"{self.path}: metadata {METADATA_PREFIX}"
                             f"preprocessing: {error}") from None
        self.resize_mode = (self.preprocessing or {}).get(
            "resize", recipe.DEFAULT_RESIZE)

    # --- loading -----------------------------------------------------------

    def _session_for(self, path):
        return open_session(path, self._providers, **self._settings)

    def _part_path(self, key):
        """The encoder or decoder file ``model.onnx`` names; None if not exported."""
        # Only the metadata says whether a part was exported: a file that merely
        # sits in the folder may be left over from an earlier export.
        name = self.metadata.get(METADATA_PREFIX + key)
        return None if name is None else part_file(self._folder, name, key, self.path)

    def _find_input_shape(self, session):
        graph_dims = static_dims(session.get_inputs()[0].shape)
        metadata_dims = shape_from_metadata(self.metadata, "input_shape")
        if metadata_dims is None and graph_dims is None:
            raise InputError(
                f"{self.path}: cannot tell the image shape: no "
                f"{METADATA_PREFIX}input_shape metadata and input {IMAGE!r} "
                f"has shape {session.get_inputs()[0].shape}.")
        if metadata_dims is not None and graph_dims is not None \
                and metadata_dims != graph_dims:
            raise InputError(
                f"{self.path}: metadata {METADATA_PREFIX}input_shape "
                f"{list(metadata_dims)} contradicts input {IMAGE!r} of shape "
                f"{session.get_inputs()[0].shape}.")
        shape = metadata_dims or graph_dims
        if len(shape) != 3:
            raise InputError(
                f"{self.path}: images must be (height, width, channels), the "
                f"model says {list(shape)}.")
        return shape

    def _find_code_shape(self):
        # Without the metadata, the encoder's graph says it: the one case
        # where the encoder session is created before its first use.
        shape = shape_from_metadata(self.metadata, "code_shape")
        if shape is None and self._encoder_path is not None \
                and self._encoder_path.is_file():
            shape = static_dims(self._encoder().get_outputs()[0].shape)
        return shape

    def _find_code_size(self):
        size = self.metadata.get(METADATA_PREFIX + "code_size")
        if self.code_shape is not None:
            size_from_shape = math.prod(self.code_shape)
            if size is not None and size != size_from_shape:
                raise InputError(
                    f"{self.path}: metadata {METADATA_PREFIX}code_size {size!r} "
                    f"does not match code_shape {list(self.code_shape)}.")
            return size_from_shape
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    def _part_session(self, role, path, input_name, output_name):
        with self._lock:
            if role not in self._sessions:
                if not path.is_file():
                    raise FileNotFoundError(
                        f"{self.path} names {path.name!r} as its {role}, but "
                        f"{str(path)!r} does not exist.")
                session = self._session_for(path)
                check_io(session, str(path), role, input_name, output_name)
                self._sessions[role] = session
            return self._sessions[role]

    def _encoder(self):
        if self._encoder_path is None:
            raise RuntimeError(
                f"{self.path} was exported without an encoder "
                f"({METADATA_PREFIX}encoder_file is absent), so it cannot "
                f"encode; export it again with its encoder.")
        return self._part_session("encoder", self._encoder_path, IMAGE, CODE)

    def _decoder(self):
        if self._decoder_path is None:
            if self.decoder_kind == "unpool":
                reason = ("an 'unpool' decoder after max pooling needs the "
                          "encoder's argmax indices (where each max was "
                          "pooled from), so it cannot run alone from a code")
            else:
                reason = (f"it was exported without decoder.onnx "
                          f"({METADATA_PREFIX}decoder_file is absent; decoder "
                          f"kind {self.decoder_kind!r})")
            raise RuntimeError(
                f"{self.path} cannot decode: {reason}. Use reconstruct() on "
                f"images instead.")
        return self._part_session("decoder", self._decoder_path, CODE,
                                  RECONSTRUCTION)

    # --- properties --------------------------------------------------------

    @property
    def can_encode(self):
        """Whether ``encode`` can run: ``model.onnx`` names an encoder file."""
        return self._encoder_path is not None

    @property
    def can_decode(self):
        """Whether ``decode`` can run: ``model.onnx`` names a decoder file."""
        return self._decoder_path is not None

    @property
    def provider(self):
        """The execution provider ``model.onnx`` runs on, e.g. ``"CPUExecutionProvider"``."""
        return self._model_session.get_providers()[0]

    def __repr__(self):
        return (f"OnnxAutoencoder({self.path!r}, input_shape={self.input_shape}, "
                f"code_size={self.code_size}, decoder={self.decoder_kind!r}, "
                f"precision={self.precision!r}, provider={self.provider!r})")

    # --- inputs ------------------------------------------------------------

    def _images(self, x):
        """``x``, checked, as an ``(N, H, W, C)`` batch, and how it came.

        Returns ``(batch, shape, single)``: the batch in ``x``'s own dtype
        (``keras_ae.runtime.pixels.to_unit_float`` scales it chunk by chunk,
        so that no float32 copy of
        a large uint8 batch is made), the shape ``x`` was given in, and
        whether it was one image rather than a batch.
        """
        x = _as_array("x", x)
        height, width, channels = self.input_shape
        image_shapes = [self.input_shape]
        if channels == 1:  # grey images may come without their channel axis
            image_shapes.append((height, width))
        # One image is tried first: an (H, W, 1) image is one image even
        # where it could also read as a batch of H images shaped (W, 1).
        if x.shape in image_shapes:
            single = True
        elif x.ndim >= 1 and x.shape[1:] in image_shapes:
            single = False
        else:
            accepted = " or ".join(str(s) for s in image_shapes)
            batches = " or ".join(_batch_shape(s) for s in image_shapes)
            raise InputError(
                f"x must be one image shaped {accepted}, or a batch shaped "
                f"{batches}; got shape {x.shape}.")

        if x.dtype in FLOAT_DTYPES:
            low, high = _value_range("x", x)
            if low < 0 or high > 1:
                raise InputError(
                    f"float images must have values in [0, 1], got values from "
                    f"{low:g} to {high:g}. (Pass 8-bit images as uint8, or "
                    f"divide them by 255.)")
        elif x.dtype != np.uint8:
            raise InputError(
                f"x must be uint8 (0 to 255) or float16/32/64 (0 to 1), got "
                f"dtype {x.dtype}.")
        return x.reshape((-1,) + self.input_shape), x.shape, single

    def _codes(self, z):
        """``z``, checked, as an ``(N, *code_shape)`` batch, and whether it was one code."""
        z = _as_array("z", z)
        if self.code_shape is None:
            raise RuntimeError(
                f"{self.path} does not say its code shape (no "
                f"{METADATA_PREFIX}code_shape metadata and no encoder).")
        if z.shape == self.code_shape:
            single = True
        elif z.shape[1:] == self.code_shape:
            single = False
        else:
            raise InputError(
                f"z must be one code shaped {self.code_shape} or a batch shaped "
                f"{_batch_shape(self.code_shape)}; got shape {z.shape}.")
        low, high = _value_range("z", z)
        largest = float(np.finfo(np.float32).max)
        if max(-low, high) > largest:  # the model computes in float32
            raise InputError(
                f"z must hold values that float32 can represent (magnitude up "
                f"to {largest:.3g}); got values from {low:g} to {high:g}.")
        return z.reshape((-1,) + self.code_shape), single

    def prepare(self, x, resize=False, *, max_pixels=recipe.MAX_IMAGE_PIXELS):
        """Files or images of any size and colour as this model's images.

        Each image is read as the model's training images were
        (``keras_ae.runtime.images``: first frame, alpha dropped, converted to the
        model's grey or RGB, resized, 8 bits), with NumPy and Pillow only.

        Args:
            x: a file path (PNG, JPEG, BMP, GIF, WebP), a Pillow image, an
                image array (``(H, W)`` or ``(H, W, C)``, uint8 or float in
                [0, 1]), or a list of those.
            resize: ``False`` to refuse images of another height and width
                (their colour is converted all the same); ``True`` to resize
                them as training did (``resize_mode``); or a mode of
                ``keras_ae.runtime.images.RESIZE_MODES``.
            max_pixels: the most pixels a file or Pillow image may have,
                checked from its header before it is decoded
                (``keras_ae.runtime.images.MAX_IMAGE_PIXELS``); ``None``: no limit.

        Returns:
            uint8 images: ``input_shape`` for one, ``(N, *input_shape)``
            for a list.

        Raises:
            FileNotFoundError: for a path with no file.
            ValueError: naming the file or image, for one Pillow cannot
                read, or of another size with ``resize=False``.

        Example:

        >>> model.prepare(np.zeros((100, 50, 3), np.uint8), resize=True).shape
        (28, 28, 1)
        """
        mode = (self.resize_mode if resize is True
                else None if resize is False else recipe.check_resize(resize))
        single = not isinstance(x, (list, tuple)) and not (
            isinstance(x, np.ndarray) and x.ndim == 4)
        items = [x] if single else list(x)
        if not items:
            raise InputError("x must hold at least one image, got none.")
        batch = np.stack([recipe.read_image(item, self.input_shape, mode,
                                            max_pixels=max_pixels)
                          for item in items])
        return batch[0] if single else batch

    def _inputs(self, x, resize):
        """``x`` as arrays of the model's shape; files, Pillow images and
        (with ``resize``) arrays of other sizes go through ``prepare``."""
        first = x[0] if isinstance(x, (list, tuple)) and x else x
        pil = sys.modules.get("PIL.Image")  # loaded if x can hold its images
        if resize is not False or isinstance(first, (str, os.PathLike)) or (
                pil is not None and isinstance(first, pil.Image)):
            return self.prepare(x, resize=resize)
        return x

    # --- running -----------------------------------------------------------

    def _run(self, session, input_name, output_name, batch, out_shape, batch_size):
        """Runs ``session`` on ``batch`` in chunks into one ``(N, *out_shape)`` array.

        Each chunk is made float32 (``to_unit_float``) just before its run.
        A file whose outputs have another shape, or are not finite (a model
        that diverged in training), is refused in one line.
        """
        batch_size = positive_int("batch_size", batch_size)
        result = np.empty((len(batch),) + tuple(out_shape), dtype=np.float32)
        for rows in _batch_slices(len(batch), batch_size):
            chunk = np.ascontiguousarray(to_unit_float(batch[rows]))
            (out,) = session.run([output_name], {input_name: chunk})
            if out.shape != result[rows].shape:
                raise InputError(
                    f"{self.path} returned {output_name!r} of shape {out.shape} for "
                    f"a batch of {chunk.shape}; expected {result[rows].shape}: "
                    f"not an autoencoder as keras_ae exports them.")
            result[rows] = check_finite_outputs(out, self.path)
        return result

    def reconstruct(self, x, batch_size=256, *, resize=False):
        """Reconstructions of images: the autoencoder's output.

        Args:
            x: one image ``(H, W, C)`` or a batch ``(N, H, W, C)``; grey
                images (``C == 1``) may leave out the channel axis. ``uint8``
                in [0, 255], or float16/32/64 in [0, 1]. Also file paths and
                Pillow images, or a list of them (see ``prepare``).
            batch_size: images per onnxruntime call.
            resize: ``True`` (or a mode) to take images of any size,
                resized as training did (see ``prepare``).

        Returns:
            float32 reconstructions in [0, 1], shaped like ``x``.

        Raises:
            ValueError: for another shape or dtype, NaN or infinite values,
                or float values outside [0, 1].

        Example:

        >>> image = np.full((28, 28), 255, dtype=np.uint8)
        >>> model.reconstruct(image).shape, model.reconstruct(image).dtype
        ((28, 28), dtype('float32'))
        >>> model.reconstruct(np.zeros((3, 28, 28, 1))).shape
        (3, 28, 28, 1)
        """
        images, shape, _ = self._images(self._inputs(x, resize))
        out = self._run(self._model_session, IMAGE, RECONSTRUCTION, images,
                        self.input_shape, batch_size)
        return out.reshape(shape)

    def encode(self, x, batch_size=256, *, resize=False):
        """Codes of images: the encoder's output.

        Args:
            x: images, as for ``reconstruct``.
            batch_size: images per onnxruntime call.
            resize: as for ``reconstruct``.

        Returns:
            float32 codes: ``code_shape`` for one image, ``(N, *code_shape)``
            for a batch.

        Raises:
            ValueError: for bad images, as for ``reconstruct``.
            RuntimeError: if the model was exported without ``encoder.onnx``.
            FileNotFoundError: if ``model.onnx`` names an encoder file that is
                missing.

        Example:

        >>> model.encode(np.zeros((28, 28, 1), dtype=np.uint8)).shape
        (7, 7, 4)
        >>> model.encode(np.zeros((10, 28, 28), dtype=np.uint8)).shape
        (10, 7, 7, 4)
        """
        encoder = self._encoder()
        images, _, single = self._images(self._inputs(x, resize))
        code_shape = self.code_shape or static_dims(encoder.get_outputs()[0].shape)
        if code_shape is None:
            raise RuntimeError(f"{self.path}: the encoder's code shape is unknown.")
        codes = self._run(encoder, IMAGE, CODE, images, code_shape, batch_size)
        return codes[0] if single else codes

    def decode(self, z, batch_size=256):
        """Images from codes: the decoder's output.

        Args:
            z: one code shaped ``code_shape`` or a batch
                ``(N, *code_shape)``, finite float16/32/64 values (as
                ``encode`` returns them).
            batch_size: codes per onnxruntime call.

        Returns:
            float32 images in [0, 1]: ``input_shape`` for one code,
            ``(N, *input_shape)`` for a batch.

        Raises:
            RuntimeError: if the model cannot decode alone (the ``unpool``
                decoder needs the encoder's argmax indices; see
                ``can_decode``).
            ValueError: for another shape, a non-float dtype, NaN or
                infinite values.
            FileNotFoundError: if ``model.onnx`` names a decoder file that is
                missing.

        Example:

        >>> codes = model.encode(np.zeros((2, 28, 28, 1), dtype=np.uint8))
        >>> model.decode(codes).shape
        (2, 28, 28, 1)
        >>> model.decode(codes[0]).shape
        (28, 28, 1)
        """
        decoder = self._decoder()
        codes, single = self._codes(z)
        images = self._run(decoder, CODE, RECONSTRUCTION, codes, self.input_shape,
                           batch_size)
        return images[0] if single else images

    def reconstruction_error(self, x, batch_size=256, *, resize=False):
        """Mean squared error of each image's reconstruction: its anomaly score.

        The mean runs over height, width and channels of
        ``(reconstruct(x) - x) ** 2``, with ``x`` scaled to [0, 1] (``uint8``
        divided by 255). Images unlike the training data score higher.

        Args:
            x: images, as for ``reconstruct``.
            batch_size: images per onnxruntime call.
            resize: as for ``reconstruct``; the error is then measured
                against the prepared image.

        Returns:
            float32 errors: a 0-d NumPy scalar for one image, shape ``(N,)``
            for a batch.

        Raises:
            ValueError: for bad images, as for ``reconstruct``.

        Example:

        >>> errors = model.reconstruction_error(np.zeros((4, 28, 28, 1)))
        >>> errors.shape, errors.dtype
        ((4,), dtype('float32'))
        >>> model.reconstruction_error(np.zeros((28, 28))).shape
        ()
        """
        images, _, single = self._images(self._inputs(x, resize))
        batch_size = positive_int("batch_size", batch_size)
        errors = np.empty(len(images), dtype=np.float32)
        # Chunk by chunk, so that no reconstruction of the whole batch is held.
        for rows in _batch_slices(len(images), batch_size):
            chunk = to_unit_float(images[rows])
            out = self._run(self._model_session, IMAGE, RECONSTRUCTION, chunk,
                            self.input_shape, batch_size)
            errors[rows] = per_image_mse(out, chunk)
        return errors[0] if single else errors
