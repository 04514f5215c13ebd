"""The plugin registry: third-party converters add ops and override built-ins deliberately."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tftrt
from tftrt.converters import converter
from tftrt.plugins import ConverterConflictError, get_registry, hookimpl, reset_registry
from tftrt.testing import check_function, lower_function, run_onnx


@pytest.fixture(autouse=True)
def _restore_registry():
    yield
    reset_registry()


@converter("BesselI0e")
def convert_bessel_i0e(ctx, node):
    # i0e(x) = exp(-|x|) * I0(x); a 7-term series is exact to float32 for |x| <= 1
    x = ctx.input(node, 0)
    x2 = ctx.node("Mul", [x, x])
    q = ctx.node("Mul", [x2, ctx.const(np.float32(0.25))])
    term, total = None, None
    coeff = 1.0
    power = None
    for k in range(7):
        if k:
            coeff /= k * k
            power = q if power is None else ctx.node("Mul", [power, q])
            term = ctx.node("Mul", [power, ctx.const(np.float32(coeff))])
            total = ctx.node("Add", [total, term])
        else:
            total = ctx.const(np.ones((1,), np.float32))
    decay = ctx.node("Exp", [ctx.node("Neg", [ctx.node("Abs", [x])])])
    ctx.set_output(node, 0, ctx.node("Mul", [total, decay]))


class AddsAnOp:
    @hookimpl
    def tftrt_op_converters(self):
        return [convert_bessel_i0e]


def _relu_as_max_with(value: float, priority: int):
    @converter("Relu", priority=priority)
    def convert_relu(ctx, node):
        ctx.set_output(node, 0, ctx.node("Max", [ctx.input(node, 0),
                                                 ctx.const(np.float32(value))]))

    class Plugin:
        @hookimpl
        def tftrt_op_converters(self):
            return [convert_relu]

    return Plugin()


def test_third_party_plugin_adds_an_op() -> None:
    assert "BesselI0e" not in tftrt.supported_ops()
    reset_registry(AddsAnOp())
    assert "BesselI0e" in tftrt.supported_ops()
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    check_function(tf.math.bessel_i0e, [x], rtol=1e-5, atol=1e-6)


def test_override_needs_a_higher_priority() -> None:
    with pytest.raises(ConverterConflictError, match="'Relu'.*same priority 0"):
        reset_registry(_relu_as_max_with(0.0, priority=0))
    registry = reset_registry(_relu_as_max_with(-1.0, priority=10))
    assert registry.converter("Relu").priority == 10
    x = np.array([[-3.0, -0.5, 2.0]], np.float32)
    model = lower_function(tf.nn.relu, [tf.TensorSpec([1, 3], tf.float32)], registry)
    np.testing.assert_array_equal(run_onnx(model, [x])[0], np.maximum(x, -1.0))


def test_lower_priority_registration_is_ignored() -> None:
    registry = reset_registry(_relu_as_max_with(-1.0, priority=-5))
    assert registry.converter("Relu").priority == 0
    assert registry.converter_plugin("Relu") in ("converters", "tftrt.converters.builtin")


def test_builtins_come_from_the_entry_point_group() -> None:
    registry = get_registry()
    assert {"openvino", "onnxruntime", "tensorrt"} <= set(registry.backend_names())
    for op in ["MatMul", "BiasAdd", "Conv2D", "DepthwiseConv2dNative", "Add", "AddV2", "Sub",
               "Mul", "RealDiv", "Maximum", "Minimum", "Relu", "Relu6", "Sigmoid", "Tanh",
               "Softmax", "MaxPool", "AvgPool", "Mean", "Reshape", "Squeeze", "Pad",
               "ConcatV2", "Identity", "Const", "Rsqrt", "FusedBatchNormV3"]:
        assert op in tftrt.supported_ops(), op
