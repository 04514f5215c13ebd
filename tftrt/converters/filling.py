"""Ops that make tensors from values and shapes: Tile, BroadcastTo, Fill, Range, and
DataFormatVecPermute (an index vector permuted between layouts).

Tile accepts its input in any layout and keeps it (its multiples are permuted).
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from tftrt.converters.base import converter, dtype_name, refusal_of
from tftrt.converters.context import (
    LoweringContext,
    NodeInfo,
    onnx_dtype,
)
from tftrt.converters.shape import (
    DATA_DTYPES,
    INDEX_DTYPES,
    _int_list,
    _known_rank,
)

# -- Tile / BroadcastTo / Fill ------------------------------------------------------------

def _index_tensor(ctx: LoweringContext, node: NodeInfo, i: int) -> str:
    """Input ``i`` (an index tensor) as int64."""
    value = node.const(i)
    if value is not None:
        return ctx.const(np.asarray(value, dtype=np.int64), f"{node.name}/in{i}")
    x = ctx.input(node, i)
    if node.input_dtypes[i] != np.int64:
        x = ctx.node("Cast", [x], hint=f"{node.name}/in{i}", to=onnx_dtype(np.int64))
    return x


def _validate_index_input(node: NodeInfo, i: int, what: str, length: int | None) -> str | None:
    """Why input ``i`` cannot serve as a shape-like vector of ``length`` entries, or None."""
    if node.input_dtypes[i] not in INDEX_DTYPES:
        return (f"The {what} input of {node.op} must be int32 or int64, "
                f"got {dtype_name(node.input_dtypes[i])}")
    shape = node.input_shapes[i]
    if shape is not None and len(shape) != 1:
        return f"The {what} input of {node.op} must be 1-D, got shape {list(shape)}"
    if node.const(i) is not None:
        values = _int_list(node.const(i))
        if length is not None and len(values) != length:
            return f"{node.op} {what} {values} must have {length} entries"
        if any(v < 0 for v in values):
            return f"{node.op} {what} {values} must be non-negative"
    elif length is not None and shape is not None and shape[0] not in (None, length):
        return f"The {what} input of {node.op} must have {length} entries, got {shape[0]}"
    return None


def _validate_tile(node: NodeInfo) -> str | None:
    if (reason := _known_rank(node)) is not None:
        return reason
    return _validate_index_input(node, 1, "multiples", node.rank(0))


@converter("Tile", dtypes=DATA_DTYPES, validate=_validate_tile,
           restrictions="known input rank")
def convert_tile(ctx: LoweringContext, node: NodeInfo) -> None:
    x, perm = ctx.input_any(node, 0)
    value = node.const(1)
    if value is not None:
        reps = _int_list(value)
        repeats = ctx.int64s(reps if perm is None else [reps[p] for p in perm],
                             f"{node.name}/repeats")
    else:
        repeats = _index_tensor(ctx, node, 1)
        if perm is not None:
            repeats = ctx.node("Gather", [repeats, ctx.int64s(perm)], hint=f"{node.name}/perm",
                               axis=0)
    ctx.set_output(node, 0, ctx.node("Tile", [x, repeats], hint=node.name), perm)


def _validate_broadcast_to(node: NodeInfo) -> str | None:
    reason = _validate_index_input(node, 1, "shape", None)
    if reason is not None:
        return reason
    rank, shape = node.rank(0), node.input_shapes[1]
    if rank is not None and shape is not None and shape[0] is not None and shape[0] < rank:
        return f"BroadcastTo a shape of {shape[0]} entries is below the input rank {rank}"
    return None


@converter("BroadcastTo", dtypes=DATA_DTYPES, validate=_validate_broadcast_to)
def convert_broadcast_to(ctx: LoweringContext, node: NodeInfo) -> None:
    shape = _index_tensor(ctx, node, 1)
    ctx.set_output(node, 0, ctx.node("Expand", [ctx.input(node, 0), shape], hint=node.name))


def _validate_fill(node: NodeInfo) -> str | None:
    reason = _validate_index_input(node, 0, "dims", None)
    if reason is None and node.rank(1) not in (None, 0):
        return f"The value input of Fill must be a scalar, got shape {node.input_shapes[1]}"
    return reason


@converter("Fill", dtypes=DATA_DTYPES, validate=_validate_fill)
def convert_fill(ctx: LoweringContext, node: NodeInfo) -> None:
    dims = _index_tensor(ctx, node, 0)
    value = node.const(1)
    if value is not None:
        fill = numpy_helper.from_array(np.asarray(value, dtype=node.attr("T")).reshape(1))
        y = ctx.node("ConstantOfShape", [dims], hint=node.name, value=fill)
    else:
        y = ctx.node("Expand", [ctx.input(node, 1), dims], hint=node.name)
    ctx.set_output(node, 0, y)


# -- Range ----------------------------------------------------------------------------

_RANGE_DTYPES = frozenset(np.dtype(d) for d in (np.float32, np.int32, np.int64))


def _validate_range(node: NodeInfo) -> str | None:
    for i, role in enumerate(("start", "limit", "delta")):
        shape = node.input_shapes[i]
        if shape is not None and any(d != 1 for d in shape):
            return f"The {role} input of Range must be a scalar, got shape {list(shape)}"
    delta = node.const(2)
    if delta is not None and float(np.asarray(delta).reshape(-1)[0]) == 0:
        return "Range delta must not be 0"
    return None


@converter("Range", dtypes=_RANGE_DTYPES, dtype_attr="Tidx", validate=_validate_range,
           restrictions="float32, int32 or int64 scalars")
def convert_range(ctx: LoweringContext, node: NodeInfo) -> None:
    dtype = np.dtype(node.attr("Tidx"))
    scalars = []
    for i, role in enumerate(("start", "limit", "delta")):
        value = node.const(i)
        if value is not None:
            scalars.append(ctx.const(np.asarray(value, dtype=dtype).reshape(()),
                                     f"{node.name}/{role}"))
            continue
        x = ctx.input(node, i)
        if node.rank(i) != 0:
            x = ctx.node("Reshape", [x, ctx.int64s([])], hint=f"{node.name}/{role}")
        scalars.append(x)
    start, limit, delta = scalars
    if dtype.kind in "iu":
        ctx.set_output(node, 0, ctx.node("Range", [start, limit, delta], hint=node.name))
        return
    # TF: ceil(|(limit - start) / delta|) values start + i * delta, computed in float
    span = ctx.node("Sub", [limit, start], hint=f"{node.name}/span")
    count = ctx.node("Ceil", [ctx.node("Abs", [ctx.node("Div", [span, delta],
                                                          hint=f"{node.name}/steps")],
                                       hint=f"{node.name}/steps")], hint=f"{node.name}/count")
    count = ctx.node("Cast", [count], hint=f"{node.name}/count", to=onnx_dtype(np.int64))
    index = ctx.node("Range", [ctx.const(np.int64(0)), count, ctx.const(np.int64(1))],
                     hint=f"{node.name}/index")
    index = ctx.node("Cast", [index], hint=f"{node.name}/index", to=onnx_dtype(dtype))
    offset = ctx.node("Mul", [index, delta], hint=f"{node.name}/offset")
    ctx.set_output(node, 0, ctx.node("Add", [start, offset], hint=node.name))


# -- DataFormatVecPermute ---------------------------------------------------------------

def _vec_permutation(node: NodeInfo) -> list[int] | str:
    """Indices taking the rows of the node's input to the output, or why there are none."""
    src, dst = node.attr("src_format", "NHWC"), node.attr("dst_format", "NCHW")
    if isinstance(src, bytes):
        src = src.decode()
    if isinstance(dst, bytes):
        dst = dst.decode()
    if sorted(src) != sorted(dst) or len(set(src)) != len(src):
        return (f"DataFormatVecPermute dst_format {dst!r} is not a permutation of "
                f"src_format {src!r}")
    shape = node.input_shapes[0]
    if shape is None or len(shape) not in (1, 2) or shape[0] is None:
        return ("The input of DataFormatVecPermute must be 1-D or 2-D with a known first "
                f"dimension, got shape {shape}")
    if len(shape) == 2 and shape[1] not in (None, 2):
        return f"A 2-D input of DataFormatVecPermute must have shape [n, 2], got {list(shape)}"
    if shape[0] == len(src) - 2:  # spatial dimensions only
        src, dst = (s.replace("N", "").replace("C", "") for s in (src, dst))
    if shape[0] != len(src):
        return (f"The input of DataFormatVecPermute must have {len(src)} or {len(src) - 2} "
                f"entries for format {src!r}, got shape {list(shape)}")
    return [src.index(ch) for ch in dst]


@converter("DataFormatVecPermute", dtypes=INDEX_DTYPES, validate=refusal_of(_vec_permutation),
           restrictions="1-D or 2-D input with a known first dimension")
def convert_vec_permute(ctx: LoweringContext, node: NodeInfo) -> None:
    perm = _vec_permutation(node)
    assert not isinstance(perm, str), perm
    x = ctx.input(node, 0)
    if perm != list(range(len(perm))):
        x = ctx.node("Gather", [x, ctx.int64s(perm)], hint=node.name, axis=0)
    ctx.set_output(node, 0, x)
