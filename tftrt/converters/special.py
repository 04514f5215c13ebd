"""Elementwise functions ONNX has no operator for, computed in float32 (Erfc, Expm1,
Log1p), and float classification (IsNan, IsInf, IsFinite)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tftrt.converters.base import converter
from tftrt.converters.context import LoweringContext, NodeInfo, TensorProto, onnx_dtype
from tftrt.converters.elementwise import node_dtype, scalar_like

# -- unary functions with no ONNX operator: computed in float32 -------------------

F32 = np.dtype(np.float32)


def _emit_in_float32(ctx: LoweringContext, node: NodeInfo,
                     body: Callable[[str], str]) -> None:
    """Lower a one-input elementwise op as ``body`` over a float32 tensor, keeping the
    input's layout; half inputs are widened and the result narrowed back."""
    name, perm = ctx.input_any(node, 0)
    dt = node_dtype(node)
    if dt == F32:
        out = body(name)
    else:
        wide = ctx.node("Cast", [name], to=TensorProto.FLOAT, hint=f"{node.name}_f32")
        out = ctx.node("Cast", [body(wide)], to=onnx_dtype(dt), hint=node.name)
    ctx.set_output(node, 0, out, perm)


# erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0: fractional error < 1.2e-7
# (Numerical Recipes, erfcc); erfc(-z) = 2 - erfc(z)
_ERFC_COEFFS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
                -1.13520398, 1.48851587, -0.82215223, 0.17087277)


@converter("Erfc")
def convert_erfc(ctx: LoweringContext, node: NodeInfo) -> None:
    def body(x: str) -> str:
        h = node.name
        z = ctx.node("Abs", [x], hint=f"{h}_abs")
        half_z = ctx.node("Mul", [z, scalar_like(ctx, 0.5, F32)], hint=f"{h}_halfz")
        t = ctx.node("Div", [scalar_like(ctx, 1.0, F32),
                             ctx.node("Add", [half_z, scalar_like(ctx, 1.0, F32)],
                                      hint=f"{h}_den")], hint=f"{h}_t")
        poly = scalar_like(ctx, _ERFC_COEFFS[-1], F32)
        for c in reversed(_ERFC_COEFFS[:-1]):
            poly = ctx.node("Add", [ctx.node("Mul", [poly, t], hint=f"{h}_horner"),
                                    scalar_like(ctx, c, F32)], hint=f"{h}_horner")
        exponent = ctx.node("Sub", [poly, ctx.node("Mul", [z, z], hint=f"{h}_z2")],
                            hint=f"{h}_exponent")
        tail = ctx.node("Mul", [t, ctx.node("Exp", [exponent], hint=f"{h}_exp")],
                        hint=f"{h}_tail")
        negative = ctx.node("Less", [x, scalar_like(ctx, 0.0, F32)], hint=f"{h}_neg")
        mirrored = ctx.node("Sub", [scalar_like(ctx, 2.0, F32), tail], hint=f"{h}_mirror")
        return ctx.node("Where", [negative, mirrored, tail], hint=f"{h}_erfc")

    _emit_in_float32(ctx, node, body)


def _kahan(ctx: LoweringContext, h: str, x: str, u: str, num: str, den: str, far: str) -> str:
    """Kahan's accurate form near 0: ``num * x / den`` where |x| < 0.5 (``x`` itself where
    ``u`` rounds to 1), ``far`` elsewhere."""
    one, half = scalar_like(ctx, 1.0, F32), scalar_like(ctx, 0.5, F32)
    ratio = ctx.node("Div", [ctx.node("Mul", [num, x], hint=f"{h}_num"), den], hint=f"{h}_kahan")
    exact = ctx.node("Equal", [u, one], hint=f"{h}_u1")
    near = ctx.node("Where", [exact, x, ratio], hint=f"{h}_near")
    small = ctx.node("Less", [ctx.node("Abs", [x], hint=f"{h}_abs"), half], hint=f"{h}_small")
    return ctx.node("Where", [small, near, far], hint=h)


@converter("Expm1")
def convert_expm1(ctx: LoweringContext, node: NodeInfo) -> None:
    def body(x: str) -> str:
        # Kahan: (u - 1) * x / log(u), u = exp(x); away from 0, u - 1 is accurate
        h = node.name
        u = ctx.node("Exp", [x], hint=f"{h}_exp")
        um1 = ctx.node("Sub", [u, scalar_like(ctx, 1.0, F32)], hint=f"{h}_um1")
        return _kahan(ctx, h, x, u, um1, ctx.node("Log", [u], hint=f"{h}_log"), um1)

    _emit_in_float32(ctx, node, body)


@converter("Log1p")
def convert_log1p(ctx: LoweringContext, node: NodeInfo) -> None:
    def body(x: str) -> str:
        # Kahan: log(u) * x / (u - 1), u = 1 + x; away from 0, log(u) is accurate
        h = node.name
        one = scalar_like(ctx, 1.0, F32)
        u = ctx.node("Add", [x, one], hint=f"{h}_u")
        log_u = ctx.node("Log", [u], hint=f"{h}_log")
        return _kahan(ctx, h, x, u, log_u, ctx.node("Sub", [u, one], hint=f"{h}_um1"), log_u)

    _emit_in_float32(ctx, node, body)


# -- float classification (bool results) -------------------------------------------

@converter("IsNan", "IsInf", "IsFinite")
def convert_float_class(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    if node.op == "IsNan":
        same = ctx.node("Equal", [name, name], hint=f"{node.name}_number")
        out = ctx.node("Not", [same], hint=node.name)
    else:
        magnitude = ctx.node("Abs", [name], hint=f"{node.name}_abs")
        inf = scalar_like(ctx, np.inf, node_dtype(node))
        out = ctx.node("Equal" if node.op == "IsInf" else "Less", [magnitude, inf],
                       hint=node.name)
    ctx.set_output(node, 0, out, perm)
