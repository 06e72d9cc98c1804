"""Rewrites of a float ONNX graph that compute the same, faster in int8.

``keras_ae.export.quantize`` applies them to the float graph before onnxruntime's
static quantization; each leaves the float function as it was (exactly:
zero weights add nothing, an identity 1x1 convolution copies) and gives
onnxruntime's integer CPU kernels a shape they run well: its fast
"symmetric" integer convolution takes input channels in multiples of 4 and
at least 16 filters. The float exports themselves are not rewritten (float
gained nothing). The profiler figures behind each rewrite are in
docs/design/int8_recipe.md.

- ``widen_thin_convolutions``: a convolution over fewer than 4 input
  channels (the first one of a grey model) gets zero channels and zero
  weights.
- ``widen_output_convolutions``: the output convolution of a grey model
  (1 filter, into the sigmoid) gets zero filters up to 16, sliced off
  again.
- ``nearest_resize_as_shuffle``: nearest upsampling by an integer factor
  ``s`` as a 1x1 convolution copying each channel ``s * s`` times and a
  pixel shuffle (the layout ``keras_ae.export.trace`` gives a transposed
  convolution), in place of onnxruntime's slow uint8 ``Resize``.

Models are NCHW with static image sizes, as tf2onnx writes keras_ae's.
"""

import numpy as np

MIN_INPUT_CHANNELS = 4
MIN_FILTERS = 16


def widen_thin_convolutions(model, channels=MIN_INPUT_CHANNELS):
    """Gives each convolution over fewer than ``channels`` input channels
    zero channels and zero weights, in place: the same sums, a shape
    onnxruntime's integer kernels run faster (docs/design/int8_recipe.md).

    Args:
        model: an ``onnx.ModelProto`` in NCHW, as tf2onnx writes it; changed
            in place: a ``Pad`` (zeros, channel axis) before each such
            ``Conv``, whose weights get zero input channels.
        channels: the input channels a convolution is widened to.

    Returns:
        The names of the convolutions widened.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    widened = []
    for node, kernel in _plain_convolutions(graph, weights):
        if kernel.dims[1] >= channels:
            continue
        old = numpy_helper.to_array(kernel)
        wide = np.zeros((old.shape[0], channels, *old.shape[2:]), old.dtype)
        wide[:, :old.shape[1]] = old
        name = f"{node.name}_widened"
        # new names: another node may share the old kernel (kept if so)
        graph.initializer.extend([
            numpy_helper.from_array(wide, f"{name}_kernel"),
            numpy_helper.from_array(np.array(
                [0, 0, 0, 0, 0, channels - old.shape[1], 0, 0], np.int64), f"{name}_pads")])
        pad = helper.make_node("Pad", [node.input[0], f"{name}_pads"], [f"{name}_input"],
                               name=f"{name}_pad")
        graph.node.insert(list(graph.node).index(node), pad)
        node.input[0], node.input[1] = f"{name}_input", f"{name}_kernel"
        _drop_unused(graph, [kernel])
        widened.append(node.name)
    return _with_shapes_inferred(model, widened)


def _plain_convolutions(graph, weights):
    """``(node, kernel)`` of each 2-D, ungrouped ``Conv`` whose kernel is
    one of ``weights`` (name -> initializer); a list, so that the caller
    may insert nodes."""
    convolutions = []
    for node in graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        kernel = weights.get(node.input[1]) if node.op_type == "Conv" else None
        if kernel is not None and group == 1 and len(kernel.dims) == 4:
            convolutions.append((node, kernel))
    return convolutions


def _with_shapes_inferred(model, changed):
    """``changed``, after inferring ``model``'s shapes again if it is not
    empty (the rewrites change them)."""
    import onnx

    if changed:
        del model.graph.value_info[:]
        model.CopyFrom(onnx.shape_inference.infer_shapes(model))
    return changed


def _drop_unused(graph, tensors):
    """Removes those of ``tensors`` (initializers) no node reads."""
    for tensor in tensors:
        if not any(tensor.name in node.input for node in graph.node):
            graph.initializer.remove(tensor)


def widen_output_convolutions(model, filters=MIN_FILTERS):
    """Gives each convolution into a ``Sigmoid`` (the output layer) with
    fewer than ``filters`` filters zero filters up to ``filters``, in
    place, and slices the extra output channels off before the sigmoid.

    The slice is taken in NHWC order (transpose, slice the last axis,
    transpose back): onnxruntime's integer convolutions produce NHWC, so its
    layout pass cancels the first transpose. Only the output layer: widening
    the code layer too (4 filters) raised the int8 MSE of the shipped models
    (docs/design/int8_recipe.md).

    Args:
        model: an ``onnx.ModelProto`` (NCHW), changed in place.
        filters: the filters such a convolution is widened to.

    Returns:
        The names of the convolutions widened.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    into_sigmoid = {node.input[0] for node in graph.node if node.op_type == "Sigmoid"}
    widened = []
    for node, kernel in _plain_convolutions(graph, weights):
        if kernel.dims[0] >= filters or node.output[0] not in into_sigmoid:
            continue
        name, kept = f"{node.name}_widened", kernel.dims[0]
        bias = weights.get(node.input[2]) if len(node.input) > 2 else None
        old = numpy_helper.to_array(kernel)
        wide = np.zeros((filters, *old.shape[1:]), old.dtype)
        wide[:kept] = old
        node.input[1] = f"{name}_kernel"
        graph.initializer.append(numpy_helper.from_array(wide, f"{name}_kernel"))
        if bias is not None:
            wide_bias = np.zeros(filters, old.dtype)
            wide_bias[:kept] = numpy_helper.to_array(bias)
            node.input[2] = f"{name}_bias"
            graph.initializer.append(numpy_helper.from_array(wide_bias, f"{name}_bias"))
        graph.initializer.extend(
            numpy_helper.from_array(np.array(value, np.int64), f"{name}_{key}")
            for key, value in (("starts", [0]), ("ends", [kept]), ("axes", [3])))
        output, node.output[0] = node.output[0], f"{name}_all"
        position = list(graph.node).index(node) + 1
        for offset, added in enumerate([
                helper.make_node("Transpose", [f"{name}_all"], [f"{name}_nhwc"],
                                 name=f"{name}_nhwc", perm=[0, 2, 3, 1]),
                helper.make_node("Slice", [f"{name}_nhwc", f"{name}_starts",
                                           f"{name}_ends", f"{name}_axes"],
                                 [f"{name}_kept"], name=f"{name}_slice"),
                helper.make_node("Transpose", [f"{name}_kept"], [output],
                                 name=f"{name}_nchw", perm=[0, 3, 1, 2])]):
            graph.node.insert(position + offset, added)
        _drop_unused(graph, [kernel] + ([bias] if bias is not None else []))
        widened.append(node.name)
    return _with_shapes_inferred(model, widened)


def nearest_resize_as_shuffle(model):
    """Replaces each nearest ``Resize`` by an integer factor, in place, with
    a 1x1 convolution and a pixel shuffle computing the same.

    Output pixel ``(h * s + i, w * s + j)`` of nearest upsampling is input
    pixel ``(h, w)``; a 1x1 convolution with identity weights makes
    ``s * s`` copies of the channels, ordered ``(i, j, channel)``, and
    transpose-reshape-transpose puts each copy where it belongs. In int8 the
    copies keep their input's scale (the same values calibrate the same
    range) and the identity weights quantize exactly, so the copy is exact.

    Args:
        model: an ``onnx.ModelProto`` (NCHW, static sizes), changed in
            place. Resizes in another mode, with a factor that is not an
            equal integer on height and width, or of unknown size are left.

    Returns:
        The names of the resizes replaced.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    shapes = {info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
              for info in [*graph.input, *graph.value_info]}
    replaced = []
    for node in list(graph.node):
        factor = _nearest_factor(node, constants)
        shape = shapes.get(node.input[0]) if factor else None
        if shape is None or len(shape) != 4 or 0 in shape[1:]:
            continue
        channels, height, width = shape[1:]
        copies = np.zeros((factor * factor * channels, channels, 1, 1), np.float32)
        copies[np.arange(len(copies)), np.tile(np.arange(channels), factor * factor)] = 1
        name = f"{node.name}_shuffle"
        graph.initializer.extend([
            numpy_helper.from_array(copies, f"{name}_copies"),
            numpy_helper.from_array(np.array(
                [-1, height, width, factor, factor, channels], np.int64), f"{name}_split"),
            numpy_helper.from_array(np.array(
                [-1, height * factor, width * factor, channels], np.int64),
                f"{name}_merge")])
        steps = [
            ("Conv", [node.input[0], f"{name}_copies"], {}),
            ("Transpose", [], {"perm": [0, 2, 3, 1]}),
            ("Reshape", [f"{name}_split"], {}),
            ("Transpose", [], {"perm": [0, 1, 3, 2, 4, 5]}),
            ("Reshape", [f"{name}_merge"], {}),
            ("Transpose", [], {"perm": [0, 3, 1, 2]}),
        ]
        position = list(graph.node).index(node)
        previous = None
        for number, (op, inputs, attributes) in enumerate(steps):
            output = node.output[0] if number == len(steps) - 1 else f"{name}_{number}"
            inputs = inputs if previous is None else [previous, *inputs]
            graph.node.insert(position + number, helper.make_node(
                op, inputs, [output], name=f"{name}_{number}", **attributes))
            previous = output
        graph.node.remove(node)
        replaced.append(node.name)
    return _with_shapes_inferred(model, replaced)


def _nearest_factor(node, constants):
    """The integer factor of a nearest ``Resize`` that copies pixel
    ``(h // s, w // s)``, or ``None``."""
    if node.op_type != "Resize":
        return None
    attributes = {a.name: a for a in node.attribute}

    def text(key, default):
        return attributes[key].s.decode() if key in attributes else default

    if (text("mode", "nearest") != "nearest"
            or text("coordinate_transformation_mode", "half_pixel") != "asymmetric"
            or text("nearest_mode", "round_prefer_floor") != "floor"
            or len(node.input) != 3 or node.input[2] not in constants):
        return None
    scales = constants[node.input[2]]
    if (scales.shape != (4,) or tuple(scales[:2]) != (1, 1) or scales[2] != scales[3]
            or scales[2] != int(scales[2]) or scales[2] < 2):
        return None
    return int(scales[2])
