"""int8 ONNX models: onnxruntime's static quantization, checked against float.

``quantize_onnx("exported/NAME/model.onnx", calibration_images,
test_images=...)`` writes ``model.int8.onnx`` (and ``encoder.int8.onnx``)
beside the float files: int8 weights, uint8 activations whose ranges are
calibrated on ``calibration_images`` (training images), in onnxruntime's
QDQ format, which its CPU provider fuses into integer kernels (VNNI and AMX
where the CPU has them). It then measures both models on ``test_images``
and refuses, writing nothing, when the int8 model's reconstruction MSE is
more than ``max_mse_increase`` (default 2%) above the float model's.
``keras_ae.runtime.onnx_autoencoder.OnnxAutoencoder`` loads either file.

The recipe (``RECIPE``) was chosen by measurement on the shipped
Fashion-MNIST models; docs/design/int8_recipe.md keeps why, and
docs/benchmarks.md ("Serving: float32 and int8 onnxruntime") the table:

- QDQ with uint8 activations (x86's integer kernels multiply u8 by s8);
- one scale per output channel of each weight tensor;
- min/max ranges averaged over calibration batches of 16;
- the convolution before the sigmoid in int8 too, its output range cut to
  ``LOGIT_LIMIT`` (+-ln 509): beyond it the sigmoid is within half an 8-bit
  grey level of 0 or 1, so the 256 steps go where the pixel still changes;
- the float graph rewritten first where onnxruntime's integer kernels run
  another shape faster, computing the same (``keras_ae.export.int8_graph``);
- ``ConvTranspose`` stays float (onnxruntime has no integer kernel for it);
  keras_ae's own exports have none (``keras_ae.export.trace`` traces it as a
  convolution and a pixel shuffle, which quantize).

Needs ``onnx`` and ``onnxruntime`` (its ``quantization`` package), not
TensorFlow. The model is prepared with ``skip_symbolic_shape=True``: the
symbolic shape pass would need ``sympy`` and adds nothing for these
fixed-shape image models.
"""

import math
import os
from pathlib import Path

import numpy as np

from keras_ae import files
from keras_ae.export import int8_graph
from keras_ae.errors import InputError
from keras_ae.runtime.onnx_files import IMAGE, METADATA_PREFIX, part_file, set_metadata
from keras_ae.runtime.pixels import to_unit_float
from keras_ae.runtime.onnx_autoencoder import OnnxAutoencoder

INT8_SUFFIX = ".int8.onnx"
DEFAULT_MAX_MSE_INCREASE = 0.02
DEFAULT_CALIBRATION_IMAGES = 1024
CALIBRATION_BATCH = 16
# Ops quantized: those with integer kernels in onnxruntime's CPU provider,
# and the data movement between them; any other op stays float.
QUANTIZABLE_OPS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "Relu",
                   "Resize", "Reshape", "Transpose", "Gemm", "MatMul", "Flatten")
FLOAT_OPS = ("ConvTranspose",)
CALIBRATIONS = ("minmax", "moving_average", "percentile", "entropy")
# sigmoid(-x) < 1/510 for x > ln(509): half an 8-bit grey level from 0
LOGIT_LIMIT = math.log(509)
MIN_INPUT_CHANNELS = int8_graph.MIN_INPUT_CHANNELS
MIN_FILTERS = int8_graph.MIN_FILTERS
# The recipe quantize_onnx follows unless told otherwise (see the module
# docstring for why each choice).
RECIPE = {"format": "QDQ", "activations": "uint8", "per_channel": True,
          "calibration": "moving_average", "float_ops": FLOAT_OPS,
          "float_output_conv": False, "logit_limit": LOGIT_LIMIT,
          "min_input_channels": MIN_INPUT_CHANNELS, "min_filters": MIN_FILTERS,
          "resize_as_shuffle": True}


class QuantizationRefused(RuntimeError):
    """The int8 model lost more quality than allowed; nothing was written.

    Attributes:
        report: the measurements (as ``quantize_onnx`` returns them).
    """

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def int8_path(path):
    """``model.int8.onnx`` for ``model.onnx``: where the int8 twin of an
    ONNX file goes."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".onnx") + INT8_SUFFIX)


def quantize_onnx(path, calibration_images, *, test_images=None,
                  max_mse_increase=DEFAULT_MAX_MSE_INCREASE, recipe=None,
                  verbose=False):
    """Writes an int8 twin of an exported ``model.onnx`` and its encoder.

    Args:
        path: ``model.onnx`` as ``keras_ae.export.exporter`` wrote it (its
            ``encoder.onnx``, if exported, is quantized too).
        calibration_images: training images, ``(N, H, W, C)`` uint8 or
            float in [0, 1] (about 1,000 suffice); their activations set the
            int8 ranges.
        test_images: images to measure both models on (the test split);
            ``None`` measures on the calibration images (the report says so).
        max_mse_increase: the most the int8 model's reconstruction MSE may
            exceed the float model's, as a fraction (0.02: 2%).
        recipe: changes to ``RECIPE``: ``format`` (``"QDQ"`` or
            ``"QOperator"``), ``activations`` (``"uint8"`` or ``"int8"``),
            ``per_channel`` (bool), ``calibration`` (one of
            ``CALIBRATIONS``), ``float_ops`` (op types kept in float, from
            ``QUANTIZABLE_OPS``), ``float_output_conv`` (bool: keep the
            convolution before the sigmoid in float), ``logit_limit``
            (``None``, or the largest magnitude the int8 range of the
            sigmoid's input keeps), ``min_input_channels`` (``None``, or
            the input channels thin convolutions are widened to),
            ``min_filters`` (``None``, or the filters an int8 output
            convolution is widened to),
            ``resize_as_shuffle`` (bool: nearest upsampling as a 1x1
            convolution and a pixel shuffle).
        verbose: print what is measured.

    Returns:
        A dict: ``files`` (the int8 files written, by part), ``float_mse``,
        ``int8_mse``, ``mse_increase`` (a fraction), ``max_mse_increase``,
        ``measured_on`` and ``images``, ``calibration_images`` and
        ``recipe``. The same is stored in ``model.int8.onnx``'s metadata
        ``keras_ae.quantization``.

    Raises:
        QuantizationRefused: when the MSE rises by more than
            ``max_mse_increase``; no file is written.
        ValueError: for images of another shape or range, a bad bound, or a
            file that is not a keras_ae model.

    Example::

        report = quantize_onnx("exported/ae/model.onnx", train_images[:1024],
                               test_images=test_images)
        report["mse_increase"]   # e.g. 0.012
    """
    path = Path(path)
    if not (isinstance(max_mse_increase, (int, float)) and max_mse_increase >= 0):
        raise InputError(f"max_mse_increase must be a fraction >= 0, got "
                         f"{max_mse_increase!r}.")
    recipe = check_recipe(recipe)
    float_model = OnnxAutoencoder(path, providers=["CPUExecutionProvider"])
    metadata, shape = float_model.metadata, float_model.input_shape
    calibration = _images("calibration_images", calibration_images, shape)
    measured_on = "test images" if test_images is not None else "calibration images"
    test = calibration if test_images is None else _images("test_images",
                                                           test_images, shape)
    parts = {"model": path}
    encoder = metadata.get(METADATA_PREFIX + "encoder_file")
    if encoder is not None and part_file(path.parent, encoder, "encoder_file",
                                         path).is_file():
        parts["encoder"] = path.parent / encoder

    with files.temporary_folder(path.parent) as tmp:
        written = {part: Path(tmp) / int8_path(source).name
                   for part, source in parts.items()}
        for part, source in parts.items():
            _quantize_file(source, written[part], calibration, tmp, recipe)
        float_mse = _mse(float_model, test)
        int8_mse = _mse(OnnxAutoencoder(written["model"],
                                        providers=["CPUExecutionProvider"]), test)
        increase = int8_mse / float_mse - 1 if float_mse > 0 else (
            0.0 if int8_mse == 0 else float("inf"))
        report = {
            "files": {part: int8_path(source).name for part, source in parts.items()},
            "float_mse": float_mse, "int8_mse": int8_mse,
            "mse_increase": increase, "max_mse_increase": max_mse_increase,
            "measured_on": measured_on, "images": len(test),
            "calibration_images": len(calibration),
            "recipe": {**recipe, "float_ops": list(recipe["float_ops"]),
                       "weights": "int8", "calibration_batch": CALIBRATION_BATCH,
                       "tool": "onnxruntime.quantization"},
        }
        if verbose:
            print(f"  int8: test MSE {int8_mse:.5f} against float {float_mse:.5f} "
                  f"({increase:+.2%}; allowed +{max_mse_increase:.0%}) on "
                  f"{len(test)} {measured_on}")
        if not increase <= max_mse_increase:
            raise QuantizationRefused(
                f"{path.name}: the int8 model's MSE is {increase:+.1%} above the "
                f"float model's ({int8_mse:.5f} against {float_mse:.5f} on "
                f"{len(test)} {measured_on}); allowed: +{max_mse_increase:.0%}. "
                f"No int8 file was written; the float model stands.", report)
        _finish(written, parts, report)
    return report


def _images(what, images, shape):
    images = np.asarray(images)
    if images.ndim == 3 and shape[-1] == 1:
        images = images[..., None]
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(shape) or not len(images):
        raise InputError(
            f"{what} must be a batch shaped (N, {', '.join(map(str, shape))}), "
            f"got shape {images.shape}.")
    if images.dtype != np.uint8 and not (
            np.issubdtype(images.dtype, np.floating)
            and images.min() >= 0 and images.max() <= 1):
        raise InputError(f"{what} must be uint8, or floats in [0, 1]; got "
                         f"{images.dtype} from {images.min()} to {images.max()}.")
    return np.ascontiguousarray(to_unit_float(images), dtype=np.float32)


def check_recipe(recipe):
    """``RECIPE`` with ``recipe``'s changes, each checked; a one-line
    ``InputError`` naming what is allowed."""
    merged = {**RECIPE, **(recipe or {})}
    choices = {"format": ("QDQ", "QOperator"), "activations": ("uint8", "int8"),
               "per_channel": (True, False), "calibration": CALIBRATIONS,
               "float_output_conv": (True, False),
               "resize_as_shuffle": (True, False)}
    unknown = sorted(set(merged) - set(RECIPE))
    if unknown:
        raise InputError(f"unknown recipe keys {unknown}; expected some of "
                         f"{sorted(RECIPE)}.")
    for key, allowed in choices.items():
        if merged[key] not in allowed:
            raise InputError(f"recipe {key!r} must be one of {list(allowed)}, got "
                             f"{merged[key]!r}.")
    limit = merged["logit_limit"]
    if limit is not None and not (isinstance(limit, (int, float))
                                  and not isinstance(limit, bool) and limit > 0):
        raise InputError(f"recipe 'logit_limit' must be None or a number > 0, got "
                         f"{limit!r}.")
    for key in ("min_input_channels", "min_filters"):
        count = merged[key]
        if count is not None and not (isinstance(count, int)
                                      and not isinstance(count, bool) and count >= 1):
            raise InputError(f"recipe {key!r} must be None or an integer >= 1, got "
                             f"{count!r}.")
    float_ops = tuple(merged["float_ops"])
    if not set(float_ops) <= set(QUANTIZABLE_OPS):
        raise InputError(f"recipe 'float_ops' must be op types of "
                         f"{list(QUANTIZABLE_OPS)}, got {list(float_ops)}.")
    return {**merged, "float_ops": float_ops}


def _quantize_file(source, target, calibration, tmp, recipe):
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(range(0, len(calibration), CALIBRATION_BATCH))

        def get_next(self):
            start = next(self._batches, None)
            if start is None:
                return None
            return {IMAGE: calibration[start:start + CALIBRATION_BATCH]}

    prepared = Path(tmp) / f"{Path(source).stem}.prepared.onnx"
    # sympy-free: the symbolic pass is for dynamic shapes these models lack
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    float_model = _rewrite_for_integers(prepared, recipe)
    output_convs = _output_convs(float_model.graph)
    excluded = [node.name for node in output_convs] if recipe["float_output_conv"] else []
    overrides = {}
    if recipe["logit_limit"] and not recipe["float_output_conv"]:
        overrides = _logit_ranges(float_model, output_convs, calibration,
                                  recipe["logit_limit"])
    method = {"percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}.get(recipe["calibration"],
                                                        CalibrationMethod.MinMax)
    quantize_static(
        str(prepared), str(target), Batches(),
        quant_format=getattr(QuantFormat, recipe["format"]),
        activation_type=(QuantType.QUInt8 if recipe["activations"] == "uint8"
                         else QuantType.QInt8),
        weight_type=QuantType.QInt8, per_channel=recipe["per_channel"],
        op_types_to_quantize=[op for op in QUANTIZABLE_OPS
                              if op not in recipe["float_ops"]],
        calibrate_method=method, nodes_to_exclude=excluded,
        extra_options={"CalibMovingAverage": recipe["calibration"] == "moving_average",
                       "TensorQuantOverrides": overrides})


def _rewrite_for_integers(path, recipe):
    """The recipe's rewrites of the float graph (``keras_ae.export.int8_graph``),
    in place; each computes the same, faster in integers. Returns the
    rewritten ``ModelProto``, as saved at ``path``."""
    import onnx

    proto = onnx.load(str(path))
    changed = []
    if recipe["min_input_channels"]:
        changed += int8_graph.widen_thin_convolutions(proto, recipe["min_input_channels"])
    if recipe["min_filters"] and not recipe["float_output_conv"]:  # for int8 kernels
        changed += int8_graph.widen_output_convolutions(proto, recipe["min_filters"])
    if recipe["resize_as_shuffle"]:
        changed += int8_graph.nearest_resize_as_shuffle(proto)
    if changed:
        onnx.save(proto, str(path))
    return proto


def _output_convs(graph):
    """The convolutions of ``graph`` whose output goes into a sigmoid
    (directly, or through ``widen_output_convolutions``' slice): the model's
    last layer, whose output (the logits) becomes the pixels."""
    producers = {output: node for node in graph.node for output in node.output}
    convs = []
    for sigmoid in [node for node in graph.node if node.op_type == "Sigmoid"]:
        node = producers.get(sigmoid.input[0])
        while node is not None and node.op_type in ("Transpose", "Slice"):
            node = producers.get(node.input[0])
        if node is not None and node.op_type == "Conv":
            convs.append(node)
    return convs


def _logit_ranges(model, convs, calibration, limit):
    """``TensorQuantOverrides`` for the outputs of ``convs`` (nodes of the
    ``ModelProto`` ``model``): their range on the calibration images, cut to
    ``[-limit, limit]``."""
    import onnx
    import onnxruntime

    if not convs:
        return {}
    proto = onnx.ModelProto()
    proto.CopyFrom(model)  # the logits as outputs too, in a copy
    names = [conv.output[0] for conv in convs]
    proto.graph.output.extend(onnx.ValueInfoProto(name=name) for name in names)
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    lows, highs = np.full(len(names), np.inf), np.full(len(names), -np.inf)
    for start in range(0, len(calibration), 256):
        logits = session.run(names, {IMAGE: calibration[start:start + 256]})
        lows = np.minimum(lows, [value.min() for value in logits])
        highs = np.maximum(highs, [value.max() for value in logits])
    return {name: [{"rmin": np.float32(max(low, -limit)),
                    "rmax": np.float32(min(high, limit))}]
            for name, low, high in zip(names, lows, highs)}


def _mse(model, images):
    """Mean reconstruction MSE of ``OnnxAutoencoder`` ``model`` on ``images``."""
    return float(np.mean(model.reconstruction_error(images), dtype=np.float64))


def _finish(written, parts, report):
    """Metadata into each int8 file (the model names its int8 encoder), then
    each renamed into place, the model last."""
    import onnx

    for part, temporary in written.items():
        proto = onnx.load(str(temporary))
        if part == "model":
            set_metadata(proto, METADATA_PREFIX + "encoder_file",
                         report["files"].get("encoder"))
            set_metadata(proto, METADATA_PREFIX + "quantization", report)
        set_metadata(proto, METADATA_PREFIX + "precision", "int8")
        onnx.save(proto, str(temporary))
    for part in sorted(written, key=lambda p: p == "model"):
        os.replace(written[part], Path(parts[part]).parent / written[part].name)
