"""Slicing: Slice and StridedSlice, with constant or computed bounds.

Both accept their input in any layout and keep it (the axes are renumbered), except a
StridedSlice that inserts axes, which works in TF layout. StridedSlice's masks (begin,
end, ellipsis, new axis, shrink) are attributes, so the dense form of a slice is known
at conversion time even when its begin and end are computed by the graph; its strides
must be constant (their signs decide what the masks mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tftrt.converters.base import converter, refusal_of
from tftrt.converters.context import LoweringContext, NodeInfo, onnx_dtype
from tftrt.converters.shape import (
    DATA_DTYPES,
    INDEX_DTYPES,
    INT64_MAX,
    INT64_MIN,
    _int_list,
    _known_rank,
    _onnx_axes,
    _squeezed_perm,
)

# -- Slice / StridedSlice --------------------------------------------------------

def _validate_slice(node: NodeInfo) -> str | None:
    if (reason := _known_rank(node)) is not None:
        return reason
    rank = node.rank(0)
    if node.const(1) is None or node.const(2) is None:
        for i, role in ((1, "begin"), (2, "size")):
            if node.input_dtypes[i] not in INDEX_DTYPES:
                return f"Slice {role} must be int32 or int64"
            if node.input_shapes[i] not in ((rank,), (None,)):
                return f"Slice {role} must be a vector of {rank} entries"
        return None
    begin, size = _int_list(node.const(1)), _int_list(node.const(2))
    if len(begin) != rank or len(size) != rank:
        return f"Slice begin {begin} and size {size} must have {rank} entries"
    if any(b < 0 for b in begin) or any(s < -1 for s in size):
        return f"Slice begin {begin} must be >= 0 and size {size} >= -1"
    return None


@converter("Slice", dtypes=DATA_DTYPES, validate=_validate_slice,
           restrictions="begin and size are 1-D int32/int64 (constant or computed)")
def convert_slice(ctx: LoweringContext, node: NodeInfo) -> None:
    x, perm = ctx.input_any(node, 0)
    axes = _onnx_axes(perm, range(node.rank(0)))
    if node.const(1) is not None and node.const(2) is not None:
        begin, size = _int_list(node.const(1)), _int_list(node.const(2))
        ends = [INT64_MAX if s == -1 else b + s for b, s in zip(begin, size, strict=True)]
        starts, stops = ctx.int64s(begin), ctx.int64s(ends)
    else:
        i64 = onnx_dtype(np.int64)
        starts = ctx.node("Cast", [ctx.input(node, 1)], to=i64, hint=f"{node.name}_begin")
        size = ctx.node("Cast", [ctx.input(node, 2)], to=i64, hint=f"{node.name}_size")
        to_end = ctx.node("Equal", [size, ctx.int64s([-1])], hint=f"{node.name}_to_end")
        stops = ctx.node("Where", [to_end, ctx.int64s([INT64_MAX]),
                                   ctx.node("Add", [starts, size], hint=f"{node.name}_sum")],
                         hint=f"{node.name}_end")
    y = ctx.node("Slice", [x, starts, stops, ctx.int64s(axes)], hint=node.name)
    ctx.set_output(node, 0, y, perm)


@dataclass(frozen=True)
class _StridedSlice:
    """A StridedSlice in dense form: one (start, end, step) per input axis."""

    starts: list[int]
    ends: list[int]
    steps: list[int]
    shrink: list[int]  # input axes removed from the output
    new_axes: list[int]  # output axes of size 1 inserted


def _bit(mask: int, i: int) -> bool:
    return bool(mask >> i & 1)


def _dense_axes(node: NodeInfo, n: int) -> tuple[list[int | None], list[int]] | str:
    """For each input axis, the sparse index that slices it (None: all of it), and the
    output positions of new axes; from the masks and the ``n`` sparse entries."""
    rank = node.rank(0)
    if rank is None:
        return "The input of StridedSlice must have a known rank"
    ellipsis, new_axis = node.attr("ellipsis_mask", 0), node.attr("new_axis_mask", 0)
    shrink = node.attr("shrink_axis_mask", 0)
    if bin(ellipsis).count("1") > 1:
        return "StridedSlice with more than one ellipsis is invalid"
    if ellipsis == 0:
        ellipsis, n = 1 << n, n + 1  # an implicit ellipsis at the end
    entries: list[int | None] = []
    new_positions: list[int] = []
    out_rank = 0
    for i in range(n):
        if _bit(ellipsis, i):
            used = sum(1 for j in range(n) if not _bit(ellipsis, j) and not _bit(new_axis, j))
            count = rank - used
            if count < 0:
                break
            entries.extend([None] * count)
            out_rank += count
        elif _bit(new_axis, i):
            new_positions.append(out_rank)
            out_rank += 1
        else:
            entries.append(i)
            out_rank += 0 if _bit(shrink, i) else 1
    if len(entries) != rank:
        return f"StridedSlice indexes {len(entries)} axes of a rank-{rank} input"
    return entries, new_positions


def _strided_slice(node: NodeInfo) -> _StridedSlice | str:
    """Resolve constant begin/end/strides and the masks against the input rank."""
    begin, end, strides = (_int_list(node.const(i)) for i in (1, 2, 3))
    n = len(begin)
    if len(end) != n or len(strides) != n:
        return f"StridedSlice begin {begin}, end {end} and strides {strides} differ in length"
    if any(s == 0 for s in strides):
        return f"StridedSlice strides must be non-zero, got {strides}"
    dense = _dense_axes(node, n)
    if isinstance(dense, str):
        return dense
    entries, new_positions = dense
    bm, em = node.attr("begin_mask", 0), node.attr("end_mask", 0)
    shrink = node.attr("shrink_axis_mask", 0)
    starts, ends, steps, shrunk = [], [], [], []
    for axis, i in enumerate(entries):
        if i is None:
            starts.append(0)
            ends.append(INT64_MAX)
            steps.append(1)
        elif _bit(shrink, i):
            b = begin[i]
            if strides[i] < 0:
                return "StridedSlice shrink_axis_mask needs a positive stride"
            starts.append(b)
            ends.append(INT64_MAX if b == -1 else b + 1)
            steps.append(1)
            shrunk.append(axis)
        else:
            s, b, e = strides[i], begin[i], end[i]
            if _bit(bm, i):
                b = 0 if s > 0 else INT64_MAX
            if _bit(em, i):
                e = INT64_MAX if s > 0 else INT64_MIN
            if s < 0 and not _bit(bm, i) and b < -1:
                # a start before the first element makes TF's slice empty; ONNX clamps it to 0
                dim = node.input_shapes[0][axis]
                if dim is None:
                    return (f"StridedSlice with stride {s} and begin {b} on axis {axis} "
                            "needs a known dimension")
                if b + dim < 0:
                    b, e = 0, 0
            starts.append(b)
            ends.append(e)
            steps.append(s)
    return _StridedSlice(starts, ends, steps, shrunk, new_positions)


@dataclass(frozen=True)
class _ComputedSlice:
    """A StridedSlice whose begin or end the graph computes: per input axis, the sparse
    index whose bounds it takes (None: the whole axis)."""

    entries: list[int | None]
    strides: list[int]
    new_axes: list[int]
    shrink: list[int]  # input axes removed from the output


def _computed_slice(node: NodeInfo) -> _ComputedSlice | str:
    strides = node.const(3)
    if strides is None:
        return "The strides of StridedSlice must be constant"
    steps = _int_list(strides)
    if any(s == 0 for s in steps):
        return f"StridedSlice strides must be non-zero, got {steps}"
    for i in (1, 2):
        if node.input_dtypes[i] not in INDEX_DTYPES:
            return "StridedSlice begin and end must be int32 or int64"
        if node.input_shapes[i] not in ((len(steps),), (None,)):
            return f"StridedSlice begin and end must be vectors of {len(steps)} entries"
    dense = _dense_axes(node, len(steps))
    if isinstance(dense, str):
        return dense
    entries, new_positions = dense
    bm = node.attr("begin_mask", 0)
    shrink = node.attr("shrink_axis_mask", 0)
    shrunk = []
    for axis, i in enumerate(entries):
        if i is None:
            continue
        if steps[i] < 0 and not _bit(bm, i) and node.const(1) is None:
            return "StridedSlice with a computed begin needs positive strides"
        if _bit(shrink, i):
            if steps[i] < 0:
                return "StridedSlice shrink_axis_mask needs a positive stride"
            shrunk.append(axis)
    return _ComputedSlice(entries, steps, new_positions, shrunk)


def _strided_plan(node: NodeInfo) -> _StridedSlice | _ComputedSlice | str:
    if node.const(1) is not None and node.const(2) is not None and node.const(3) is not None:
        return _strided_slice(node)
    return _computed_slice(node)


def _bounds(ctx: LoweringContext, node: NodeInfo, spec: _ComputedSlice
            ) -> tuple[str, str, str]:
    """ONNX starts, ends and steps vectors (one entry per input axis) of a computed slice."""
    i64 = onnx_dtype(np.int64)
    bm, em = node.attr("begin_mask", 0), node.attr("end_mask", 0)
    shrink = node.attr("shrink_axis_mask", 0)
    vec = {k: ctx.node("Cast", [ctx.input(node, k)], to=i64, hint=f"{node.name}_b{k}")
           for k in (1, 2)}

    def entry(k: int, i: int) -> str:
        return ctx.node("Slice", [vec[k], ctx.int64s([i]), ctx.int64s([i + 1])],
                        hint=f"{node.name}_e{k}_{i}")

    starts, ends = [], []
    for i in spec.entries:
        if i is None:
            starts.append(ctx.int64s([0]))
            ends.append(ctx.int64s([INT64_MAX]))
            continue
        s = spec.strides[i]
        if _bit(shrink, i):
            b = entry(1, i)
            last = ctx.node("Equal", [b, ctx.int64s([-1])], hint=f"{node.name}_last{i}")
            nxt = ctx.node("Add", [b, ctx.int64s([1])], hint=f"{node.name}_next{i}")
            starts.append(b)
            ends.append(ctx.node("Where", [last, ctx.int64s([INT64_MAX]), nxt],
                                 hint=f"{node.name}_end{i}"))
            continue
        starts.append(ctx.int64s([0 if s > 0 else INT64_MAX]) if _bit(bm, i) else entry(1, i))
        ends.append(ctx.int64s([INT64_MAX if s > 0 else INT64_MIN]) if _bit(em, i)
                    else entry(2, i))
    steps = [1 if i is None or _bit(shrink, i) else spec.strides[i] for i in spec.entries]
    return (ctx.node("Concat", starts, axis=0, hint=f"{node.name}_starts"),
            ctx.node("Concat", ends, axis=0, hint=f"{node.name}_ends"), ctx.int64s(steps))


@converter("StridedSlice", dtypes=DATA_DTYPES, validate=refusal_of(_strided_plan),
           restrictions="constant strides (begin and end may be computed)")
def convert_strided_slice(ctx: LoweringContext, node: NodeInfo) -> None:
    spec = _strided_plan(node)
    assert not isinstance(spec, str), spec
    if spec.new_axes:
        x, perm = ctx.input(node, 0), None
    else:
        x, perm = ctx.input_any(node, 0)
    rank = node.rank(0)
    axes = _onnx_axes(perm, range(rank))
    if isinstance(spec, _StridedSlice):
        bounds = (ctx.int64s(spec.starts), ctx.int64s(spec.ends), ctx.int64s(spec.steps))
    else:
        bounds = _bounds(ctx, node, spec)  # per TF axis; ``axes`` maps them
    y = ctx.node("Slice", [x, bounds[0], bounds[1], ctx.int64s(axes), bounds[2]],
                 hint=node.name)
    if spec.shrink:
        y = ctx.node("Squeeze", [y, ctx.int64s(sorted(_onnx_axes(perm, spec.shrink)))],
                     hint=node.name)
        perm = _squeezed_perm(perm, spec.shrink)
    if spec.new_axes:
        y = ctx.node("Unsqueeze", [y, ctx.int64s(spec.new_axes)], hint=node.name)
    ctx.set_output(node, 0, y, perm)
