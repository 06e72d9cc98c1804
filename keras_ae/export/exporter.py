"""Export autoencoders to SavedModel and ONNX, each export checked against Keras.

Three functions, one per artifact:

- ``export_saved_model(model, directory)``: a SavedModel that plain
  ``tf.saved_model.load`` and ``saved_model_cli`` use without keras_ae, with
  the signatures ``serving_default`` (``image`` to ``reconstruction``),
  ``encode`` (``image`` to ``code``) and, where the decoder runs alone,
  ``decode`` (``code`` to ``reconstruction``).
- ``export_onnx(model, path, opset=17)``: ``model.onnx`` through tf2onnx, with
  ``encoder.onnx`` and, where possible, ``decoder.onnx`` beside it, each
  carrying ``keras_ae.*`` metadata that ``keras_ae.runtime.onnx_autoencoder`` reads.
- ``export_model(model, directory)``: both, plus ``model_card.json``; what
  ``keras-ae export`` writes.

Every export runs the artifact it wrote on sample images at batch 1 and 7,
compares it with the Keras model, fails (``ExportParityError``) when the
largest absolute difference is over ``PARITY_TOLERANCE``, and returns the
figures. Writes go to a temporary name and are renamed into place at the end,
so a failed or interrupted export leaves any earlier export as it was.

The ``"unpool"`` decoder after max pooling needs the encoder's argmax
indices, so it never runs alone: it gets no ``decode`` signature and no
``decoder.onnx``. After average pooling it runs alone like the others.
"""

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import keras_ae
from keras_ae import files
from keras_ae.models import facts as model_facts
from keras_ae import outputs
from keras_ae.export import quantize as quantization
from keras_ae.export.quantize import DEFAULT_MAX_MSE_INCREASE
from keras_ae.models.facts import describe
from keras_ae.errors import InputError
from keras_ae.runtime.images import check_preprocessing
from keras_ae.runtime.onnx_files import set_metadata
from keras_ae.runtime.pixels import check_finite_outputs
from keras_ae.export.trace import for_onnx
from keras_ae.models.loading import as_float32

PARITY_TOLERANCE = 1e-5
PARITY_BATCHES = (1, 7)
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 18  # tf2onnx 1.17 converts up to opset 18
UNPOOL_MIN_OPSET = 16  # ScatterND's reduction="add" (summed duplicates)
ENCODER_FILE, DECODER_FILE = "encoder.onnx", "decoder.onnx"
MODEL_CARD_FILE = "model_card.json"
# What an export folder holds (the int8 twins as quantize names them).
EXPORT_ENTRIES = ("saved_model", "model.onnx", ENCODER_FILE, DECODER_FILE,
                  "*.int8.onnx", MODEL_CARD_FILE)


class ExportParityError(RuntimeError):
    """An exported artifact's outputs differ from the Keras model's."""


# --- the functions every export traces --------------------------------------

def _endpoints(model):
    """``{name: (tf.function, input key, output key)}`` for each exportable part.

    ``autoencoder`` maps ``image`` to ``reconstruction``; ``encoder`` maps
    ``image`` to ``code`` (an unpool encoder's argmax indices are left out);
    ``decoder`` maps ``code`` to ``reconstruction`` where it runs alone.
    """
    shape = model_facts.image_input_shape(model)
    image = tf.TensorSpec((None, *shape), tf.float32, name="image")
    endpoints = {"autoencoder": (
        tf.function(lambda image: {"reconstruction": model(image, training=False)},
                    input_signature=[image]), "image", "reconstruction")}
    encoder, decoder = model_facts.parts(model)
    if encoder is not None:
        endpoints["encoder"] = (
            tf.function(lambda image: {"code": _first(encoder(image, training=False))},
                        input_signature=[image]), "image", "code")
    if decoder is not None and len(decoder.inputs) == 1:
        code = tf.TensorSpec((None, *decoder.inputs[0].shape[1:]), tf.float32,
                             name="code")
        endpoints["decoder"] = (
            tf.function(lambda code: {"reconstruction": decoder(code, training=False)},
                        input_signature=[code]), "code", "reconstruction")
    return endpoints


def _first(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


PARITY_IMAGES = max(PARITY_BATCHES)


def parity_images(input_shape, count=PARITY_IMAGES, seed=0):
    """The images every export is checked on: an all-black and an all-grey one
    (their flat regions make max-pooling ties, where exporters could pick a
    different position), then uniform noise; float32 in [0, 1]."""
    images = np.random.default_rng(seed).random((count, *input_shape), "float32")
    images[0] = 0.0
    if count > 1:
        images[1] = 0.5
    return images


def _check_parity(run_artifact, endpoints, images, what):
    """Largest |artifact - Keras| per endpoint over batches 1 and 7.

    ``run_artifact(part, inputs)`` runs the exported ``part``; the decoder is
    fed the encoder's codes of ``images``.
    """
    figures = {}
    codes = None
    if "encoder" in endpoints:
        codes = endpoints["encoder"][0](tf.constant(images))["code"].numpy()
    for part, (function, input_key, output_key) in endpoints.items():
        inputs = codes if input_key == "code" else images
        worst = 0.0
        for batch in PARITY_BATCHES:
            sample = inputs[-batch:]  # batch 1: a noise image
            expected = function(tf.constant(sample))[output_key].numpy()
            got = np.asarray(run_artifact(part, sample))
            if got.shape != expected.shape:
                raise ExportParityError(
                    f"{what} {part} returned shape {got.shape} for batch {batch}, "
                    f"Keras {expected.shape}.")
            worst = max(worst, float(np.max(np.abs(got - expected))))
        if not worst <= PARITY_TOLERANCE:
            raise ExportParityError(
                f"{what} {part} differs from the Keras model by up to {worst:.3g} "
                f"(allowed: {PARITY_TOLERANCE:g}) on batches {PARITY_BATCHES}.")
        figures[part] = worst
    return figures


# --- SavedModel -------------------------------------------------------------

SIGNATURES = {"autoencoder": "serving_default", "encoder": "encode",
              "decoder": "decode"}


def export_saved_model(model, directory, *, images=None):
    """Writes a SavedModel with named signatures, and checks it against Keras.

    Signatures (``saved_model_cli show --dir DIR --all`` lists them):
    ``serving_default`` takes ``image`` ``[None, H, W, C]`` float32 and gives
    ``reconstruction``; ``encode`` gives ``code``; ``decode`` (every decoder
    but ``unpool``) takes ``code`` and gives ``reconstruction``. Loading needs
    TensorFlow only, not keras_ae.

    Args:
        model: an autoencoder (``keras.Model``), e.g. from
            ``keras.saving.load_model("runs/NAME/model.keras")``. A
            mixed-precision model is exported in float32.
        directory: the SavedModel folder to write; an existing one is
            replaced only once the new one is complete and checked.
        images: optional float32 images ``(N >= 7, H, W, C)`` in [0, 1] for the
            parity check; default ``parity_images``.

    Returns:
        ``{signature: largest absolute difference from Keras}``.

    Raises:
        ValueError: for a model that is not an image autoencoder (a
            ``TypeError`` for something that is not a ``keras.Model``).
        ExportParityError: when the SavedModel differs by over
            ``PARITY_TOLERANCE``; nothing is then written.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> figures = export_saved_model(keras_ae.build_conv_autoencoder(), f"{folder}/sm")
    >>> sorted(figures), max(figures.values()) <= 1e-5
    (['decode', 'encode', 'serving_default'], True)
    """
    model = as_float32(model)
    endpoints = _endpoints(model)
    images = _images_for(model, images)

    def write(temporary):
        archive = keras.export.ExportArchive()
        archive.track(model)
        for part, (function, _, _) in endpoints.items():
            archive.add_endpoint(SIGNATURES[part], function)
        archive.write_out(temporary, verbose=False)
        loaded = tf.saved_model.load(temporary)
        figures = _check_parity(
            lambda part, x: _run_signature(loaded, part, endpoints, x),
            endpoints, images, "SavedModel")
        return {SIGNATURES[part]: value for part, value in figures.items()}

    return files.replace_folder(directory, write, kind="SavedModel",
                                is_kind=lambda path: (path / "saved_model.pb").exists())


def _run_signature(loaded, part, endpoints, inputs):
    _, input_key, output_key = endpoints[part]
    function = loaded.signatures[SIGNATURES[part]]
    return function(**{input_key: tf.constant(inputs)})[output_key].numpy()


def _images_for(model, images):
    """The parity images for ``model`` (``parity_images`` by default), once
    the model is known to give finite outputs on them: a model that
    diverged in training is never exported."""
    shape = tuple(model_facts.image_input_shape(model))
    if images is None:
        images = parity_images(shape)
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4 or images.shape[1:] != shape or len(images) < max(PARITY_BATCHES):
        raise InputError(
            f"parity images must be ({max(PARITY_BATCHES)} or more, *{shape}); "
            f"got {images.shape}.")
    check_finite_outputs(np.asarray(model(images, training=False)), f"model {model.name!r}")
    return images


# --- ONNX -------------------------------------------------------------------

ONNX_FILES = {"autoencoder": None, "encoder": ENCODER_FILE, "decoder": DECODER_FILE}


def export_onnx(model, path, opset=DEFAULT_OPSET, *, images=None,
                preprocessing=None, quantize=None, calibration_images=None,
                test_images=None, max_mse_increase=DEFAULT_MAX_MSE_INCREASE):
    """Converts the model to ONNX with tf2onnx, and checks it with onnxruntime.

    Writes ``path`` (input ``image`` ``[batch, H, W, C]`` float32, output
    ``reconstruction``), and beside it ``encoder.onnx`` (``image`` to
    ``code``) and, where the decoder runs alone, ``decoder.onnx`` (``code``
    to ``reconstruction``). Each passes ``onnx.checker.check_model(...,
    full_check=True)`` and carries metadata properties (JSON values):
    ``keras_ae.input_shape``, ``keras_ae.value_range``, ``keras_ae.code_shape``,
    ``keras_ae.code_size``, ``keras_ae.decoder``, ``keras_ae.version``,
    ``keras_ae.role``, ``keras_ae.max_abs_diff``, in ``path``
    ``keras_ae.encoder_file`` / ``keras_ae.decoder_file``, and with
    ``preprocessing`` ``keras_ae.preprocessing``.

    Args:
        model: an autoencoder (``keras.Model``); mixed precision is exported
            as float32.
        path: the ``.onnx`` file to write.
        opset: ONNX opset, 13 to 18 (what tf2onnx 1.17 converts); 16 or more
            for the ``unpool`` decoder, whose ScatterND must sum duplicate
            positions as TensorFlow does.
        images: optional parity-check images, as for ``export_saved_model``.
        preprocessing: how the training images were made from files
            (``ImageData.preprocessing``: ``image_size``, ``resize``,
            ``color_mode``), so that serving resizes photos the same way;
            ``None`` where the model was trained on fixed-size images.
        quantize: ``None`` for float32 files only, or ``"int8"`` to also
            write ``model.int8.onnx`` and ``encoder.int8.onnx`` beside them
            (``keras_ae.export.quantize.quantize_onnx``).
        calibration_images: with ``quantize``, training images (about
            1,000) that set the int8 ranges.
        test_images: with ``quantize``, images to compare the int8 and
            float models' MSE on (default: the calibration images).
        max_mse_increase: with ``quantize``, the most the int8 model's MSE
            may exceed the float one's, as a fraction (default 2%).

    Returns:
        ``{"model": diff, "encoder": diff, "decoder": diff}``: the largest
        absolute difference from Keras of each file written; with
        ``quantize``, also ``"int8"``: ``quantize_onnx``'s report.

    Raises:
        ValueError: for a bad opset or a model that is not an autoencoder,
            ``quantize`` other than ``None`` or ``"int8"``, or no
            calibration images.
        ExportParityError: when a file differs by over ``PARITY_TOLERANCE``;
            nothing is then written.
        QuantizationRefused: when the int8 model's MSE rises by more than
            ``max_mse_increase``: the float files are written, no int8 file.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> largest = export_onnx(keras_ae.build_dense_autoencoder(), path)
    >>> sorted(os.listdir(os.path.dirname(path)))  # one file per part
    ['decoder.onnx', 'encoder.onnx', 'model.onnx']
    >>> all(difference <= PARITY_TOLERANCE for difference in largest.values())
    True
    """
    import onnx
    import onnxruntime

    opset = _check_opset(model, opset)
    preprocessing = check_preprocessing(preprocessing)
    _check_quantize(quantize, calibration_images)
    model = as_float32(model)
    endpoints = _endpoints(model)  # the reference the files are checked against
    images = _images_for(model, images)
    facts = {**describe(model), "preprocessing": preprocessing}
    path = Path(path)
    if path.suffix != ".onnx":
        raise InputError(f"expected a path ending in .onnx, got {str(path)!r}.")
    names = {part: ONNX_FILES[part] or path.name for part in endpoints}
    if len(set(names.values())) != len(names):
        raise InputError(f"{path.name} is the name of a part file; choose another.")

    path.parent.mkdir(parents=True, exist_ok=True)
    with files.temporary_folder(path.parent) as tmp:
        protos = {part: convert_function(function, opset) for part, (function, _, _)
                  in _endpoints(for_onnx(model)).items()}
        sessions = {}
        for part, proto in protos.items():
            _add_metadata(proto, part, facts, names)
            onnx.checker.check_model(proto, full_check=True)
            sessions[part] = onnxruntime.InferenceSession(
                proto.SerializeToString(), providers=["CPUExecutionProvider"])
        figures = _check_parity(
            lambda part, x: sessions[part].run(None, {endpoints[part][1]: x})[0],
            endpoints, images, "ONNX")
        for part, proto in protos.items():  # each file records its own figure
            set_metadata(proto, "keras_ae.max_abs_diff", figures[part])
            onnx.save(proto, f"{tmp}/{names[part]}")
        # Parts first, the model last: its metadata points at them.
        stale = {ENCODER_FILE, DECODER_FILE} - {names[p] for p in protos}
        for part in sorted(protos, key=lambda p: p == "autoencoder"):
            os.replace(f"{tmp}/{names[part]}", path.parent / names[part])
        for name in stale:  # left from an earlier export of another model
            if (path.parent / name).exists():
                (path.parent / name).unlink()
    for name in [*names.values(), ENCODER_FILE, DECODER_FILE]:  # int8 twins
        twin = quantization.int8_path(path.parent / name)  # of another model
        if twin.exists():
            twin.unlink()
    figures = {("model" if part == "autoencoder" else part): value
               for part, value in figures.items()}
    if quantize is not None:
        figures["int8"] = quantization.quantize_onnx(
            path, calibration_images, test_images=test_images,
            max_mse_increase=max_mse_increase)
    return figures


def _check_quantize(quantize, calibration_images):
    if quantize not in (None, "int8"):
        raise InputError(f"quantize must be None or 'int8', got {quantize!r}.")
    if quantize is not None and calibration_images is None:
        raise InputError(
            "quantize='int8' needs calibration_images: about 1,000 training "
            "images whose activations set the int8 ranges.")


def _check_opset(model, opset):
    if isinstance(opset, bool) or not isinstance(opset, int) or not (
            MIN_OPSET <= opset <= MAX_OPSET):
        raise InputError(
            f"opset must be an integer from {MIN_OPSET} to {MAX_OPSET} (what "
            f"tf2onnx converts), got {opset!r}.")
    if opset < UNPOOL_MIN_OPSET and model_facts.unpool_layers(model):
        raise InputError(
            f"{model.name} has MaxUnpooling2D layers, which need opset "
            f"{UNPOOL_MIN_OPSET} or later (ONNX ScatterND with reduction='add', "
            f"so that positions two pooling windows picked are summed as in "
            f"TensorFlow); got opset {opset}.")
    return opset


def convert_function(function, opset):
    """An ONNX ``ModelProto`` of a ``tf.function`` with an input signature
    (tf2onnx), its batch dimension named ``batch``."""
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=function.input_signature, opset=opset)
    for value in [*proto.graph.input, *proto.graph.output]:
        batch = value.type.tensor_type.shape.dim[0]
        batch.ClearField("dim_value")
        batch.dim_param = "batch"
    return proto


def _add_metadata(proto, part, facts, names):
    proto.doc_string = (
        f"keras_ae {keras_ae.__version__} {part} of {facts['name']} "
        f"({facts['decoder']} decoder); images float32 in [0, 1], NHWC.")
    values = {
        "version": keras_ae.__version__,
        "role": part,
        "input_shape": facts["input_shape"],
        "value_range": facts["value_range"],
        "code_shape": facts["code_shape"],
        "code_size": facts["code_size"],
        "decoder": facts["decoder"],
        "pooling": facts["pooling"],
        "model_name": facts["name"],
    }
    if part == "autoencoder":
        values["encoder_file"] = names.get("encoder")
        values["decoder_file"] = names.get("decoder")
    if facts["preprocessing"] is not None:
        values["preprocessing"] = facts["preprocessing"]
    for key, value in values.items():
        set_metadata(proto, f"keras_ae.{key}", value)


# --- everything at once -----------------------------------------------------

def export_model(model, directory, *, opset=DEFAULT_OPSET, saved_model=True,
                 onnx=True, card=None, images=None, preprocessing=None,
                 quantize=None, calibration_images=None, test_images=None,
                 max_mse_increase=DEFAULT_MAX_MSE_INCREASE, source=None,
                 overwrite=False, verbose=True):
    """Exports SavedModel and ONNX into one folder with a ``model_card.json``.

    The folder gets ``saved_model/``, ``model.onnx`` (with ``encoder.onnx``
    and, where possible, ``decoder.onnx``) and ``model_card.json``: the
    model's facts (``describe``), the parity figures of every artifact, and
    whatever ``card`` adds (``keras-ae export`` adds the run's training
    settings and test metrics). The export is built in a temporary folder
    and its files moved into place at the end, by ``keras_ae.outputs``'
    rule: ``directory`` must be new, empty or an earlier export of the same
    source; only an earlier export's own files are ever replaced (the
    folder's ``keras-ae.json`` lists them).

    Args:
        model: an autoencoder (``keras.Model``).
        directory: the export folder; an existing one is replaced once the
            new one is complete.
        opset: ONNX opset (see ``export_onnx``).
        saved_model: write ``saved_model/``.
        onnx: write the ONNX files.
        card: a dict merged into the model card.
        images: optional parity-check images.
        preprocessing: how the training images were made from files (see
            ``export_onnx``); recorded in the card and the ONNX metadata.
        quantize, calibration_images, test_images, max_mse_increase: an
            int8 twin of the ONNX files (see ``export_onnx``); the card
            records its measurements under ``int8``.
        source: the model file exported: an earlier export of another
            source is refused without ``overwrite`` (default ``None``: not
            compared).
        overwrite: export into a folder holding other files or another
            source's export, replacing only the earlier export's own files.
        verbose: print a line per artifact.

    Returns:
        The model card (a dict).

    Raises:
        QuantizationRefused: with ``quantize``, when the int8 model lost
            more than ``max_mse_increase``: the folder is written all the
            same, float files only, and its card says why under ``int8``.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> card = export_model(keras_ae.build_dense_autoencoder(), f"{folder}/dense",
    ...                     saved_model=False, verbose=False)
    >>> sorted(card["files"])
    ['decoder_onnx', 'encoder_onnx', 'onnx']
    """
    if not (saved_model or onnx):
        raise InputError("nothing to export: saved_model and onnx are both False.")
    if quantize is not None and not onnx:
        raise InputError("quantize needs the ONNX export (onnx=True).")
    _check_quantize(quantize, calibration_images)
    preprocessing = check_preprocessing(preprocessing)
    facts = describe(model)
    float32 = as_float32(model)  # rebuilt once here, not in each export
    mixed = float32 is not model
    say = print if verbose else (lambda *_: None)
    refused = []

    def write(temporary):
        parity, written, int8 = {}, {}, None
        if saved_model:
            parity["saved_model"] = export_saved_model(
                float32, f"{temporary}/saved_model", images=images)
            written["saved_model"] = "saved_model"
            say(f"  saved_model/: signatures {', '.join(parity['saved_model'])}; "
                f"largest difference from Keras {max(parity['saved_model'].values()):.2g}")
        if onnx:
            parity["onnx"] = export_onnx(float32, f"{temporary}/model.onnx",
                                         opset=opset, images=images,
                                         preprocessing=preprocessing)
            written["onnx"] = "model.onnx"
            for part, name in (("encoder", ENCODER_FILE), ("decoder", DECODER_FILE)):
                if part in parity["onnx"]:
                    written[f"{part}_onnx"] = name
            say(f"  {', '.join(n for k, n in written.items() if k != 'saved_model')}: "
                f"opset {opset}; largest difference from Keras "
                f"{max(parity['onnx'].values()):.2g}")
        if quantize is not None:
            int8 = _int8_twin(f"{temporary}/model.onnx", calibration_images,
                              test_images, max_mse_increase, refused, say)
            for part, name in int8.get("files", {}).items():
                written[f"{part}_int8_onnx"] = name
        model_card = {
            **(card or {}),
            "model": facts,
            "preprocessing": preprocessing,
            "files": written,
            "parity": {**parity, "tolerance": PARITY_TOLERANCE,
                       "batches": list(PARITY_BATCHES),
                       "reference": "the Keras model computing in float32"},
            "exported_from_mixed_precision": mixed,
            "int8": int8,
            "onnx_opset": opset if onnx else None,
            "keras_ae_version": keras_ae.__version__,
        }
        files.write_json(f"{temporary}/{MODEL_CARD_FILE}", model_card)
        return model_card

    folder = outputs.claim(
        directory, "export", os.path.abspath(source) if source else None,
        names=EXPORT_ENTRIES, overwrite=overwrite, reads=[source] if source else [])
    with folder, folder.staging() as staged:
        model_card = write(str(staged))
        folder.commit(staged, last=(MODEL_CARD_FILE,), replace_all_own=True)
    if refused:  # the folder stands, float only; the caller learns why
        raise refused[0]
    return model_card


def _int8_twin(path, calibration_images, test_images, max_mse_increase,
               refused, say):
    """``quantize_onnx``'s report; a refusal is kept in ``refused`` and its
    report returned with ``refused`` (the reason) added."""
    try:
        report = quantization.quantize_onnx(
            path, calibration_images, test_images=test_images,
            max_mse_increase=max_mse_increase)
    except quantization.QuantizationRefused as error:
        refused.append(error)
        say(f"  int8 refused: {error}")
        return {**error.report, "files": {}, "refused": str(error)}
    say(f"  {', '.join(report['files'].values())}: test MSE "
        f"{report['int8_mse']:.5f} against float {report['float_mse']:.5f} "
        f"({report['mse_increase']:+.2%}, allowed +{max_mse_increase:.0%}, "
        f"on {report['images']} {report['measured_on']})")
    return report
