"""Batch-norm scales and shifts after convolutions, folded into them before INT8."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from tftrt.compiler.onnxfold import fold_conv_scales

RNG = np.random.default_rng(0)


def _model(scale_first: bool, bias: bool, shared_weights: bool) -> onnx.ModelProto:
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(RNG.standard_normal((1, 4, 1, 1)).astype(np.float32), "s"),
             numpy_helper.from_array(RNG.standard_normal((4, 1, 1)).astype(np.float32), "t"),
             numpy_helper.from_array(RNG.standard_normal(4).astype(np.float32), "b"),
             numpy_helper.from_array(RNG.standard_normal((1, 1, 1, 5)).astype(np.float32), "odd")]
    conv_in = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [helper.make_node("Conv", conv_in, ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["s", "c"] if scale_first else ["c", "s"], ["m"]),
             helper.make_node("Add", ["m", "t"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"]),
             # a scale that is not per channel stays a Mul
             helper.make_node("Conv", ["x", "w"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c2", "odd"], ["z"])]
    outputs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None),
               helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)]
    if shared_weights:  # the convolution's output is read twice: nothing folds into it
        outputs.append(helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", onnx.TensorProto.FLOAT, [1, 3, 5, 5])], outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["y", "z"], {"x": x})


def test_scales_and_shifts_fold_into_the_convolution_and_outputs_stay() -> None:
    x = RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)
    for scale_first in (True, False):
        for bias in (True, False):
            model = _model(scale_first, bias, shared_weights=False)
            want = _run(model, x)
            assert fold_conv_scales(model) == 2
            ops = [n.op_type for n in model.graph.node]
            assert ops == ["Conv", "Relu", "Conv", "Mul"]
            for got, ref in zip(_run(model, x), want, strict=True):
                np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
            assert {"s", "t"}.isdisjoint(i.name for i in model.graph.initializer)


def test_a_convolution_output_read_elsewhere_is_left_alone() -> None:
    model = _model(True, True, shared_weights=True)
    assert fold_conv_scales(model) == 0
    assert [n.op_type for n in model.graph.node].count("Mul") == 2


def _padded_conv(tmp_path, pads, value=0.0, backend="onnxruntime"):
    import tensorflow as tf

    from tests.conftest import export_module
    from tftrt import trt_convert as trt

    channels = 4 + sum(pads[3])
    kernel = np.random.default_rng(1).standard_normal((3, 3, channels, 6)).astype(np.float32)

    def fn(x):
        h = tf.pad(x * 2.0 + 1.0, pads, constant_values=value)
        return {"y": tf.nn.relu(tf.nn.conv2d(h, kernel, 2, "VALID"))}

    path = export_module(str(tmp_path / "m"), fn, [tf.TensorSpec([1, 9, 9, 4], tf.float32)])
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, backend=backend)
    out = conv.convert()
    (op,) = conv.engines.values()
    x = np.random.default_rng(2).standard_normal((1, 9, 9, 4)).astype(np.float32)
    np.testing.assert_allclose(out(x)["y"].numpy(), fn(x)["y"].numpy(), rtol=1e-5, atol=1e-5)
    return [n for n in onnx.load_from_string(op.onnx_model).graph.node]


def test_zero_spatial_padding_folds_into_the_convolution(tmp_path) -> None:
    nodes = _padded_conv(tmp_path, [[0, 0], [1, 2], [0, 1], [0, 0]])
    assert "Pad" not in {n.op_type for n in nodes}
    (conv,) = [n for n in nodes if n.op_type == "Conv"]
    pads = next(list(a.ints) for a in conv.attribute if a.name == "pads")
    assert pads == [1, 0, 2, 1]  # H begin, W begin, H end, W end


def test_padding_a_convolution_cannot_take_stays_a_pad(tmp_path) -> None:
    ones = _padded_conv(tmp_path / "a", [[0, 0], [1, 1], [1, 1], [0, 0]], value=1.0)
    channels = _padded_conv(tmp_path / "b", [[0, 0], [1, 1], [1, 1], [0, 2]])
    for nodes in (ones, channels):
        assert "Pad" in {n.op_type for n in nodes}
