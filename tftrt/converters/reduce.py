"""Reductions over constant axes; they keep their input's layout."""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter
from tftrt.converters.context import FLOAT_DTYPES, LoweringContext, NodeInfo, Perm
from tftrt.converters.elementwise import onnx_axis

_ONNX_OP = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax",
            "Min": "ReduceMin", "Prod": "ReduceProd"}


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


def _reduce(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    axes = reduction_axes(node)
    keep = bool(node.attr("keep_dims", False))
    onnx_axes = sorted(onnx_axis(perm, a) for a in axes)
    op = _ONNX_OP[node.op]
    if op == "ReduceSum":
        out = ctx.node(op, [name, ctx.int64s(onnx_axes)], hint=node.name, keepdims=int(keep))
    else:
        out = ctx.node(op, [name], hint=node.name, axes=onnx_axes, keepdims=int(keep))
    ctx.set_output(node, 0, out, reduced_perm(perm, axes, keep))


_RESTRICTIONS = "constant, non-empty axes; known input rank"


@converter("Mean", const_inputs=(1,), validate=_validate_reduce, restrictions=_RESTRICTIONS)
def convert_mean(ctx: LoweringContext, node: NodeInfo) -> None:
    _reduce(ctx, node)


@converter("Sum", "Max", "Min", "Prod", dtypes=FLOAT_DTYPES | {np.dtype(np.int32)},
           const_inputs=(1,), validate=_validate_reduce, restrictions=_RESTRICTIONS)
def convert_reduce(ctx: LoweringContext, node: NodeInfo) -> None:
    _reduce(ctx, node)
