"""keras_ae.export.int8_graph: float-graph rewrites for integer kernels, exact."""

import numpy as np
import onnx
import onnxruntime
from onnx import helper, numpy_helper

from keras_ae.export import int8_graph


def _one_conv_model(in_channels, kernel):
    """A hand-made ONNX model: one 3x3 convolution, no padding."""
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "one_conv",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                       [1, in_channels, 3, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 1, 1])],
        [numpy_helper.from_array(kernel, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _run(model, x):
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_a_one_channel_convolution_is_widened_to_the_same_sums():
    kernel = np.stack([np.arange(1, 10), -np.arange(1, 10)]).reshape(2, 1, 3, 3)
    model = _one_conv_model(1, kernel.astype(np.float32))
    image = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    # by hand: sum of k * (k - 1) for k = 1..9 is 240
    assert _run(model, image).ravel().tolist() == [240.0, -240.0]

    assert int8_graph.widen_thin_convolutions(model, 4) == ["conv"]
    assert [node.op_type for node in model.graph.node] == ["Pad", "Conv"]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    wide = weights[model.graph.node[1].input[1]]
    assert wide.shape == (2, 4, 3, 3) and not wide[:, 1:].any()
    assert _run(model, image).ravel().tolist() == [240.0, -240.0]
    # wide enough already: left alone
    assert int8_graph.widen_thin_convolutions(model, 4) == []
    assert int8_graph.widen_thin_convolutions(
        _one_conv_model(4, np.ones((2, 4, 3, 3), np.float32)), 4) == []


def _resize_model(channels, size, scales, **attributes):
    """A hand-made ONNX model: one Resize of an NCHW image."""
    attributes = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                  "nearest_mode": "floor", **attributes}
    out = [int(size * scales[2])] * 2
    graph = helper.make_graph(
        [helper.make_node("Resize", ["x", "roi", "scales"], ["y"], name="resize",
                          **attributes)], "one_resize",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                       [None, channels, size, size])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT,
                                       [None, channels, *out])],
        [numpy_helper.from_array(np.zeros(0, np.float32), "roi"),
         numpy_helper.from_array(np.array(scales, np.float32), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return onnx.shape_inference.infer_shapes(model)


def test_nearest_resize_becomes_a_copy_and_a_shuffle_with_the_same_pixels():
    model = _resize_model(2, 2, [1, 1, 2, 2])
    image = np.array([[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]], np.float32)
    # by hand: each pixel becomes a 2x2 block, channel by channel
    expected = np.array([[[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]],
                          [[5, 5, 6, 6], [5, 5, 6, 6], [7, 7, 8, 8], [7, 7, 8, 8]]]],
                        np.float32)
    np.testing.assert_array_equal(_run(model, image), expected)

    assert int8_graph.nearest_resize_as_shuffle(model) == ["resize"]
    assert [node.op_type for node in model.graph.node] == [
        "Conv", "Transpose", "Reshape", "Transpose", "Reshape", "Transpose"]
    np.testing.assert_array_equal(_run(model, image), expected)
    batch = np.random.default_rng(0).random((3, 2, 2, 2), np.float32)
    np.testing.assert_array_equal(_run(model, batch), np.repeat(np.repeat(
        batch, 2, axis=2), 2, axis=3))

    # a factor of 3 too
    model = _resize_model(1, 2, [1, 1, 3, 3])
    assert int8_graph.nearest_resize_as_shuffle(model) == ["resize"]
    np.testing.assert_array_equal(_run(model, image[:, :1]), np.repeat(np.repeat(
        image[:, :1], 3, axis=2), 3, axis=3))


def test_other_resizes_are_left():
    for model in (_resize_model(2, 2, [1, 1, 2, 2], mode="linear"),
                  _resize_model(2, 2, [1, 1, 2, 2],
                                coordinate_transformation_mode="half_pixel"),
                  _resize_model(2, 2, [1, 1, 2, 2], nearest_mode="round_prefer_ceil"),
                  _resize_model(2, 4, [1, 1, 1.5, 1.5]),
                  _resize_model(2, 2, [1, 2, 2, 2])):
        assert int8_graph.nearest_resize_as_shuffle(model) == []
        assert [node.op_type for node in model.graph.node] == ["Resize"]


def _output_conv_model(filters, sigmoid=True):
    """A hand-made ONNX model: a 1x1 convolution (with bias) into a sigmoid."""
    kernel = np.arange(1, 2 * filters + 1, dtype=np.float32).reshape(filters, 2, 1, 1)
    bias = -np.arange(filters, dtype=np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["logits" if sigmoid else "y"],
                              name="conv")]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["y"], name="sigmoid"))
    graph = helper.make_graph(
        nodes, "output_conv",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 2, 2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT,
                                       [None, filters, 2, 3])],
        [numpy_helper.from_array(kernel, "w"), numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_a_one_filter_output_convolution_is_widened_and_sliced_back():
    model = _output_conv_model(1)
    image = np.array([[[[0, 1, 2], [3, 4, 5]], [[1, 0, 1], [0, 1, 0]]]], np.float32)
    # by hand: sigmoid(1 * channel 0 + 2 * channel 1 + 0)
    expected = 1 / (1 + np.exp(-(image[:, :1] + 2 * image[:, 1:])))
    np.testing.assert_allclose(_run(model, image), expected, rtol=1e-6)

    assert int8_graph.widen_output_convolutions(model, 16) == ["conv"]
    assert [node.op_type for node in model.graph.node] == [
        "Conv", "Transpose", "Slice", "Transpose", "Sigmoid"]
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    kernel, bias = (weights[name] for name in model.graph.node[0].input[1:])
    assert kernel.shape == (16, 2, 1, 1) and not kernel[1:].any()
    assert bias.shape == (16,) and not bias[1:].any()
    assert not {"w", "b"} & set(weights)  # the old ones, unused, are gone
    np.testing.assert_allclose(_run(model, image), expected, rtol=1e-6)

    # wide enough, or not into a sigmoid: left alone
    assert int8_graph.widen_output_convolutions(_output_conv_model(16), 16) == []
    assert int8_graph.widen_output_convolutions(
        _output_conv_model(1, sigmoid=False), 16) == []
