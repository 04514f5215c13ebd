"""Indexing ops: gathers (with batch dimensions), scatters, one-hot, band masks, rolls,
bucketizing, and XLA's dynamic slices (Keras emits them under ``jit_compile``).

All work in TF layout. Index inputs may be int32 or int64; ONNX wants int64 indices,
so they are widened.
"""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter, dtype_name, refusal_of
from tftrt.converters.context import LoweringContext, NodeInfo, TensorProto

BOOL = np.dtype(np.bool_)
INDEX_DTYPES = frozenset({np.dtype(np.int32), np.dtype(np.int64)})
DATA_DTYPES = frozenset(np.dtype(d) for d in (np.float32, np.float16, np.int32, np.int64,
                                               np.bool_, np.uint8, np.int8))
I64 = TensorProto.INT64


def _ints(value) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _index(ctx: LoweringContext, node: NodeInfo, i: int) -> str:
    """Input ``i`` as int64 (ONNX's index type)."""
    name = ctx.input(node, i)
    if node.input_dtypes[i] != np.int64:
        name = ctx.node("Cast", [name], to=I64, hint=f"{node.name}_in{i}_i64")
    return name


def _index_dtype(node: NodeInfo, i: int, what: str) -> str | None:
    dt = node.input_dtypes[i]
    if dt not in INDEX_DTYPES:
        return f"{node.op} {what} must be int32 or int64, got {dtype_name(dt)}"
    return None


def _dim(ctx: LoweringContext, node: NodeInfo, i: int, axis: int) -> str:
    """Dimension ``axis`` of input ``i`` as an int64 scalar (a constant when static)."""
    shape = node.input_shapes[i]
    if shape is not None and shape[axis] is not None:
        return ctx.const(np.array(shape[axis], np.int64), f"{node.name}_dim{axis}")
    full = ctx.node("Shape", [ctx.input(node, i)], hint=f"{node.name}_shape{i}")
    return ctx.node("Gather", [full, ctx.const(np.array(axis, np.int64), "index")], axis=0,
                    hint=f"{node.name}_dim{axis}")


# -- GatherV2 -----------------------------------------------------------------------

def _gather_plan(node: NodeInfo) -> tuple[int, int] | str:
    """(axis, batch_dims), both non-negative, or why the gather cannot convert."""
    rank, irank = node.rank(0), node.rank(1)
    if rank is None:
        return "The input 0 of GatherV2 must have a known rank"
    if (reason := _index_dtype(node, 1, "indices")) is not None:
        return reason
    axis = _ints(node.const(2))
    if len(axis) != 1 or not -rank <= axis[0] < rank:
        return f"GatherV2 axis {axis} is out of range for rank {rank}"
    batch = int(node.attr("batch_dims", 0))
    if batch:
        if irank is None:
            return "GatherV2 with batch_dims needs indices of known rank"
        batch = batch + irank if batch < 0 else batch
        if not 0 <= batch <= min(irank, axis[0] % rank):
            return (f"GatherV2 batch_dims={node.attr('batch_dims')} is invalid for axis "
                    f"{axis[0]} and indices of rank {irank}")
    return axis[0] % rank, batch


@converter("GatherV2", dtypes=DATA_DTYPES, dtype_attr="Tparams", const_inputs=(2,),
           validate=refusal_of(_gather_plan),
           restrictions="axis must be constant; batch_dims needs known ranks")
def convert_gather(ctx: LoweringContext, node: NodeInfo) -> None:
    plan = _gather_plan(node)
    assert not isinstance(plan, str), plan
    axis, batch = plan
    if batch == 0:
        y = ctx.node("Gather", [ctx.input(node, 0), ctx.input(node, 1)], hint=node.name,
                     axis=axis)
        ctx.set_output(node, 0, y)
        return
    rank, irank = node.rank(0), node.rank(1)
    params = ctx.input(node, 0)
    # move the gathered axis right after the batch axes, gather there, and move back
    order = list(range(batch)) + [axis] + [a for a in range(batch, rank) if a != axis]
    if order != list(range(rank)):
        params = ctx.node("Transpose", [params], perm=order, hint=f"{node.name}_params")
    idx = ctx.node("Unsqueeze", [_index(ctx, node, 1), ctx.int64s([irank])],
                   hint=f"{node.name}_idx")
    y = ctx.node("GatherND", [params, idx], batch_dims=batch, hint=f"{node.name}_nd")
    # y: batch + indices[batch:] + params[batch:axis] + params[axis+1:]
    n_idx = irank - batch
    between = axis - batch
    if between and n_idx:
        lead = list(range(batch))
        idx_axes = list(range(batch, batch + n_idx))
        mid = list(range(batch + n_idx, batch + n_idx + between))
        rest = list(range(batch + n_idx + between, batch + n_idx + rank - batch - 1))
        y = ctx.node("Transpose", [y], perm=lead + mid + idx_axes + rest, hint=node.name)
    ctx.set_output(node, 0, y)


# -- scatters -----------------------------------------------------------------------

def _validate_scatter_update(node: NodeInfo) -> str | None:
    return _index_dtype(node, 1, "indices")


@converter("TensorScatterUpdate", dtypes=DATA_DTYPES, validate=_validate_scatter_update,
           restrictions="int32/int64 indices; duplicate indices are undefined, as in TF")
def convert_tensor_scatter_update(ctx: LoweringContext, node: NodeInfo) -> None:
    y = ctx.node("ScatterND", [ctx.input(node, 0), _index(ctx, node, 1), ctx.input(node, 2)],
                 hint=node.name)
    ctx.set_output(node, 0, y)


def _sparse_plan(node: NodeInfo) -> tuple[list[int], int] | str:
    """(output shape, index rank) of a SparseToDense with a static shape."""
    shape = node.const(1)
    if shape is None:
        return "SparseToDense needs a constant output_shape"
    dims = _ints(shape)
    if (reason := _index_dtype(node, 0, "sparse_indices")) is not None:
        return reason
    irank = node.rank(0)
    if irank is None or irank > 2:
        return "SparseToDense sparse_indices must be of rank 0, 1 or 2"
    if node.rank(2) is None or node.rank(3) != 0:
        return "SparseToDense needs values of known rank and a scalar default"
    if irank == 2 and node.input_shapes[0][1] not in (None, len(dims)):
        return f"SparseToDense indices have {node.input_shapes[0][1]} columns for " \
               f"rank {len(dims)}"
    return dims, irank


@converter("SparseToDense", dtypes=DATA_DTYPES, validate=refusal_of(_sparse_plan),
           restrictions="constant output_shape")
def convert_sparse_to_dense(ctx: LoweringContext, node: NodeInfo) -> None:
    plan = _sparse_plan(node)
    assert not isinstance(plan, str), plan
    dims, irank = plan
    h = node.name
    idx = _index(ctx, node, 0)
    if irank == 0:
        idx = ctx.node("Reshape", [idx, ctx.int64s([1, 1])], hint=f"{h}_idx")
    elif irank == 1:
        idx = ctx.node("Unsqueeze", [idx, ctx.int64s([1])], hint=f"{h}_idx")
    dense = ctx.node("Expand", [ctx.input(node, 3), ctx.int64s(dims)], hint=f"{h}_default")
    count = ctx.node("Slice", [ctx.node("Shape", [idx], hint=f"{h}_ishape"), ctx.int64s([0]),
                               ctx.int64s([1])], hint=f"{h}_count")
    values = ctx.node("Expand", [ctx.input(node, 2), count], hint=f"{h}_values")
    ctx.set_output(node, 0, ctx.node("ScatterND", [dense, idx, values], hint=h))


# -- OneHot -------------------------------------------------------------------------

def _validate_one_hot(node: NodeInfo) -> str | None:
    if (reason := _index_dtype(node, 0, "indices")) is not None:
        return reason
    if node.rank(0) is None:
        return "OneHot needs indices of known rank"
    if node.rank(2) != 0 or node.rank(3) != 0:
        return "OneHot on_value and off_value must be scalars"
    axis = node.attr("axis", -1)
    if not -1 <= axis <= node.rank(0):
        return f"OneHot axis {axis} is out of range"
    return None


@converter("OneHot", dtypes=DATA_DTYPES, validate=_validate_one_hot,
           restrictions="scalar on/off values")
def convert_one_hot(ctx: LoweringContext, node: NodeInfo) -> None:
    h = node.name
    idx = _index(ctx, node, 0)
    depth = ctx.node("Cast", [ctx.input(node, 1)], to=I64, hint=f"{h}_depth")
    # TF: a negative index gives all off values; ONNX would count it from the end
    negative = ctx.node("Less", [idx, ctx.const(np.array(0, np.int64), "zero_i64")],
                        hint=f"{h}_neg")
    idx = ctx.node("Where", [negative, depth, idx], hint=f"{h}_idx")
    values = ctx.node("Concat", [ctx.node("Unsqueeze", [ctx.input(node, k), ctx.int64s([0])],
                                          hint=f"{h}_v{k}") for k in (3, 2)],
                      axis=0, hint=f"{h}_values")
    ctx.set_output(node, 0, ctx.node("OneHot", [idx, depth, values], axis=node.attr("axis", -1),
                                     hint=h))


# -- MatrixBandPart -------------------------------------------------------------------

def _validate_band(node: NodeInfo) -> str | None:
    rank = node.rank(0)
    if rank is None or rank < 2:
        return "MatrixBandPart needs an input of known rank >= 2"
    for i in (1, 2):
        if (reason := _index_dtype(node, i, "num_lower/num_upper")) is not None:
            return reason
    return None


@converter("MatrixBandPart", dtypes=DATA_DTYPES, validate=_validate_band,
           restrictions="input of known rank >= 2")
def convert_matrix_band_part(ctx: LoweringContext, node: NodeInfo) -> None:
    h = node.name
    rank = node.rank(0)
    zero, one = ctx.const(np.array(0, np.int64), "zero_i64"), ctx.const(np.array(1, np.int64),
                                                                        "one_i64")
    rows = ctx.node("Range", [zero, _dim(ctx, node, 0, rank - 2), one], hint=f"{h}_rows")
    cols = ctx.node("Range", [zero, _dim(ctx, node, 0, rank - 1), one], hint=f"{h}_cols")
    diff = ctx.node("Sub", [ctx.node("Unsqueeze", [rows, ctx.int64s([1])], hint=f"{h}_m"),
                            ctx.node("Unsqueeze", [cols, ctx.int64s([0])], hint=f"{h}_n")],
                    hint=f"{h}_diff")  # m - n

    def within(i: int, offset: str) -> str:
        bound = _index(ctx, node, i)
        unlimited = ctx.node("Less", [bound, zero], hint=f"{h}_all{i}")
        close = ctx.node("LessOrEqual", [offset, bound], hint=f"{h}_close{i}")
        return ctx.node("Or", [unlimited, close], hint=f"{h}_keep{i}")

    keep = ctx.node("And", [within(1, diff), within(2, ctx.node("Neg", [diff],
                                                                  hint=f"{h}_rdiff"))],
                    hint=f"{h}_keep")
    x = ctx.input(node, 0)
    dt = np.dtype(node.attr("T"))
    if dt == BOOL:
        out = ctx.node("And", [x, keep], hint=h)
    else:
        out = ctx.node("Where", [keep, x, ctx.const(np.array(0, dt), f"zero_{dt.name}")], hint=h)
    ctx.set_output(node, 0, out)


# -- Roll -------------------------------------------------------------------------------

def _roll_plan(node: NodeInfo) -> list[tuple[int, int | None]] | str:
    """(axis, constant shift or None) per rolled axis."""
    rank = node.rank(0)
    if rank is None:
        return "Roll needs an input of known rank"
    axes = node.const(2)
    if axes is None:
        return "Roll needs constant axes"
    axes_list = [a % rank for a in _ints(axes)] if rank else []
    if len(axes_list) != len(_ints(axes)) or any(
            not -rank <= a < rank for a in _ints(axes)):
        return f"Roll axes {_ints(axes)} are out of range for rank {rank}"
    shift = node.const(1)
    if shift is not None:
        shifts = _ints(shift)
        if len(shifts) == 1 and len(axes_list) > 1:
            shifts *= len(axes_list)
        if len(shifts) != len(axes_list):
            return "Roll shift and axis differ in length"
        return list(zip(axes_list, shifts, strict=True))
    if (reason := _index_dtype(node, 1, "shift")) is not None:
        return reason
    if node.rank(1) not in (0, 1) or len(axes_list) != 1:
        return "Roll with a computed shift needs one axis"
    return [(axes_list[0], None)]


@converter("Roll", dtypes=DATA_DTYPES, validate=refusal_of(_roll_plan),
           restrictions="constant axes; a computed shift rolls one axis")
def convert_roll(ctx: LoweringContext, node: NodeInfo) -> None:
    plan = _roll_plan(node)
    assert not isinstance(plan, str), plan
    x = ctx.input(node, 0)
    h = node.name
    # rolling by s along an axis of size n: out = concat(x[n - s':], x[:n - s']), s' = s mod n
    totals: dict[int, list] = {}
    for axis, shift in plan:
        totals.setdefault(axis, []).append(shift)
    for axis, shifts in totals.items():
        n = _dim(ctx, node, 0, axis)
        if all(s is not None for s in shifts):
            s = ctx.const(np.array(sum(shifts), np.int64), f"{h}_shift")
        else:
            s = ctx.node("Reshape", [_index(ctx, node, 1), ctx.int64s([])], hint=f"{h}_shift")
        s = ctx.node("Mod", [s, n], fmod=0, hint=f"{h}_mod")  # floor mod: in [0, n)
        cut = ctx.node("Unsqueeze", [ctx.node("Sub", [n, s], hint=f"{h}_cutpt"),
                                     ctx.int64s([0])], hint=f"{h}_cut")
        ax = ctx.int64s([axis])
        tail = ctx.node("Slice", [x, cut, ctx.int64s([np.iinfo(np.int64).max]), ax],
                        hint=f"{h}_tail")
        head = ctx.node("Slice", [x, ctx.int64s([0]), cut, ax], hint=f"{h}_head")
        x = ctx.node("Concat", [tail, head], axis=axis, hint=h)
    ctx.set_output(node, 0, x)


# -- Bucketize --------------------------------------------------------------------------

@converter("Bucketize", dtypes=frozenset({np.dtype(np.float32), np.dtype(np.int32),
                                          np.dtype(np.int64)}),
           restrictions="float32, int32 or int64 input")
def convert_bucketize(ctx: LoweringContext, node: NodeInfo) -> None:
    h = node.name
    bounds = np.asarray(node.attr("boundaries") or [], np.float32)
    x = ctx.input(node, 0)
    if bounds.size == 0:
        zeros = ctx.node("Mul", [ctx.node("Cast", [x], to=TensorProto.INT32, hint=f"{h}_i"),
                                 ctx.const(np.array(0, np.int32), "zero_i32")], hint=h)
        ctx.set_output(node, 0, zeros)
        return
    dt = np.dtype(node.attr("T"))
    if dt.kind in "iu":  # x >= b exactly when x >= ceil(b): compare in x's own type
        info = np.iinfo(dt)
        bounds = np.clip(np.ceil(bounds.astype(np.float64)), info.min, info.max).astype(dt)
    rank = node.rank(0)
    expanded = ctx.node("Unsqueeze", [x, ctx.int64s([-1 if rank is None else rank])],
                        hint=f"{h}_x")
    # the bucket index is the number of boundaries <= x
    passed = ctx.node("GreaterOrEqual", [expanded, ctx.const(bounds, f"{h}_bounds")],
                      hint=f"{h}_ge")
    count = ctx.node("ReduceSum", [ctx.node("Cast", [passed], to=TensorProto.INT32,
                                            hint=f"{h}_ge_i"),
                                   ctx.int64s([-1])], keepdims=0, hint=h)
    ctx.set_output(node, 0, count)


# -- XLA's dynamic slices -----------------------------------------------------------------

def _validate_dynamic_slice(node: NodeInfo) -> str | None:
    rank = node.rank(0)
    if rank is None:
        return "XlaDynamicSlice needs an input of known rank"
    sizes = node.const(2)
    if sizes is None or len(_ints(sizes)) != rank:
        return "XlaDynamicSlice needs constant slice sizes, one per axis"
    return _index_dtype(node, 1, "start_indices")


def _clamped_starts(ctx: LoweringContext, node: NodeInfo, data: int, starts: str,
                    sizes: list[str] | str) -> str:
    """XLA clamps each start into [0, dim - size] so the window stays inside."""
    h = node.name
    shape = ctx.node("Shape", [ctx.input(node, data)], hint=f"{h}_shape")
    room = ctx.node("Sub", [shape, sizes], hint=f"{h}_room")
    zero = ctx.const(np.array(0, np.int64), "zero_i64")
    return ctx.node("Min", [ctx.node("Max", [starts, zero], hint=f"{h}_lo"), room],
                    hint=f"{h}_start")


@converter("XlaDynamicSlice", dtypes=DATA_DTYPES, validate=_validate_dynamic_slice,
           restrictions="constant slice sizes")
def convert_xla_dynamic_slice(ctx: LoweringContext, node: NodeInfo) -> None:
    sizes = ctx.int64s(_ints(node.const(2)), f"{node.name}_sizes")
    starts = _clamped_starts(ctx, node, 0, _index(ctx, node, 1), sizes)
    ends = ctx.node("Add", [starts, sizes], hint=f"{node.name}_end")
    ctx.set_output(node, 0, ctx.node("Slice", [ctx.input(node, 0), starts, ends],
                                     hint=node.name))


def _validate_dynamic_update(node: NodeInfo) -> str | None:
    rank = node.rank(0)
    if rank is None or node.rank(1) != rank:
        return "XlaDynamicUpdateSlice needs input and update of one known rank"
    if rank == 0:
        return "XlaDynamicUpdateSlice of a scalar is not supported"
    return _index_dtype(node, 2, "indices")


@converter("XlaDynamicUpdateSlice", dtypes=DATA_DTYPES, validate=_validate_dynamic_update,
           restrictions="input and update of one known rank")
def convert_xla_dynamic_update_slice(ctx: LoweringContext, node: NodeInfo) -> None:
    h = node.name
    rank = node.rank(0)
    update = ctx.input(node, 1)
    usize = ctx.node("Shape", [update], hint=f"{h}_usize")
    starts = _clamped_starts(ctx, node, 0, _index(ctx, node, 2), usize)
    # the index of every update element: starts + its position, stacked on a last axis
    zero, one = ctx.const(np.array(0, np.int64), "zero_i64"), ctx.const(np.array(1, np.int64),
                                                                        "one_i64")
    coords = []
    for axis in range(rank):
        pick = ctx.const(np.array(axis, np.int64), "index")
        n = ctx.node("Gather", [usize, pick], axis=0, hint=f"{h}_n{axis}")
        pos = ctx.node("Add", [ctx.node("Range", [zero, n, one], hint=f"{h}_r{axis}"),
                               ctx.node("Gather", [starts, pick], axis=0,
                                        hint=f"{h}_s{axis}")], hint=f"{h}_p{axis}")
        shape = [1] * rank
        shape[axis] = -1
        pos = ctx.node("Reshape", [pos, ctx.int64s(shape)], hint=f"{h}_b{axis}")
        pos = ctx.node("Expand", [pos, usize], hint=f"{h}_e{axis}")
        coords.append(ctx.node("Unsqueeze", [pos, ctx.int64s([rank])], hint=f"{h}_c{axis}"))
    index = ctx.node("Concat", coords, axis=rank, hint=f"{h}_index")
    ctx.set_output(node, 0, ctx.node("ScatterND", [ctx.input(node, 0), index, update], hint=h))


@converter("XlaSharding", "XlaOptimizationBarrier", dtypes=None,
           restrictions="pass-through (placement hints)")
def convert_xla_passthrough(ctx: LoweringContext, node: NodeInfo) -> None:
    for k in range(len(node.inputs)):
        name, perm = ctx.input_any(node, k)
        ctx.set_output(node, k, name, perm)
