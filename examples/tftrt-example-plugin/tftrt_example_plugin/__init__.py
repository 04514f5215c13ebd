"""An example tftrt plugin: a converter for a new op and one overriding a built-in.

tftrt finds this module through the ``tftrt`` entry point declared in
``pyproject.toml`` and calls its ``tftrt_op_converters`` hook.
"""

from __future__ import annotations

import math

import numpy as np

from tftrt.converters import LoweringContext, NodeInfo, converter
from tftrt.plugins import hookimpl
from tftrt.plugins.types import OpConverter

__version__ = "0.1.0"

#: The priority of the Softplus override: higher than the built-in's 0.
OVERRIDE_PRIORITY = 10

# digamma(z) ~ log(z) - 1/(2z) - sum_k B_2k / (2k z^2k), accurate to float32 for z >= 6
_ASYMPTOTIC = (1 / 12, -1 / 120, 1 / 252, -1 / 240)
_SHIFT = 6


@converter("Digamma", dtypes=(np.float32,),
           restrictions="float32; at the poles (0, -1, -2, ...) the result may differ")
def convert_digamma(ctx: LoweringContext, node: NodeInfo) -> None:
    """digamma(x) = d/dx log(Gamma(x)), which ONNX has no operator for.

    x < 0.5 reflects: digamma(x) = digamma(1 - x) - pi / tan(pi x). For z >= 0.5,
    the recurrence digamma(z) = digamma(z + 6) - sum_{k<6} 1 / (z + k) moves the
    argument to where the asymptotic series is exact to float32.
    """
    x, perm = ctx.input_any(node, 0)  # elementwise: keep whatever layout x has

    def c(value: float) -> str:
        return ctx.const(np.float32(value), "c")

    reflect = ctx.node("Less", [x, c(0.5)])
    z = ctx.node("Where", [reflect, ctx.node("Sub", [c(1.0), x]), x])
    shifted = ctx.node("Add", [z, c(_SHIFT)])
    inv = ctx.node("Reciprocal", [shifted])
    inv2 = ctx.node("Mul", [inv, inv])
    series, power = None, inv2
    for k, coeff in enumerate(_ASYMPTOTIC):
        if k:
            power = ctx.node("Mul", [power, inv2])
        term = ctx.node("Mul", [power, c(coeff)])
        series = term if series is None else ctx.node("Add", [series, term])
    psi = ctx.node("Sub", [ctx.node("Log", [shifted]),
                           ctx.node("Add", [ctx.node("Mul", [inv, c(0.5)]), series])])
    for k in range(_SHIFT):
        psi = ctx.node("Sub", [psi, ctx.node("Reciprocal", [ctx.node("Add", [z, c(k)])])])
    # tan has period pi: reduce x to [-0.5, 0.5] exactly before multiplying by pi
    frac = ctx.node("Sub", [x, ctx.node("Round", [x])])
    cot = ctx.node("Div", [c(math.pi), ctx.node("Tan", [ctx.node("Mul", [frac, c(math.pi)])])])
    out = ctx.node("Where", [reflect, ctx.node("Sub", [psi, cot]), psi], hint=node.name)
    ctx.set_output(node, 0, out, perm)


@converter("Softplus", priority=OVERRIDE_PRIORITY, restrictions="float32/float16")
def convert_softplus(ctx: LoweringContext, node: NodeInfo) -> None:
    """softplus(x) = max(x, 0) + log(1 + exp(-|x|)): no overflow for large |x|."""
    dtype = np.dtype(node.attr("T", np.float32))
    x, perm = ctx.input_any(node, 0)  # elementwise: keep whatever layout x has
    zero = ctx.const(np.zeros((), dtype), "zero", dtype)
    one = ctx.const(np.ones((), dtype), "one", dtype)
    decay = ctx.node("Exp", [ctx.node("Neg", [ctx.node("Abs", [x])])])
    tail = ctx.node("Log", [ctx.node("Add", [one, decay])])
    out = ctx.node("Add", [ctx.node("Max", [x, zero]), tail], hint=node.name)
    ctx.set_output(node, 0, out, perm)


@hookimpl
def tftrt_op_converters() -> list[OpConverter]:
    """The converters this plugin provides."""
    return [convert_digamma, convert_softplus]
