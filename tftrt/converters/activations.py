"""Activation functions; all keep their input's layout."""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter
from tftrt.converters.context import LoweringContext, NodeInfo
from tftrt.converters.elementwise import emit_same_layout, onnx_axis

_SIMPLE = {"Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Elu": "Elu",
           "Softplus": "Softplus", "Softsign": "Softsign"}

# tf.nn.selu's constants
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@converter(*_SIMPLE)
def convert_activation(ctx: LoweringContext, node: NodeInfo) -> None:
    emit_same_layout(ctx, node, _SIMPLE[node.op])


@converter("Selu")
def convert_selu(ctx: LoweringContext, node: NodeInfo) -> None:
    emit_same_layout(ctx, node, "Selu", alpha=_SELU_ALPHA, gamma=_SELU_SCALE)


@converter("LeakyRelu")
def convert_leaky_relu(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    out = ctx.node("LeakyRelu", [name], hint=node.name, alpha=float(node.attr("alpha", 0.2)))
    ctx.set_output(node, 0, out, perm)


@converter("Relu6")
def convert_relu6(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    dt = np.dtype(node.attr("T", np.float32))
    lo, hi = ctx.const(np.array(0, dt), "zero", dt), ctx.const(np.array(6, dt), "six", dt)
    ctx.set_output(node, 0, ctx.node("Clip", [name, lo, hi], hint=node.name), perm)


@converter("Softmax", "LogSoftmax")
def convert_softmax(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    axis = -1 if perm is None else onnx_axis(perm, len(perm) - 1)
    ctx.set_output(node, 0, ctx.node(node.op, [name], hint=node.name, axis=axis), perm)
