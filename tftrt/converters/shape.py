"""Shape and data-movement ops: reshaping, padding, slicing, joining, splitting, tiling,
casting, gathering, and the ops that make shapes and index vectors.

Ops that only move data along axes (Pad, MirrorPad, ConcatV2, Slice,
StridedSlice, Squeeze, Transpose, Shape, Cast, Unpack, Split, SplitV, Tile)
accept their input in any layout and keep it where they can, so they add no
transposes between layout-aware ops such as convolutions. DepthToSpace and
SpaceToDepth run in NCHW like convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import numpy_helper

from tftrt.converters.base import converter, dtype_name, refusal_of
from tftrt.converters.context import (
    NHWC_TO_NCHW,
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


# -- Unpack / Split / SplitV -------------------------------------------------------------

def _validate_unpack(node: NodeInfo) -> str | None:
    if (reason := _known_rank(node)) is not None:
        return reason
    rank = node.rank(0)
    axis, num = node.attr("axis", 0), node.attr("num")
    if not -rank <= axis < rank:
        return f"Unpack axis {axis} is out of range for rank {rank}"
    dim = node.input_shapes[0][axis % rank]
    if dim is not None and dim != num:
        return f"Unpack num={num} differs from the size {dim} of axis {axis % rank}"
    if num < 1:
        return f"Unpack num={num} must be positive"
    return None


@converter("Unpack", dtypes=DATA_DTYPES, validate=_validate_unpack,
           restrictions="known input rank")
def convert_unpack(ctx: LoweringContext, node: NodeInfo) -> None:
    x, perm = ctx.input_any(node, 0)
    axis = node.attr("axis", 0) % node.rank(0)
    num = int(node.attr("num"))
    onnx_axis = _onnx_axes(perm, [axis])[0]
    parts = _split(ctx, x, [1] * num, onnx_axis, node.name)
    out_perm = _squeezed_perm(perm, [axis])
    axes = ctx.int64s([onnx_axis])
    for k, part in enumerate(parts):
        ctx.set_output(node, k, ctx.node("Squeeze", [part, axes], hint=f"{node.name}_{k}"),
                       out_perm)


def _split(ctx: LoweringContext, x: str, sizes: Sequence[int] | str, axis: int, hint: str,
           count: int | None = None) -> list[str]:
    """``x`` split along ONNX ``axis`` into parts of ``sizes``: a list, or an int64 tensor
    holding ``count`` sizes."""
    count = len(sizes) if count is None else count
    if count == 1:
        return [x]
    split = sizes if isinstance(sizes, str) else ctx.int64s(sizes, f"{hint}/sizes")
    parts = ctx.node("Split", [x, split], outputs=count, hint=hint, axis=axis)
    return list(parts)


def _split_axis(node: NodeInfo, axis_input: int, value_input: int) -> int | str:
    """The non-negative axis of a Split/SplitV, or why it is not usable."""
    if (reason := _known_rank(node, value_input)) is not None:
        return reason
    rank = node.rank(value_input)
    axis = _int_list(node.const(axis_input))
    if len(axis) != 1 or not -rank <= axis[0] < rank:
        return f"{node.op} axis {axis} is out of range for rank {rank}"
    return axis[0] % rank


def _validate_split(node: NodeInfo) -> str | None:
    axis = _split_axis(node, 0, 1)
    if isinstance(axis, str):
        return axis
    num = node.attr("num_split")
    dim = node.input_shapes[1][axis]
    if dim is not None and dim % num:
        return f"Split of axis {axis} of size {dim} into {num} equal parts: {num} must divide it"
    return None


@converter("Split", dtypes=DATA_DTYPES, const_inputs=(0,), validate=_validate_split,
           restrictions="axis must be constant; the split dimension divisible by num_split")
def convert_split(ctx: LoweringContext, node: NodeInfo) -> None:
    axis = _split_axis(node, 0, 1)
    assert isinstance(axis, int), axis
    x, perm = ctx.input_any(node, 1)
    num = int(node.attr("num_split"))
    onnx_axis = _onnx_axes(perm, [axis])[0]
    dim = node.input_shapes[1][axis]
    if num == 1:
        parts = [x]
    elif dim is not None:
        parts = _split(ctx, x, [dim // num] * num, onnx_axis, node.name)
    else:  # equal parts of a size known at run time
        parts = list(ctx.node("Split", [x], outputs=num, hint=node.name, axis=onnx_axis))
    for k, part in enumerate(parts):
        ctx.set_output(node, k, part, perm)


def _split_sizes(node: NodeInfo) -> tuple[list[int], int] | str:
    """SplitV's sizes (with at most one -1 left when the dimension is unknown) and axis."""
    axis = _split_axis(node, 2, 0)
    if isinstance(axis, str):
        return axis
    raw = node.const(1)
    if np.asarray(raw).ndim != 1:
        return f"SplitV size_splits must be 1-D, got shape {list(np.asarray(raw).shape)}"
    sizes = _int_list(raw)
    if len(sizes) != node.attr("num_split", len(sizes)):
        return f"SplitV size_splits {sizes} does not have num_split entries"
    if any(s < -1 for s in sizes) or sizes.count(-1) > 1:
        return f"SplitV size_splits {sizes} must be >= 0 with at most one -1"
    dim = node.input_shapes[0][axis]
    known = sum(s for s in sizes if s != -1)
    if dim is not None:
        if -1 in sizes:
            if known > dim:
                return f"SplitV size_splits {sizes} exceed the size {dim} of axis {axis}"
            sizes = [dim - known if s == -1 else s for s in sizes]
        elif known != dim:
            return f"SplitV size_splits {sizes} do not add up to the size {dim} of axis {axis}"
    return sizes, axis


@converter("SplitV", dtypes=DATA_DTYPES, const_inputs=(1, 2), validate=refusal_of(_split_sizes),
           restrictions="size_splits and axis must be constant")
def convert_split_v(ctx: LoweringContext, node: NodeInfo) -> None:
    spec = _split_sizes(node)
    assert not isinstance(spec, str), spec
    sizes, axis = spec
    x, perm = ctx.input_any(node, 0)
    onnx_axis = _onnx_axes(perm, [axis])[0]
    split: Sequence[int] | str = sizes
    if -1 in sizes and len(sizes) > 1:  # the rest of a dimension known at run time
        dim = ctx.node("Shape", [x], hint=f"{node.name}/dim", start=onnx_axis,
                       end=onnx_axis + 1)
        known = sum(s for s in sizes if s != -1)
        rest = ctx.node("Sub", [dim, ctx.int64s([known])], hint=f"{node.name}/rest")
        k = sizes.index(-1)
        pieces = [p for p in (sizes[:k], None, sizes[k + 1:]) if p != []]
        split = ctx.node("Concat", [rest if p is None else ctx.int64s(p) for p in pieces],
                         hint=f"{node.name}/sizes", axis=0)
    for k, part in enumerate(_split(ctx, x, split, onnx_axis, node.name, len(sizes))):
        ctx.set_output(node, k, part, perm)


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


# -- DepthToSpace / SpaceToDepth -------------------------------------------------------------

_SPACE_FORMATS: dict[str, tuple[Perm, int, tuple[int, int]]] = {
    "NHWC": (NHWC_TO_NCHW, 3, (1, 2)),
    "NCHW": (None, 1, (2, 3)),
}


def _validate_space_depth(node: NodeInfo) -> str | None:
    fmt = node.attr("data_format", "NHWC")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt not in _SPACE_FORMATS:
        return f"{node.op} data_format {fmt!r} is not supported (only NHWC and NCHW)"
    if node.rank(0) != 4:
        return f"The input of {node.op} must be 4-D, got shape {node.input_shapes[0]}"
    block = int(node.attr("block_size", 0))
    if block < 2:
        return f"{node.op} block_size must be at least 2, got {block}"
    _, channel, spatial = _SPACE_FORMATS[fmt]
    shape = node.input_shapes[0]
    if node.op == "DepthToSpace":
        if shape[channel] is not None and shape[channel] % (block * block):
            return (f"DepthToSpace needs channels divisible by block_size^2 = {block * block}, "
                    f"got {shape[channel]}")
    elif any(shape[a] is not None and shape[a] % block for a in spatial):
        return (f"SpaceToDepth needs height and width divisible by block_size {block}, "
                f"got shape {list(shape)}")
    return None


@converter("DepthToSpace", "SpaceToDepth", validate=_validate_space_depth,
           restrictions="NHWC or NCHW")
def convert_space_depth(ctx: LoweringContext, node: NodeInfo) -> None:
    fmt = node.attr("data_format", "NHWC")
    layout = _SPACE_FORMATS[fmt.decode() if isinstance(fmt, bytes) else fmt][0]
    x = ctx.input_as(node, 0, layout)
    block = int(node.attr("block_size"))
    # ONNX DCR mode orders the channels as TF does: (row offset, column offset, channel)
    mode = "DCR" if node.op == "DepthToSpace" else None
    y = ctx.node(node.op, [x], hint=node.name, blocksize=block, mode=mode)
    ctx.set_output(node, 0, y, layout)
