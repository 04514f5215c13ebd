"""Comparisons, logical ops, selection and constant-filled ``*Like`` tensors.

All are elementwise: they keep their operands' layout (see ``operands_in_layout``).
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from tftrt.converters.base import converter
from tftrt.converters.context import LoweringContext, NodeInfo, Shape
from tftrt.converters.elementwise import (
    NUMERIC,
    binary_operands,
    emit_same_layout,
    input_rank,
    onnx_axis,
    operands_in_layout,
)

BOOL = np.dtype(np.bool_)
DATA_DTYPES = NUMERIC | {BOOL}

# -- comparisons -------------------------------------------------------------------

_ORDERING = {"Greater": "Greater", "Less": "Less", "GreaterEqual": "GreaterOrEqual",
             "LessEqual": "LessOrEqual"}


def _broadcastable(a: Shape, b: Shape) -> bool:
    """Whether static shapes ``a`` and ``b`` are known to broadcast together."""
    if a is None or b is None:
        return False
    for da, db in zip(reversed(a), reversed(b), strict=False):
        if da is None or db is None:
            if not (da == 1 or db == 1):
                return False
        elif da != db and 1 not in (da, db):
            return False
    return True


def _validate_equality(node: NodeInfo) -> str | None:
    if node.attr("incompatible_shape_error", True):
        return None
    if _broadcastable(node.input_shapes[0], node.input_shapes[1]):
        return None
    return (f"{node.op} with incompatible_shape_error=false needs input shapes known to "
            f"broadcast; got {node.input_shapes[0]} and {node.input_shapes[1]}")


@converter(*_ORDERING, dtypes=NUMERIC)
def convert_ordering(ctx: LoweringContext, node: NodeInfo) -> None:
    a, b, perm = binary_operands(ctx, node)
    ctx.set_output(node, 0, ctx.node(_ORDERING[node.op], [a, b], hint=node.name), perm)


@converter("Equal", "NotEqual", dtypes=DATA_DTYPES, validate=_validate_equality,
           restrictions="incompatible_shape_error=false needs statically broadcastable shapes")
def convert_equality(ctx: LoweringContext, node: NodeInfo) -> None:
    a, b, perm = binary_operands(ctx, node)
    if node.op == "Equal":
        out = ctx.node("Equal", [a, b], hint=node.name)
    else:
        out = ctx.node("Not", [ctx.node("Equal", [a, b], hint=f"{node.name}_eq")],
                       hint=node.name)
    ctx.set_output(node, 0, out, perm)


# -- logical ops -------------------------------------------------------------------

def _validate_bool_inputs(node: NodeInfo) -> str | None:
    for i, dt in enumerate(node.input_dtypes):
        if dt is not None and np.dtype(dt) != BOOL:
            return f"{node.op} input {i} must be bool, got {np.dtype(dt).name}"
    return None


@converter("LogicalAnd", "LogicalOr", dtypes=None, validate=_validate_bool_inputs)
def convert_logical_binary(ctx: LoweringContext, node: NodeInfo) -> None:
    a, b, perm = binary_operands(ctx, node)
    op = "And" if node.op == "LogicalAnd" else "Or"
    ctx.set_output(node, 0, ctx.node(op, [a, b], hint=node.name), perm)


@converter("LogicalNot", dtypes=None, validate=_validate_bool_inputs)
def convert_logical_not(ctx: LoweringContext, node: NodeInfo) -> None:
    emit_same_layout(ctx, node, "Not")


# -- selection ---------------------------------------------------------------------

def _validate_select(node: NodeInfo) -> str | None:
    reason = _validate_cond(node)
    if reason is not None or node.op == "SelectV2":
        return reason
    cond_rank, x_rank = node.rank(0), node.rank(1)
    if cond_rank is None or x_rank is None:
        return "Select needs condition and input of known rank"
    if cond_rank not in (0, 1, x_rank):
        return (f"Select condition must be a scalar, a vector or of the inputs' rank {x_rank}; "
                f"got rank {cond_rank}")
    return None


def _validate_cond(node: NodeInfo) -> str | None:
    dt = node.input_dtypes[0]
    if dt is not None and np.dtype(dt) != BOOL:
        return f"{node.op} condition must be bool, got {np.dtype(dt).name}"
    return None


def _where(ctx: LoweringContext, node: NodeInfo, cond: str, x: str, y: str) -> str:
    if np.dtype(node.attr("T", np.float32)) != BOOL:
        return ctx.node("Where", [cond, x, y], hint=node.name)
    # bool data: (cond and x) or (not cond and y)
    take_x = ctx.node("And", [cond, x], hint=f"{node.name}_x")
    take_y = ctx.node("And", [ctx.node("Not", [cond], hint=f"{node.name}_notc"), y],
                      hint=f"{node.name}_y")
    return ctx.node("Or", [take_x, take_y], hint=node.name)


@converter("Select", "SelectV2", dtypes=DATA_DTYPES, validate=_validate_select,
           restrictions="Select: known ranks")
def convert_select(ctx: LoweringContext, node: NodeInfo) -> None:
    rows = node.op == "Select" and node.rank(0) == 1 and (node.rank(1) or 0) > 1
    if not rows:
        (cond, x, y), perm = operands_in_layout(ctx, node, (0, 1, 2))
        ctx.set_output(node, 0, _where(ctx, node, cond, x, y), perm)
        return
    # TF1 Select with a vector condition picks rows: cond[i] selects x[i, ...]
    (x, y), perm = operands_in_layout(ctx, node, (1, 2))
    rank = input_rank(ctx, node, 1)
    assert rank is not None
    row_axis = onnx_axis(perm, 0)
    axes = [k for k in range(rank) if k != row_axis]
    cond = ctx.node("Unsqueeze", [ctx.input(node, 0), ctx.int64s(axes)],
                    hint=f"{node.name}_cond")
    ctx.set_output(node, 0, _where(ctx, node, cond, x, y), perm)


# -- ZerosLike / OnesLike ------------------------------------------------------------

# TF-TRT also registered the lower-case spellings some exporters write.
@converter("ZerosLike", "OnesLike", "zeros_like", "ones_like", dtypes=DATA_DTYPES)
def convert_fill_like(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    dt = np.dtype(node.attr("T", np.float32))
    value = numpy_helper.from_array(np.array([node.op in ("OnesLike", "ones_like")], dt),
                                    "value")
    shape = ctx.node("Shape", [name], hint=f"{node.name}_shape")
    ctx.set_output(node, 0, ctx.node("ConstantOfShape", [shape], value=value, hint=node.name),
                   perm)

