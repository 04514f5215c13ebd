"""Splitting and rearranging: Unpack, Split, SplitV, DepthToSpace and SpaceToDepth.

Unpack, Split and SplitV accept their input in any layout and keep it (the axis is
renumbered); DepthToSpace and SpaceToDepth run in NCHW like convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tftrt.converters.base import converter, refusal_of
from tftrt.converters.context import (
    NHWC_TO_NCHW,
    LoweringContext,
    NodeInfo,
    Perm,
)
from tftrt.converters.shape import (
    DATA_DTYPES,
    _int_list,
    _known_rank,
    _onnx_axes,
    _squeezed_perm,
)

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
