"""Elementwise math: binary and n-ary ops with broadcasting (Add .. FloorMod, AddN,
ClipByValue), BiasAdd and unary functions with an ONNX operator (the others, and float
classification, are in ``special``).

Elementwise ops keep their operands' layout: a constant or a lower-rank operand
is brought into the layout of the other one instead of transposing the larger
tensor back to TF layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tftrt.converters.base import converter
from tftrt.converters.context import (
    INT_DTYPES,
    NUMERIC_DTYPES,
    LoweringContext,
    NodeInfo,
    Perm,
    invert_perm,
    onnx_dtype,
)

NUMERIC = NUMERIC_DTYPES


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


def _common_layout(ctx: LoweringContext, node: NodeInfo, tensors: Sequence[int]) -> Perm:
    """The layout tensor operands ``tensors`` are combined in: that of a highest-rank one."""
    perms = [ctx.input_any(node, i)[1] for i in tensors]
    if all(p == perms[0] for p in perms):
        return perms[0]
    ranks = [input_rank(ctx, node, i) for i in tensors]
    if any(r is None for r in ranks):
        return None
    top = max(r for r in ranks if r is not None)
    held = [p for p, r in zip(perms, ranks, strict=True) if r == top and p is not None]
    return held[0] if held else None


def operands_in_layout(ctx: LoweringContext, node: NodeInfo,
                       indices: Sequence[int]) -> tuple[list[str], Perm]:
    """Inputs ``indices`` of ``node`` ready to broadcast together in one common layout,
    and that layout.

    The layout is that of a highest-rank non-constant operand; when some operand
    cannot follow it, every operand is taken in TF layout.
    """
    consts = {i: node.const(i) for i in indices}
    tensors = [i for i in indices if consts[i] is None]
    perm = _common_layout(ctx, node, tensors) if tensors else None
    names: list[str] = []
    for i in indices:
        value = consts[i]
        if value is None:
            name = _tensor_in_layout(ctx, node, i, perm)
        else:
            laid = const_in_layout(value, perm)
            name = None if laid is None else ctx.const(np.array(laid, order="C"),
                                                       f"{node.name}_in{i}", value.dtype)
        if name is None:
            return [_tf_layout_operand(ctx, node, i) for i in indices], None
        names.append(name)
    return names, perm


def _tf_layout_operand(ctx: LoweringContext, node: NodeInfo, i: int) -> str:
    value = node.const(i)
    if value is None:
        return ctx.input(node, i)
    return ctx.const(value, f"{node.name}_in{i}", value.dtype)


def binary_operands(ctx: LoweringContext, node: NodeInfo) -> tuple[str, str, Perm]:
    """Inputs 0 and 1 of ``node`` in one common layout, and that layout."""
    (a, b), perm = operands_in_layout(ctx, node, (0, 1))
    return a, b, perm


def scalar_like(ctx: LoweringContext, value: float, dtype: np.dtype) -> str:
    """A shared scalar constant of ``dtype``."""
    return ctx.const(np.array(value, dtype), f"scalar_{dtype.name}", dtype)


# -- binary ops ----------------------------------------------------------------

_BINARY = {"Add": "Add", "AddV2": "Add", "Sub": "Sub", "Mul": "Mul",
           "Maximum": "Max", "Minimum": "Min", "RealDiv": "Div", "Div": "Div", "Pow": "Pow"}


# op -> (the constant that leaves the other operand as it is, which operands it may be)
_NEUTRAL = {"Add": (0, (0, 1)), "AddV2": (0, (0, 1)), "Sub": (0, (1,)), "Mul": (1, (0, 1)),
            "RealDiv": (1, (1,)), "Div": (1, (1,))}


def _passes_through(node: NodeInfo) -> int | None:
    """The operand ``node`` returns unchanged (the other a constant of zeros for Add, ones
    for Mul, that broadcasts to nothing new), or None. A frozen Keras ``Normalization``
    of mean 0 and variance 1 is such an Add and Mul; OpenVINO runs them when the constant
    comes first."""
    rule = _NEUTRAL.get(node.op)
    if rule is None:
        return None
    neutral, sides = rule
    for c in sides:
        k = 1 - c
        value = node.const(c)
        if value is None or value.size == 0 or node.const(k) is not None or \
                not np.all(value == neutral):
            continue
        shape, out = node.input_shapes[k], node.output_shapes[0]
        if shape is None or out is None or tuple(shape) != tuple(out) or None in shape:
            continue
        if node.input_dtypes[k] == node.output_dtypes[0]:
            return k
    return None


def _emit_binary(ctx: LoweringContext, node: NodeInfo) -> None:
    k = _passes_through(node)
    if k is not None:
        name, perm = ctx.input_any(node, k)
        ctx.set_output(node, 0, name, perm)
        return
    a, b, perm = binary_operands(ctx, node)
    ctx.set_output(node, 0, ctx.node(_BINARY[node.op], [a, b], hint=node.name), perm)


@converter("Add", "AddV2", "Sub", "Mul", "Maximum", "Minimum", dtypes=NUMERIC)
def convert_binary_arith(ctx: LoweringContext, node: NodeInfo) -> None:
    _emit_binary(ctx, node)


@converter("RealDiv", "Div", "Pow", restrictions="float only")
def convert_binary_float(ctx: LoweringContext, node: NodeInfo) -> None:
    _emit_binary(ctx, node)


@converter("SquaredDifference")
def convert_squared_difference(ctx: LoweringContext, node: NodeInfo) -> None:
    a, b, perm = binary_operands(ctx, node)
    diff = ctx.node("Sub", [a, b], hint=f"{node.name}_diff")
    ctx.set_output(node, 0, ctx.node("Mul", [diff, diff], hint=node.name), perm)


def node_dtype(node: NodeInfo) -> np.dtype:
    """The node's ``T`` attribute (float32 where it has none)."""
    return np.dtype(node.attr("T", np.float32))


def _int_floor_div(ctx: LoweringContext, a: str, b: str, hint: str, dt: np.dtype) -> str:
    """Integer ``a / b`` rounded toward -inf, whether ONNX Div truncates or floors."""
    zero = scalar_like(ctx, 0, dt)
    q = ctx.node("Div", [a, b], hint=f"{hint}_div")
    r = ctx.node("Sub", [a, ctx.node("Mul", [q, b], hint=f"{hint}_qb")], hint=f"{hint}_rem")
    inexact = ctx.node("Not", [ctx.node("Equal", [r, zero], hint=f"{hint}_exact")],
                       hint=f"{hint}_inexact")
    signs = ctx.node("Xor", [ctx.node("Less", [r, zero], hint=f"{hint}_rneg"),
                             ctx.node("Less", [b, zero], hint=f"{hint}_bneg")],
                     hint=f"{hint}_signs")
    fix = ctx.node("Cast", [ctx.node("And", [inexact, signs], hint=f"{hint}_fix")],
                   to=onnx_dtype(dt), hint=f"{hint}_fix_int")
    return ctx.node("Sub", [q, fix], hint=hint)


@converter("FloorDiv", dtypes=NUMERIC)
def convert_floor_div(ctx: LoweringContext, node: NodeInfo) -> None:
    a, b, perm = binary_operands(ctx, node)
    if node_dtype(node) in INT_DTYPES:
        out = _int_floor_div(ctx, a, b, node.name, node_dtype(node))
    else:
        out = ctx.node("Floor", [ctx.node("Div", [a, b], hint=f"{node.name}_div")],
                       hint=node.name)
    ctx.set_output(node, 0, out, perm)


@converter("FloorMod", dtypes=NUMERIC)
def convert_floor_mod(ctx: LoweringContext, node: NodeInfo) -> None:
    a, b, perm = binary_operands(ctx, node)
    dt = node_dtype(node)
    if dt in INT_DTYPES:
        ctx.set_output(node, 0, ctx.node("Mod", [a, b], fmod=0, hint=node.name), perm)
        return
    zero = scalar_like(ctx, 0, dt)
    m = ctx.node("Mod", [a, b], fmod=1, hint=f"{node.name}_fmod")
    nonzero = ctx.node("Not", [ctx.node("Equal", [m, zero], hint=f"{node.name}_zero")],
                       hint=f"{node.name}_nonzero")
    signs = ctx.node("Xor", [ctx.node("Less", [m, zero], hint=f"{node.name}_mneg"),
                             ctx.node("Less", [b, zero], hint=f"{node.name}_bneg")],
                     hint=f"{node.name}_signs")
    fix = ctx.node("And", [nonzero, signs], hint=f"{node.name}_fix")
    shifted = ctx.node("Add", [m, b], hint=f"{node.name}_shift")
    ctx.set_output(node, 0, ctx.node("Where", [fix, shifted, m], hint=node.name), perm)


def _validate_add_n(node: NodeInfo) -> str | None:
    if len(node.inputs) < 2:
        return f"AddN needs at least 2 inputs, got {len(node.inputs)}"
    return None


@converter("AddN", dtypes=NUMERIC, validate=_validate_add_n,
           restrictions="at least 2 inputs")
def convert_add_n(ctx: LoweringContext, node: NodeInfo) -> None:
    names, perm = operands_in_layout(ctx, node, range(len(node.inputs)))
    out = names[0]
    for k, name in enumerate(names[1:], start=1):
        last = k == len(names) - 1
        out = ctx.node("Add", [out, name], hint=node.name if last else f"{node.name}_{k}")
    ctx.set_output(node, 0, out, perm)


@converter("ClipByValue", dtypes=NUMERIC)
def convert_clip_by_value(ctx: LoweringContext, node: NodeInfo) -> None:
    (x, lo, hi), perm = operands_in_layout(ctx, node, (0, 1, 2))
    # TF applies the upper bound first: where lo > hi the result is lo
    upper = ctx.node("Min", [x, hi], hint=f"{node.name}_min")
    ctx.set_output(node, 0, ctx.node("Max", [upper, lo], hint=node.name), perm)


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
          "Reciprocal": "Reciprocal", "Inv": "Reciprocal", "Erf": "Erf", "Floor": "Floor",
          "Ceil": "Ceil", "Sin": "Sin", "Cos": "Cos", "Tan": "Tan", "Sinh": "Sinh",
          "Cosh": "Cosh", "Asin": "Asin", "Acos": "Acos", "Atan": "Atan", "Asinh": "Asinh",
          "Acosh": "Acosh", "Atanh": "Atanh"}


def emit_same_layout(ctx: LoweringContext, node: NodeInfo, onnx_op: str, **attrs: object) -> None:
    """Lower a one-input elementwise op to ``onnx_op``, keeping its input's layout."""
    name, perm = ctx.input_any(node, 0)
    ctx.set_output(node, 0, ctx.node(onnx_op, [name], hint=node.name, **attrs), perm)


_SIGNED = ("Neg", "Abs")  # also on integers


@converter(*(op for op in _UNARY if op not in _SIGNED))
def convert_unary(ctx: LoweringContext, node: NodeInfo) -> None:
    emit_same_layout(ctx, node, _UNARY[node.op])


@converter(*_SIGNED, dtypes=NUMERIC)
def convert_signed_unary(ctx: LoweringContext, node: NodeInfo) -> None:
    emit_same_layout(ctx, node, _UNARY[node.op])


@converter("Rsqrt")
def convert_rsqrt(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    root = ctx.node("Sqrt", [name], hint=f"{node.name}_sqrt")
    ctx.set_output(node, 0, ctx.node("Reciprocal", [root], hint=node.name), perm)


@converter("Square", dtypes=NUMERIC)
def convert_square(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    ctx.set_output(node, 0, ctx.node("Mul", [name, name], hint=node.name), perm)


@converter("Round", dtypes=NUMERIC)
def convert_round(ctx: LoweringContext, node: NodeInfo) -> None:
    emit_same_layout(ctx, node, "Identity" if node_dtype(node) in INT_DTYPES else "Round")


@converter("Sign", dtypes=NUMERIC)
def convert_sign(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    if node_dtype(node) in INT_DTYPES:
        ctx.set_output(node, 0, ctx.node("Sign", [name], hint=node.name), perm)
        return
    sign = ctx.node("Sign", [name], hint=f"{node.name}_sign")
    number = ctx.node("Equal", [name, name], hint=f"{node.name}_number")
    ctx.set_output(node, 0, ctx.node("Where", [number, sign, name], hint=node.name), perm)
