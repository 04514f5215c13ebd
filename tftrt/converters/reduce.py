"""Reductions, arg-reductions, top-k and cumulative sums over constant axes.

All keep their input's layout: the axes are renumbered instead of transposing.
"""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter
from tftrt.converters.context import (
    LoweringContext,
    NodeInfo,
    Perm,
    TensorProto,
    onnx_dtype,
)
from tftrt.converters.elementwise import NUMERIC, onnx_axis

BOOL = np.dtype(np.bool_)
INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))

_ONNX_OP = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax",
            "Min": "ReduceMin", "Prod": "ReduceProd", "All": "ReduceMin", "Any": "ReduceMax"}


def reduction_axes(node: NodeInfo) -> list[int]:
    """The sorted, non-negative TF axes ``node`` reduces over (input 1 must be constant)."""
    rank = node.rank(0)
    assert rank is not None
    raw = np.asarray(node.const(1)).reshape(-1)
    return sorted({int(a) % rank for a in raw})


def reduced_perm(perm: Perm, axes: list[int], keep_dims: bool) -> Perm:
    """The layout of the result of reducing TF ``axes`` of a tensor held with ``perm``."""
    if perm is None or keep_dims:
        return perm
    kept = [a for a in range(len(perm)) if a not in axes]
    renumber = {a: k for k, a in enumerate(kept)}
    out = tuple(renumber[a] for a in perm if a not in axes)
    return None if out == tuple(range(len(out))) else out


def _validate_reduce(node: NodeInfo) -> str | None:
    rank = node.rank(0)
    if rank is None:
        return f"{node.op} needs an input of known rank"
    raw = np.asarray(node.const(1)).reshape(-1)
    if raw.size == 0:
        return f"{node.op} with empty reduction axes is not supported"
    if any(not -rank <= int(a) < rank for a in raw):
        return f"{node.op} axes {raw.tolist()} are out of range for rank {rank}"
    return None


# integer products and sums over at most this many elements become Mul/Add chains:
# exact on every backend (some compute integer reductions in float32)
_CHAIN_MAX = 16


def _chain(ctx: LoweringContext, node: NodeInfo, name: str, axis: int, size: int,
           keep: bool) -> str:
    """Integer Prod/Sum over one axis of static ``size`` as a chain of Mul/Add."""
    op = "Mul" if node.op == "Prod" else "Add"
    out = None
    for k in range(size):
        part = ctx.node("Gather", [name, ctx.const(np.array(k, np.int64), "index")],
                        axis=axis, hint=f"{node.name}_{k}")
        out = part if out is None else ctx.node(op, [out, part], hint=f"{node.name}_{op}")
    if keep:
        out = ctx.node("Unsqueeze", [out, ctx.int64s([axis])], hint=node.name)
    return out


def _reduce(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    axes = reduction_axes(node)
    keep = bool(node.attr("keep_dims", False))
    onnx_axes = sorted(onnx_axis(perm, a) for a in axes)
    op = _ONNX_OP[node.op]
    shape = node.input_shapes[0]
    if (node.op in ("Prod", "Sum") and np.dtype(node.attr("T")).kind in "iu"
            and len(axes) == 1 and shape is not None and shape[axes[0]] is not None
            and 0 < shape[axes[0]] <= _CHAIN_MAX):
        out = _chain(ctx, node, name, onnx_axes[0], shape[axes[0]], keep)
        ctx.set_output(node, 0, out, reduced_perm(perm, axes, keep))
        return
    logical = node.op in ("All", "Any")
    hint = f"{node.name}_reduce" if logical else node.name
    if logical:
        name = ctx.node("Cast", [name], to=TensorProto.INT32, hint=f"{node.name}_int")
    if op == "ReduceSum":
        out = ctx.node(op, [name, ctx.int64s(onnx_axes)], hint=hint, keepdims=int(keep))
    else:
        out = ctx.node(op, [name], hint=hint, axes=onnx_axes, keepdims=int(keep))
    if logical:
        out = ctx.node("Cast", [out], to=TensorProto.BOOL, hint=node.name)
    ctx.set_output(node, 0, out, reduced_perm(perm, axes, keep))


_RESTRICTIONS = "constant, non-empty axes; known input rank"


@converter("Mean", const_inputs=(1,), validate=_validate_reduce, restrictions=_RESTRICTIONS)
def convert_mean(ctx: LoweringContext, node: NodeInfo) -> None:
    _reduce(ctx, node)


@converter("Sum", "Max", "Min", "Prod", dtypes=NUMERIC,
           const_inputs=(1,), validate=_validate_reduce, restrictions=_RESTRICTIONS)
def convert_reduce(ctx: LoweringContext, node: NodeInfo) -> None:
    _reduce(ctx, node)


def _validate_logical_reduce(node: NodeInfo) -> str | None:
    dt = node.input_dtypes[0]
    if dt is not None and np.dtype(dt) != BOOL:
        return f"{node.op} input must be bool, got {np.dtype(dt).name}"
    return _validate_reduce(node)


@converter("All", "Any", dtypes=None, const_inputs=(1,), validate=_validate_logical_reduce,
           restrictions=_RESTRICTIONS)
def convert_logical_reduce(ctx: LoweringContext, node: NodeInfo) -> None:
    _reduce(ctx, node)


# -- single-axis ops: ArgMax/ArgMin, TopKV2, Cumsum ----------------------------------

def _check_const_axis(node: NodeInfo, what: str) -> str | None:
    """Why constant input 1 of ``node`` is not a usable single axis, or None."""
    raw = np.asarray(node.const(1))
    if raw.size != 1 or raw.ndim > 1:
        return f"The {what} of {node.op} must be a scalar, got shape {list(raw.shape)}"
    axis = int(raw.reshape(()))
    rank = node.rank(0)
    if rank is None:
        return f"{node.op} needs an input of known rank"
    if not -rank <= axis < rank:
        return f"{node.op} {what} {axis} is out of range for rank {rank}"
    return None


def _axis_of(node: NodeInfo) -> int:
    """The non-negative axis held by constant input 1 of ``node``."""
    axis = int(np.asarray(node.const(1)).reshape(()))
    rank = node.rank(0)
    assert rank is not None
    return axis % rank


def _validate_arg_reduce(node: NodeInfo) -> str | None:
    out = node.attr("output_type", np.dtype(np.int64))
    if out not in INDEX_DTYPES:
        return f"{node.op} output_type must be int32 or int64, got {np.dtype(out).name}"
    return _check_const_axis(node, "dimension")


@converter("ArgMax", "ArgMin", dtypes=NUMERIC, const_inputs=(1,),
           validate=_validate_arg_reduce,
           restrictions="constant axis; known input rank; int32 or int64 output")
def convert_arg_reduce(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    axis = _axis_of(node)
    out_type = np.dtype(node.attr("output_type", np.int64))
    hint = node.name if out_type == np.int64 else f"{node.name}_i64"
    # select_last_index=0: the first of equal extremes, as TF
    out = ctx.node(node.op, [name], hint=hint, axis=onnx_axis(perm, axis), keepdims=0,
                   select_last_index=0)
    if out_type != np.int64:
        out = ctx.node("Cast", [out], to=onnx_dtype(out_type), hint=node.name)
    ctx.set_output(node, 0, out, reduced_perm(perm, [axis], False))


def _validate_top_k(node: NodeInfo) -> str | None:
    if not node.attr("sorted", True):
        return "TopKV2 with sorted=false is not supported: its output order is unspecified"
    index_type = node.attr("index_type", np.dtype(np.int32))
    if index_type not in INDEX_DTYPES:
        return f"TopKV2 index_type must be int32 or int64, got {np.dtype(index_type).name}"
    k = np.asarray(node.const(1))
    if k.ndim != 0:
        return f"The k of TopKV2 must be a scalar, got shape {list(k.shape)}"
    if int(k) < 0:
        return f"The k of TopKV2 must be non-negative, got {int(k)}"
    shape = node.input_shapes[0]
    if shape is not None:
        if not shape:
            return "TopKV2 needs an input of rank >= 1"
        if shape[-1] is not None and int(k) > shape[-1]:
            return f"The k of TopKV2 ({int(k)}) exceeds the last dimension ({shape[-1]})"
    return None


@converter("TopKV2", dtypes=NUMERIC, const_inputs=(1,), validate=_validate_top_k,
           restrictions="constant k; sorted=True")
def convert_top_k(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    axis = -1 if perm is None else onnx_axis(perm, len(perm) - 1)
    k = ctx.int64s([int(np.asarray(node.const(1)))], f"{node.name}_k")
    # ONNX TopK breaks ties by the lower index, as TF does (OpenVINO only with static shapes)
    values, indices = ctx.node("TopK", [name, k], outputs=2, hint=node.name, axis=axis,
                               largest=1, sorted=1)
    index_type = np.dtype(node.attr("index_type", np.int32))
    if index_type != np.int64:
        indices = ctx.node("Cast", [indices], to=onnx_dtype(index_type),
                           hint=f"{node.name}_indices")
    ctx.set_output(node, 0, values, perm)
    ctx.set_output(node, 1, indices, perm)


def _validate_cumsum(node: NodeInfo) -> str | None:
    return _check_const_axis(node, "axis")


@converter("Cumsum", dtypes=NUMERIC, const_inputs=(1,), validate=_validate_cumsum,
           restrictions="constant axis; known input rank")
def convert_cumsum(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    axis = ctx.const(np.array(onnx_axis(perm, _axis_of(node)), np.int64), f"{node.name}_axis")
    out = ctx.node("CumSum", [name, axis], hint=node.name,
                   exclusive=int(bool(node.attr("exclusive", False))),
                   reverse=int(bool(node.attr("reverse", False))))
    ctx.set_output(node, 0, out, perm)
