"""Elementwise math: binary ops with broadcasting, BiasAdd, and unary functions.

Binary ops keep their operands' layout: a constant or a lower-rank operand is
brought into the layout of the other one instead of transposing the larger
tensor back to TF layout.
"""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter
from tftrt.converters.context import (
    FLOAT_DTYPES,
    LoweringContext,
    NodeInfo,
    Perm,
    invert_perm,
)

FLOAT_AND_INT32 = FLOAT_DTYPES | {np.dtype(np.int32)}


# -- layout helpers (shared with activations and reduce) ---------------------

def onnx_axis(perm: Perm, axis: int) -> int:
    """The ONNX axis holding non-negative TF axis ``axis`` of a tensor held with ``perm``."""
    return axis if perm is None else invert_perm(perm)[axis]


def input_rank(ctx: LoweringContext, node: NodeInfo, i: int) -> int | None:
    """The rank of input ``i`` of ``node`` (None if unknown)."""
    perm = ctx.input_any(node, i)[1]
    return len(perm) if perm is not None else node.rank(i)


def const_in_layout(value: np.ndarray, perm: Perm) -> np.ndarray | None:
    """Constant ``value`` ready to broadcast against a tensor held with ``perm``.

    None when ``value`` has a higher rank than that tensor.
    """
    if perm is None or value.ndim == 0:
        return value
    rank = len(perm)
    if value.ndim > rank:
        return None
    full = value.reshape((1,) * (rank - value.ndim) + value.shape)
    return np.transpose(full, perm)


def expand_to_layout(ctx: LoweringContext, name: str, shape: tuple[int | None, ...],
                     perm: tuple[int, ...], hint: str) -> str:
    """TF-layout tensor ``name`` of shape ``shape`` made ready to broadcast against a
    tensor held with ``perm`` (of rank ``len(perm)`` >= ``len(shape)``)."""
    full = len(perm)
    lead = full - len(shape)
    inv = invert_perm(perm)
    # axes (numbered in the broadcast rank) that may not be of size 1
    real = [lead + k for k, d in enumerate(shape) if d != 1]
    if not real:
        return name  # all unit dims: broadcasts as it is
    positions = [inv[a] for a in real]
    if positions == sorted(positions):
        # those axes keep their order: dropping and inserting unit axes is enough
        unit = [k for k, d in enumerate(shape) if d == 1]
        if unit:
            name = ctx.node("Squeeze", [name, ctx.int64s(unit)], hint=hint)
        axes = [j for j in range(full) if perm[j] not in real]
        if axes:
            name = ctx.node("Unsqueeze", [name, ctx.int64s(axes)], hint=hint)
        return name
    if lead:
        name = ctx.node("Unsqueeze", [name, ctx.int64s(range(lead))], hint=hint)
    return ctx.node("Transpose", [name], perm=list(perm), hint=hint)


def _tensor_in_layout(ctx: LoweringContext, node: NodeInfo, i: int, perm: Perm) -> str | None:
    """Input ``i`` ready to broadcast against a tensor held with ``perm``, or None."""
    name, have = ctx.input_any(node, i)
    if have == perm:
        return name
    if perm is None:
        return ctx.input(node, i)
    rank = input_rank(ctx, node, i)
    if rank is None or rank > len(perm):
        return None
    if have is not None and rank == len(perm):
        return ctx.input_as(node, i, perm)
    shape = node.input_shapes[i] or (None,) * rank
    return expand_to_layout(ctx, ctx.input(node, i), shape, perm, f"{node.name}_in{i}")


def _common_layout(ctx: LoweringContext, node: NodeInfo) -> Perm:
    """The layout two tensor operands are combined in: the higher-rank one's."""
    pa, pb = ctx.input_any(node, 0)[1], ctx.input_any(node, 1)[1]
    if pa == pb:
        return pa
    ra, rb = input_rank(ctx, node, 0), input_rank(ctx, node, 1)
    if ra is None or rb is None:
        return None
    if ra != rb:
        return pa if ra > rb else pb
    return pa if pa is not None else pb


def binary_operands(ctx: LoweringContext, node: NodeInfo) -> tuple[str, str, Perm]:
    """Inputs 0 and 1 of ``node`` in one common layout, and that layout."""
    consts = [node.const(0), node.const(1)]
    if consts[0] is not None and consts[1] is not None:
        return (ctx.const(consts[0], f"{node.name}_x", consts[0].dtype),
                ctx.const(consts[1], f"{node.name}_y", consts[1].dtype), None)
    if consts[0] is not None or consts[1] is not None:
        ci = 0 if consts[0] is not None else 1
        value = consts[ci]
        name, perm = ctx.input_any(node, 1 - ci)
        laid = const_in_layout(value, perm)
        if laid is None:
            name, perm, laid = ctx.input(node, 1 - ci), None, value
        c = ctx.const(np.ascontiguousarray(laid), f"{node.name}_c", value.dtype)
        return (c, name, perm) if ci == 0 else (name, c, perm)
    perm = _common_layout(ctx, node)
    a = _tensor_in_layout(ctx, node, 0, perm)
    b = _tensor_in_layout(ctx, node, 1, perm)
    if a is None or b is None:
        return ctx.input(node, 0), ctx.input(node, 1), None
    return a, b, perm


# -- binary ops ----------------------------------------------------------------

_BINARY = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul",
           "Maximum": "Max", "Minimum": "Min", "RealDiv": "Div", "Div": "Div", "Pow": "Pow"}


@converter("Add", "AddV2", "Sub", "Mul", "Maximum", "Minimum", dtypes=FLOAT_AND_INT32)
def convert_binary_arith(ctx: LoweringContext, node: NodeInfo) -> None:
    a, b, perm = binary_operands(ctx, node)
    ctx.set_output(node, 0, ctx.node(_BINARY[node.op], [a, b], hint=node.name), perm)


@converter("RealDiv", "Div", "Pow", restrictions="float only")
def convert_binary_float(ctx: LoweringContext, node: NodeInfo) -> None:
    a, b, perm = binary_operands(ctx, node)
    ctx.set_output(node, 0, ctx.node(_BINARY[node.op], [a, b], hint=node.name), perm)


@converter("SquaredDifference")
def convert_squared_difference(ctx: LoweringContext, node: NodeInfo) -> None:
    a, b, perm = binary_operands(ctx, node)
    diff = ctx.node("Sub", [a, b], hint=f"{node.name}_diff")
    ctx.set_output(node, 0, ctx.node("Mul", [diff, diff], hint=node.name), perm)


# -- BiasAdd -------------------------------------------------------------------

def _validate_bias_add(node: NodeInfo) -> str | None:
    fmt = node.attr("data_format", "NHWC")
    if fmt not in ("NHWC", "NCHW"):
        return f"BiasAdd data_format {fmt} is not supported"
    if node.rank(1) not in (None, 1):
        return "The bias of BiasAdd must be a vector"
    if fmt == "NCHW" and node.rank(0) is None:
        return "BiasAdd with data_format NCHW needs an input of known rank"
    return None


@converter("BiasAdd", "BiasAddV1", validate=_validate_bias_add,
           restrictions="NCHW needs a known input rank")
def convert_bias_add(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    bias = node.const(1)
    nchw = node.attr("data_format", "NHWC") == "NCHW"
    if perm is None and not nchw:
        b = ctx.input(node, 1) if bias is None else ctx.const(bias, f"{node.name}_bias",
                                                              bias.dtype)
        ctx.set_output(node, 0, ctx.node("Add", [name, b], hint=node.name))
        return
    rank = input_rank(ctx, node, 0)
    assert rank is not None
    axis = onnx_axis(perm, 1 if nchw else rank - 1)
    if bias is not None:
        shape = [-1 if k == axis else 1 for k in range(rank)]
        b = ctx.const(bias.reshape(shape), f"{node.name}_bias", bias.dtype)
    else:
        axes = [k for k in range(rank) if k != axis]
        b = ctx.node("Unsqueeze", [ctx.input(node, 1), ctx.int64s(axes)],
                     hint=f"{node.name}_bias")
    ctx.set_output(node, 0, ctx.node("Add", [name, b], hint=node.name), perm)


# -- unary ops -------------------------------------------------------------------

_UNARY = {"Sqrt": "Sqrt", "Exp": "Exp", "Log": "Log", "Neg": "Neg", "Abs": "Abs",
          "Reciprocal": "Reciprocal", "Erf": "Erf", "Floor": "Floor", "Ceil": "Ceil"}


def emit_same_layout(ctx: LoweringContext, node: NodeInfo, onnx_op: str, **attrs: object) -> None:
    """Lower a one-input elementwise op to ``onnx_op``, keeping its input's layout."""
    name, perm = ctx.input_any(node, 0)
    ctx.set_output(node, 0, ctx.node(onnx_op, [name], hint=node.name, **attrs), perm)


@converter(*_UNARY)
def convert_unary(ctx: LoweringContext, node: NodeInfo) -> None:
    emit_same_layout(ctx, node, _UNARY[node.op])


@converter("Rsqrt")
def convert_rsqrt(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    root = ctx.node("Sqrt", [name], hint=f"{node.name}_sqrt")
    ctx.set_output(node, 0, ctx.node("Reciprocal", [root], hint=node.name), perm)


@converter("Square")
def convert_square(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    ctx.set_output(node, 0, ctx.node("Mul", [name, name], hint=node.name), perm)
