"""Shape and data-movement ops: reshaping, padding, joining, transposing, casting, and
the op that reads a shape; with the helpers the other data-movement families share
(slicing.py, splitting.py, filling.py).

Ops that only move data along axes (Pad, MirrorPad, ConcatV2, Squeeze, Transpose,
Shape, Cast) accept their input in any layout and keep it where they can, so they add
no transposes between layout-aware ops such as convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tftrt.converters.base import converter, dtype_name, refusal_of
from tftrt.converters.context import (
    LoweringContext,
    NodeInfo,
    Perm,
    compose_perm,
    invert_perm,
    onnx_dtype,
)

# Element types the data-movement ops accept.
DATA_DTYPES = frozenset(np.dtype(d) for d in (np.float32, np.float16, np.int32, np.int64,
                                               np.bool_, np.uint8, np.int8))
# Casts also take the narrow integers images and quantized data arrive in
CAST_DTYPES = DATA_DTYPES | frozenset(np.dtype(d) for d in (np.int16, np.uint16))
INDEX_DTYPES = frozenset({np.dtype(np.int32), np.dtype(np.int64)})
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


# -- helpers ------------------------------------------------------------------

def _norm_perm(perm: Sequence[int] | None) -> Perm:
    """``perm`` as a tuple, or None if it is the identity."""
    if perm is None:
        return None
    perm = tuple(int(p) for p in perm)
    return None if perm == tuple(range(len(perm))) else perm


def _onnx_axes(perm: Perm, axes: Sequence[int]) -> list[int]:
    """The ONNX axes holding non-negative TF axes ``axes`` of a tensor held with ``perm``."""
    if perm is None:
        return [int(a) for a in axes]
    inv = invert_perm(perm)
    return [inv[a] for a in axes]


def _squeezed_perm(perm: Perm, axes: Sequence[int]) -> Perm:
    """The layout left after removing TF axes ``axes`` from a tensor held with ``perm``."""
    if perm is None:
        return None
    gone = set(axes)
    kept = [p for p in perm if p not in gone]
    return _norm_perm([p - sum(1 for a in gone if a < p) for p in kept])


def _known_rank(node: NodeInfo, i: int = 0) -> str | None:
    if node.rank(i) is None:
        return f"The input {i} of {node.op} must have a known rank"
    return None


def _dtype_reason(node: NodeInfo, attr: str, allowed: frozenset[np.dtype]) -> str | None:
    dt = node.attr(attr)
    if dt not in allowed:
        names = ", ".join(sorted(dtype_name(d) for d in allowed))
        return (f"{node.op} op is not supported - {attr} must be one of [{names}], "
                f"got {dtype_name(dt)}")
    return None


def _const_input_in(ctx: LoweringContext, node: NodeInfo, i: int, perm: Perm) -> str:
    """Input ``i`` in layout ``perm``; a constant is transposed at conversion time."""
    value = node.const(i)
    if value is not None and perm is not None:
        return ctx.const(np.transpose(value, perm), f"{node.name}/in{i}")
    return ctx.input_as(node, i, perm)


def _int_list(value: np.ndarray | None) -> list[int]:
    return [] if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


# -- Reshape / Squeeze / ExpandDims ---------------------------------------------

def _validate_reshape(node: NodeInfo) -> str | None:
    if node.const(1) is None:  # a shape computed in the graph, e.g. by Keras Flatten
        if len(node.input_shapes) < 2 or node.rank(1) != 1:
            return "The shape input of Reshape must be 1-D"
        if node.input_dtypes[1] not in INDEX_DTYPES:
            return "The shape input of Reshape must be int32 or int64"
        return None
    shape = np.asarray(node.const(1))
    if shape.ndim > 1:
        return f"The shape input of Reshape must be 1-D, got rank {shape.ndim}"
    dims = _int_list(shape)
    if any(d == 0 for d in dims):
        return f"Reshape to a shape with a zero dimension is not supported: {dims}"
    if any(d < -1 for d in dims) or dims.count(-1) > 1:
        return f"Reshape shape {dims} is invalid: dims must be positive, with at most one -1"
    return None


@converter("Reshape", dtypes=DATA_DTYPES, validate=_validate_reshape,
           restrictions="a constant shape must have no zero dimension")
def convert_reshape(ctx: LoweringContext, node: NodeInfo) -> None:
    if node.const(1) is not None:
        shape = ctx.int64s(_int_list(node.const(1)), f"{node.name}/shape")
        allowzero = 0
    else:
        shape = ctx.input(node, 1)
        if node.input_dtypes[1] != np.int64:
            shape = ctx.node("Cast", [shape], hint=f"{node.name}/shape", to=onnx_dtype(np.int64))
        # a 0 computed at run time means an empty dimension, as in TF
        allowzero = 1
    y = ctx.node("Reshape", [ctx.input(node, 0), shape], hint=node.name, allowzero=allowzero)
    ctx.set_output(node, 0, y)


def _squeeze_axes(node: NodeInfo) -> list[int] | str:
    rank = node.rank(0)
    shape = node.input_shapes[0]
    dims = list(node.attr("squeeze_dims") or [])
    if rank is None:
        return "The input of Squeeze must have a known rank"
    if not dims:
        if any(d is None for d in shape):
            return ("Squeeze without squeeze_dims needs a fully known input shape, "
                    f"got {list(shape)}")
        return [k for k, d in enumerate(shape) if d == 1]
    axes = []
    for a in dims:
        if not -rank <= a < rank:
            return f"Squeeze axis {a} is out of range for rank {rank}"
        a = a + rank if a < 0 else a
        if shape[a] is not None and shape[a] != 1:
            return f"Squeeze axis {a} has size {shape[a]}, not 1"
        axes.append(a)
    return sorted(set(axes))


@converter("Squeeze", dtypes=DATA_DTYPES, validate=refusal_of(_squeeze_axes),
           restrictions="without squeeze_dims the input shape must be fully known")
def convert_squeeze(ctx: LoweringContext, node: NodeInfo) -> None:
    axes = _squeeze_axes(node)
    assert not isinstance(axes, str), axes
    x, perm = ctx.input_any(node, 0)
    if not axes:
        ctx.set_output(node, 0, x, perm)
        return
    y = ctx.node("Squeeze", [x, ctx.int64s(sorted(_onnx_axes(perm, axes)))], hint=node.name)
    ctx.set_output(node, 0, y, _squeezed_perm(perm, axes))


def _validate_expand_dims(node: NodeInfo) -> str | None:
    if (reason := _known_rank(node)) is not None:
        return reason
    axis = _int_list(node.const(1))
    rank = node.rank(0)
    if len(axis) != 1:
        return f"ExpandDims needs a single axis, got {axis}"
    if not -rank - 1 <= axis[0] <= rank:
        return f"ExpandDims axis {axis[0]} is out of range for rank {rank}"
    return None


@converter("ExpandDims", dtypes=DATA_DTYPES, const_inputs=(1,), validate=_validate_expand_dims,
           restrictions="axis must be constant")
def convert_expand_dims(ctx: LoweringContext, node: NodeInfo) -> None:
    axis = _int_list(node.const(1))[0]
    if axis < 0:
        axis += node.rank(0) + 1
    y = ctx.node("Unsqueeze", [ctx.input(node, 0), ctx.int64s([axis])], hint=node.name)
    ctx.set_output(node, 0, y)


# -- Pad / PadV2 / MirrorPad ------------------------------------------------------

def _validate_pad(node: NodeInfo) -> str | None:
    if (reason := _known_rank(node)) is not None:
        return reason
    pads = np.asarray(node.const(1))
    rank = node.rank(0)
    if pads.shape != (rank, 2):
        return f"{node.op} paddings must have shape [{rank}, 2], got {list(pads.shape)}"
    if (pads < 0).any():
        return f"{node.op} paddings must be non-negative, got {pads.tolist()}"
    if node.op == "PadV2":
        if len(node.inputs) < 3 or node.const(2) is None:
            return "The input 2 (constant_values) of PadV2 must be a constant"
        if np.asarray(node.const(2)).size != 1:
            return "PadV2 constant_values must be a scalar"
    if node.op == "MirrorPad":
        mode = node.attr("mode")
        if mode not in ("REFLECT", "SYMMETRIC"):
            return f"MirrorPad mode {mode!r} is not supported"
        shape = node.input_shapes[0]
        limit = 1 if mode == "REFLECT" else 0
        for k, (d, (b, e)) in enumerate(zip(shape, pads.tolist(), strict=True)):
            if d is not None and max(b, e) > d - limit:
                return f"MirrorPad {mode} paddings {[b, e]} are too large for axis {k} of size {d}"
    return None


@converter("Pad", "PadV2", "MirrorPad", dtypes=DATA_DTYPES, const_inputs=(1,),
           validate=_validate_pad,
           restrictions="paddings (and PadV2 constant_values) must be constant")
def convert_pad(ctx: LoweringContext, node: NodeInfo) -> None:
    x, perm = ctx.input_any(node, 0)
    pads = np.asarray(node.const(1)).astype(np.int64)
    if perm is not None:
        pads = pads[list(perm)]
    if node.op == "MirrorPad" and node.attr("mode") == "SYMMETRIC":
        ctx.set_output(node, 0, _symmetric_pad(ctx, x, pads, node.name), perm)
        return
    inputs = [x, ctx.int64s(list(pads[:, 0]) + list(pads[:, 1]), f"{node.name}/pads")]
    mode = "constant"
    if node.op == "PadV2":
        value = np.asarray(node.const(2), dtype=node.attr("T")).reshape(())
        inputs.append(ctx.const(value, f"{node.name}/value"))
    elif node.op == "MirrorPad":
        mode = "reflect"
    y = ctx.node("Pad", inputs, hint=node.name, mode=mode)
    ctx.set_output(node, 0, y, perm)


def _symmetric_pad(ctx: LoweringContext, x: str, pads: np.ndarray, hint: str) -> str:
    """``x`` padded by ``pads`` ([rank, 2]) mirroring with the edge included (TF SYMMETRIC)."""
    for axis, (before, after) in enumerate(pads.tolist()):
        if before == 0 and after == 0:
            continue
        parts = []
        axes = ctx.int64s([axis])
        step = ctx.int64s([-1])
        if before:  # x[before-1::-1]
            parts.append(ctx.node("Slice", [x, ctx.int64s([before - 1]), ctx.int64s([INT64_MIN]),
                                            axes, step], hint=f"{hint}/begin"))
        parts.append(x)
        if after:  # x[-1:-after-1:-1]
            parts.append(ctx.node("Slice", [x, ctx.int64s([-1]), ctx.int64s([-after - 1]),
                                            axes, step], hint=f"{hint}/end"))
        x = ctx.node("Concat", parts, hint=hint, axis=axis)
    return x


# -- ConcatV2 / Pack -------------------------------------------------------------

def _validate_concat(node: NodeInfo) -> str | None:
    n = len(node.inputs) - 1
    if node.const(n) is None:
        return "The axis input of ConcatV2 must be a constant"
    rank = next((node.rank(i) for i in range(n) if node.rank(i) is not None), None)
    if rank is None:
        return "The inputs of ConcatV2 must have a known rank"
    axis = _int_list(node.const(n))
    if len(axis) != 1 or not -rank <= axis[0] < rank:
        return f"ConcatV2 axis {axis} is out of range for rank {rank}"
    return None


@converter("ConcatV2", dtypes=DATA_DTYPES, validate=_validate_concat,
           restrictions="axis must be constant")
def convert_concat(ctx: LoweringContext, node: NodeInfo) -> None:
    n = len(node.inputs) - 1
    rank = next(node.rank(i) for i in range(n) if node.rank(i) is not None)
    axis = _int_list(node.const(n))[0] % rank
    # keep the layout shared by all non-constant inputs; constants are transposed to it
    perms = {ctx.input_any(node, i)[1] for i in range(n) if node.const(i) is None}
    perm = perms.pop() if len(perms) == 1 else None
    inputs = [_const_input_in(ctx, node, i, perm) for i in range(n)]
    y = ctx.node("Concat", inputs, hint=node.name, axis=_onnx_axes(perm, [axis])[0])
    ctx.set_output(node, 0, y, perm)


def _validate_pack(node: NodeInfo) -> str | None:
    rank = node.rank(0)
    if rank is None:
        return "The inputs of Pack must have a known rank"
    axis = node.attr("axis", 0)
    if not -rank - 1 <= axis <= rank:
        return f"Pack axis {axis} is out of range for rank {rank}"
    return None


@converter("Pack", dtypes=DATA_DTYPES, validate=_validate_pack)
def convert_pack(ctx: LoweringContext, node: NodeInfo) -> None:
    axis = node.attr("axis", 0)
    if axis < 0:
        axis += node.rank(0) + 1
    axes = ctx.int64s([axis])
    parts = [ctx.node("Unsqueeze", [ctx.input(node, i), axes], hint=f"{node.name}/in{i}")
             for i in range(len(node.inputs))]
    y = parts[0] if len(parts) == 1 else ctx.node("Concat", parts, hint=node.name, axis=axis)
    ctx.set_output(node, 0, y)


# -- Transpose / Shape / Cast ------------------------------------------------------

def _validate_transpose(node: NodeInfo) -> str | None:
    perm = _int_list(node.const(1))
    rank = node.rank(0)
    if rank is None:
        rank = len(perm)
    if sorted(perm) != list(range(rank)):
        return f"Transpose perm {perm} is not a permutation of rank {rank}"
    return None


@converter("Transpose", dtypes=DATA_DTYPES, const_inputs=(1,), validate=_validate_transpose,
           restrictions="perm must be constant")
def convert_transpose(ctx: LoweringContext, node: NodeInfo) -> None:
    # No ONNX op: the input is relabelled with the layout that makes it the output.
    # y = transpose(x, P) and onnx == transpose(x, p)  =>  onnx == transpose(y, inv(P)[p])
    x, perm = ctx.input_any(node, 0)
    tf_perm = tuple(_int_list(node.const(1)))
    out = invert_perm(tf_perm) if perm is None else compose_perm(invert_perm(tf_perm), perm)
    ctx.set_output(node, 0, x, _norm_perm(out))


def _validate_shape(node: NodeInfo) -> str | None:
    reason = _dtype_reason(node, "out_type", INDEX_DTYPES)
    if reason is None and node.input_dtypes[0] is None:
        return "The input of Shape has an unsupported dtype"
    return reason


@converter("Shape", dtypes=None, validate=_validate_shape,
           restrictions="out_type must be int32 or int64")
def convert_shape(ctx: LoweringContext, node: NodeInfo) -> None:
    out_type = np.dtype(node.attr("out_type", np.int32))
    shape = node.input_shapes[0]
    if shape is not None and all(d is not None for d in shape):
        # a static shape is a constant
        ctx.set_output(node, 0, ctx.const(np.asarray(shape, dtype=out_type), node.name))
        return
    x, perm = ctx.input_any(node, 0)
    y = ctx.node("Shape", [x], hint=f"{node.name}/onnx")
    if perm is not None:
        y = ctx.node("Gather", [y, ctx.int64s(invert_perm(perm))], hint=f"{node.name}/tf", axis=0)
    if out_type != np.int64:
        y = ctx.node("Cast", [y], hint=node.name, to=onnx_dtype(out_type))
    ctx.set_output(node, 0, y)


def _validate_cast(node: NodeInfo) -> str | None:
    return (_dtype_reason(node, "SrcT", CAST_DTYPES)
            or _dtype_reason(node, "DstT", CAST_DTYPES))


@converter("Cast", dtypes=None, validate=_validate_cast,
           restrictions="SrcT and DstT among float32, float16, int64, int32, int16, int8, "
                        "uint16, uint8, bool")
def convert_cast(ctx: LoweringContext, node: NodeInfo) -> None:
    x, perm = ctx.input_any(node, 0)
    dst = np.dtype(node.attr("DstT"))
    if np.dtype(node.attr("SrcT")) != dst:
        x = ctx.node("Cast", [x], hint=node.name, to=onnx_dtype(dst))
    ctx.set_output(node, 0, x, perm)
