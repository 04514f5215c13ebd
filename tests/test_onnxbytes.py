"""Engines' ONNX bytes with weights the ModelProto does not hold, each copied once."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper

from tftrt.compiler import onnxbytes
from tftrt.converters.context import LoweringContext

RNG = np.random.default_rng(0)


def _lowered(detach_bytes: int | None):
    """y = x @ W + b, with W large and b small, lowered in a context."""
    ctx = LoweringContext(detach_bytes=detach_bytes)
    w = RNG.standard_normal((300, 200)).astype(np.float32)
    raw = w.tobytes()
    w_view = np.frombuffer(raw, np.float32).reshape(w.shape)  # as a decoded TF weight
    b = np.arange(200, dtype=np.float32)
    y = ctx.node("Add", [ctx.node("MatMul", ["x", ctx.const(w_view, "w")]), ctx.const(b, "b")])
    ctx.node("Identity", [y], hint="y")
    ctx.nodes[-1].output[0] = "y"
    model = ctx.make_model([("x", np.dtype(np.float32), (2, 300))],
                           [("y", np.dtype(np.float32), (2, 200))], "g")
    return ctx, model, w, b, raw


def test_detached_weights_are_the_buffers_given_and_not_in_the_model() -> None:
    ctx, model, w, _, raw = _lowered(detach_bytes=1 << 16)
    assert [t.name for t in model.graph.initializer] == ["b"]
    ((header, buffer),) = ctx.detached.values()
    assert buffer is raw  # the TF proto's bytes themselves: not copied
    assert list(header.dims) == [300, 200] and header.data_type == TensorProto.FLOAT


def test_serialized_model_equals_the_model_holding_its_weights() -> None:
    ctx, model, w, b, _ = _lowered(detach_bytes=1 << 16)
    _, whole, *_ = _lowered(detach_bytes=None)
    data = onnxbytes.serialize(model, ctx.detached)
    parsed = onnx.load_from_string(data)
    onnx.checker.check_model(parsed)
    inits = {t.name: numpy_helper.to_array(t) for t in parsed.graph.initializer}
    assert sorted(inits) == ["b", "w"]
    np.testing.assert_array_equal(inits["w"], w)
    np.testing.assert_array_equal(inits["b"], b)
    assert [n.op_type for n in parsed.graph.node] == [n.op_type for n in whole.graph.node]
    x = RNG.standard_normal((2, 300)).astype(np.float32)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], x @ w + b, rtol=1e-5, atol=1e-4)


def test_a_transposed_weight_is_written_in_its_own_order() -> None:
    ctx = LoweringContext(detach_bytes=16)
    w = RNG.standard_normal((8, 6)).astype(np.float32)
    name = ctx.const(w.T, "wt")  # not contiguous: made so once
    ctx.node("Identity", [ctx.node("MatMul", ["x", name])], hint="y")
    ctx.nodes[-1].output[0] = "y"
    model = ctx.make_model([("x", np.dtype(np.float32), (1, 6))],
                           [("y", np.dtype(np.float32), (1, 8))], "g")
    parsed = onnxbytes.attach(model, ctx.detached)
    (init,) = parsed.graph.initializer
    np.testing.assert_array_equal(numpy_helper.to_array(init), w.T)


def test_attach_without_weights_is_the_model_itself() -> None:
    _, model, *_ = _lowered(detach_bytes=None)
    assert onnxbytes.attach(model, {}) is model
