"""Value ranges: for each tensor of the IR, an interval its values are known to stay in.

Used where a backend computes integers exactly only up to some magnitude (see
``plugins.types.NumericLimits``): position and shape arithmetic derives from tensor
dimensions, constants and arg-reductions, so its range is known even when its values
are not. A tensor dimension is taken to be below 2^30 and a tensor to hold fewer than
2^31 elements (what 32-bit indexing engines can address). Comparisons whose outcome the
ranges decide are constant, and so is the branch a Select takes on them.
Unknown values get their dtype's full range (infinite for floats). A static table's
values are known at conversion time: its resource node carries ``table_range``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import networkx as nx
import numpy as np

from tftrt.compiler import ir as irmod
from tftrt.compiler.ir import IR

Interval = tuple[float, float]
DIM_MAX = float(1 << 30)
ELEMENTS_MAX = float((1 << 31) - 1)
UNBOUNDED: Interval = (-math.inf, math.inf)

# ops whose output holds values of their data inputs (given by position; None: all)
_MOVES: dict[str, tuple[int, ...] | None] = {
    "Identity": (0,), "Snapshot": (0,), "StopGradient": (0,), "Reshape": (0,),
    "Transpose": (0,), "ExpandDims": (0,), "Squeeze": (0,), "StridedSlice": (0,),
    "Slice": (0,), "GatherV2": (0,), "GatherNd": (0,), "Gather": (0,), "Tile": (0,),
    "BroadcastTo": (0,), "Unpack": (0,), "Split": (1,), "SplitV": (0,), "Reverse": (0,),
    "ReverseV2": (0,), "Roll": (0,), "Pack": None, "ConcatV2": None, "Fill": (1,),
    "Max": (0,), "Min": (0,), "Mean": (0,), "TopKV2": (0,), "MirrorPad": (0,),
    "DepthToSpace": (0,), "SpaceToDepth": (0,), "ResizeNearestNeighbor": (0,),
    "EnsureShape": (0,), "CheckNumerics": (0,), "XlaDynamicSlice": (0,),
}
_BOOL_OPS = frozenset({"Equal", "NotEqual", "LogicalAnd", "LogicalOr", "LogicalNot", "IsNan",
                       "IsInf", "IsFinite", "All", "Any"})
_INDEX_OUTPUTS = frozenset({"Shape", "ShapeN", "Rank", "Where"})
# reading a shape's entries keeps them dims; their product is a number of elements
_SHAPE_PATH = frozenset({"Identity", "StridedSlice", "Slice", "GatherV2", "Cast", "Pack",
                         "ConcatV2"})
# op -> (its input positions that index into another input): valid indices are in range,
# whatever the engine narrows them to
INDEX_INPUTS: dict[str, tuple[int, ...]] = {
    "GatherV2": (1,), "Gather": (1,), "GatherNd": (1,), "ResourceGather": (1,),
    "OneHot": (0,), "TensorScatterUpdate": (1,), "TensorScatterAdd": (1,),
    "ScatterNd": (0, 2), "SparseToDense": (0, 1), "UnsortedSegmentSum": (1, 2),
}
# op -> its input positions whose values it does not read (only their shapes)
VALUE_BLIND: dict[str, tuple[int, ...]] = {
    "Shape": (0,), "ShapeN": (0,), "Size": (0,), "Rank": (0,), "ZerosLike": (0,),
    "OnesLike": (0,), "zeros_like": (0,), "ones_like": (0,),
}
_MONOTONE = {"Exp": np.exp, "Sqrt": np.sqrt, "Floor": np.floor, "Ceil": np.ceil,
             "Round": np.round, "Tanh": np.tanh, "Sigmoid": lambda v: 1 / (1 + np.exp(-v)),
             "Relu": lambda v: max(v, 0.0), "Relu6": lambda v: min(max(v, 0.0), 6.0)}


def dtype_range(dtype: np.dtype | None) -> Interval:
    if dtype is None:
        return UNBOUNDED
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return (0.0, 1.0)
    if np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        return (float(info.min), float(info.max))
    return UNBOUNDED


def _clip(iv: Interval, dtype: np.dtype | None) -> Interval:
    """``iv`` if the dtype holds it; else the dtype's range (integers wrap around)."""
    lo, hi = dtype_range(dtype)
    return iv if lo <= iv[0] and iv[1] <= hi else (lo, hi)


def _hull(*ivs: Interval) -> Interval:
    return (min(i[0] for i in ivs), max(i[1] for i in ivs))


def _mul(a: Interval, b: Interval) -> Interval:
    prods = []
    for x in a:
        for y in b:
            p = x * y
            prods.append(0.0 if math.isnan(p) else p)  # 0 * inf: the zero end of a range
    return (min(prods), max(prods))


def _div(a: Interval, b: Interval) -> Interval:
    if b[0] <= 0 <= b[1]:
        return UNBOUNDED
    return _mul(a, (1 / b[1], 1 / b[0]))


def _dim(shape, axis: int | None) -> float:
    if shape is None or axis is None or axis >= len(shape) or shape[axis] is None:
        return DIM_MAX
    return float(shape[axis])


class _Ranges:
    """The analysis state: the IR and the interval found for each tensor so far."""

    def __init__(self, g: IR) -> None:
        self.g = g
        self.ranges: dict[str, Interval] = {}

    def of(self, ref: str) -> Interval:
        if ref in self.ranges:
            return self.ranges[ref]
        src, slot, _ = irmod.parse_input(ref)
        dts = self.g.nodes[src]["output_dtypes"]
        return dtype_range(dts[slot] if slot < len(dts) else None)

    def inputs(self, name: str) -> list[Interval]:
        return [self.of(r) for r in irmod.data_inputs(self.g, name)]


def _const_interval(value: np.ndarray) -> Interval | None:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf" or arr.size == 0:
        return None
    lo, hi = float(arr.min()), float(arr.max())
    if math.isfinite(lo) and math.isfinite(hi):  # no inf or nan: no mask (a weight's copy)
        return (lo, hi)
    finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
    lo = float(finite.min()) if finite.size else math.inf
    hi = float(finite.max()) if finite.size else -math.inf
    if arr.dtype.kind == "f" and finite.size < arr.size:
        lo, hi = (-math.inf if np.isneginf(arr).any() or np.isnan(arr).any() else lo,
                  math.inf if np.isposinf(arr).any() or np.isnan(arr).any() else hi)
    return (lo, hi)


def _arith(op: str, ins: list[Interval]) -> Interval | None:
    if op in ("Add", "AddV2", "AddN"):
        return (sum(i[0] for i in ins), sum(i[1] for i in ins))
    if op == "Sub":
        return (ins[0][0] - ins[1][1], ins[0][1] - ins[1][0])
    if op == "Mul":
        return _mul(ins[0], ins[1])
    if op == "RealDiv":
        return _div(ins[0], ins[1])
    if op in ("Div", "FloorDiv", "TruncateDiv"):  # integer quotients: widen to whole numbers
        q = _div(ins[0], ins[1])
        return (math.floor(q[0]) if math.isfinite(q[0]) else q[0],
                math.ceil(q[1]) if math.isfinite(q[1]) else q[1])
    if op in ("FloorMod", "TruncateMod", "Mod"):
        m = max(abs(ins[1][0]), abs(ins[1][1]))
        return (-m, m)
    if op == "Maximum":
        return (max(ins[0][0], ins[1][0]), max(ins[0][1], ins[1][1]))
    if op == "Minimum":
        return (min(ins[0][0], ins[1][0]), min(ins[0][1], ins[1][1]))
    if op == "ClipByValue":
        return (max(ins[0][0], ins[1][0]), min(max(ins[0][1], ins[1][0]), ins[2][1]))
    if op == "Neg":
        return (-ins[0][1], -ins[0][0])
    if op == "Abs":
        lo, hi = ins[0]
        return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
    if op == "Square":
        return _mul(ins[0], ins[0]) if ins[0][0] < 0 < ins[0][1] else (
            min(ins[0][0] ** 2, ins[0][1] ** 2), max(ins[0][0] ** 2, ins[0][1] ** 2))
    if op == "Sign":
        return (-1.0 if ins[0][0] < 0 else 0.0, 1.0 if ins[0][1] > 0 else 0.0)
    if op in ("Select", "SelectV2"):
        return _hull(ins[1], ins[2])
    if op == "Log":
        lo, hi = ins[0]
        if hi <= 0:
            return UNBOUNDED
        return (math.log(lo) if lo > 0 else -math.inf, math.log(hi) if math.isfinite(hi)
                else math.inf)
    if op in _MONOTONE:
        try:
            f: Callable[[float], float] = _MONOTONE[op]
            return (float(f(ins[0][0])), float(f(ins[0][1])))
        except (OverflowError, ValueError, TypeError):
            return None
    return None


def _node_ranges(state: _Ranges, name: str) -> list[Interval] | None:
    """The intervals of node ``name``'s outputs, or None when nothing is known."""
    g = state.g
    d = g.nodes[name]
    op = d["op"]
    value = irmod.const_value(g, name)
    if value is not None:
        iv = _const_interval(value)
        return None if iv is None else [iv]
    ins = state.inputs(name)
    if op in ("Less", "LessEqual", "Greater", "GreaterEqual"):
        return [_compare(op, ins[0], ins[1])]
    if op == "LogicalNot":
        return [(1 - ins[0][1], 1 - ins[0][0])]
    if op in _BOOL_OPS:
        return [(0.0, 1.0)]
    if op in ("Select", "SelectV2") and ins[0] in ((0.0, 0.0), (1.0, 1.0)):
        return [ins[2] if ins[0] == (0.0, 0.0) else ins[1]]
    if op in ("Select", "SelectV2"):
        cond, a, b = irmod.data_inputs(g, name)[:3]
        return [_hull(_branch(state, cond, a, True, ins[1]),
                      _branch(state, cond, b, False, ins[2]))]
    if op == "Size":
        return [(0.0, ELEMENTS_MAX)]
    if op == "Prod" and _reads_shape(g, irmod.data_inputs(g, name)[0]):
        return [(0.0, ELEMENTS_MAX)]
    if op == "Bucketize":
        return [(0.0, float(len(irmod.attrs(g, name).get("boundaries") or [])))]
    if op in _INDEX_OUTPUTS:
        return [(0.0, DIM_MAX)] * max(1, len(d["output_dtypes"]))
    if op in ("ArgMax", "ArgMin"):
        in_shape = irmod.data_inputs(g, name)[0]
        shape = _shape_of(g, in_shape)
        axis = irmod.const_value(g, irmod.parse_input(irmod.data_inputs(g, name)[1])[0])
        ax = None if axis is None or shape is None else int(np.asarray(axis)) % len(shape)
        return [(0.0, _dim(shape, ax) - 1)]
    if op == "TopKV2":
        shape = _shape_of(g, irmod.data_inputs(g, name)[0])
        last = None if shape is None else len(shape) - 1
        return [ins[0], (0.0, _dim(shape, last) - 1)]
    if op == "CombinedNonMaxSuppression" and len(ins) >= 4:
        return [ins[0], ins[1], (0.0, _dim(_shape_of(g, irmod.data_inputs(g, name)[1]), 2)),
                (0.0, ins[3][1])]
    if op.startswith("NonMaxSuppressionV"):
        boxes = _dim(_shape_of(g, irmod.data_inputs(g, name)[0]), 0)
        return [(0.0, boxes - 1), ins[1] if op == "NonMaxSuppressionV5" else (0.0, boxes),
                (0.0, boxes)]
    if op in ("LookupTableFindV2", "LookupTableFind") and len(ins) >= 3:
        table = g.nodes[irmod.parse_input(irmod.data_inputs(g, name)[0])[0]]
        if "table_range" in table:
            return [_hull(table["table_range"], ins[2])]
        return None
    if op == "Range":
        return [(min(ins[0][0], ins[1][0]), max(ins[0][1], ins[1][1]))]
    if op == "Cast":
        lo, hi = ins[0]
        return [(math.trunc(lo) if math.isfinite(lo) else lo,
                 math.trunc(hi) if math.isfinite(hi) else hi)]
    if op in ("ZerosLike", "zeros_like"):
        return [(0.0, 0.0)]
    if op in ("OnesLike", "ones_like"):
        return [(1.0, 1.0)]
    if op == "OneHot" and len(ins) >= 4:
        return [_hull(ins[2], ins[3])]
    if op in ("Pad", "PadV2", "MatrixBandPart"):
        return [_hull(ins[0], ins[2] if op == "PadV2" and len(ins) > 2 else (0.0, 0.0))]
    if op in ("TensorScatterUpdate",):
        return [_hull(ins[0], ins[2])]
    if op in ("Cumsum", "Sum"):
        n = _reduced_count(g, name) if op == "Sum" else _dim(
            _shape_of(g, irmod.data_inputs(g, name)[0]), _axis(g, name))
        return [_mul(ins[0], (0.0, n))]
    if op in _MOVES:
        picks = _MOVES[op]
        chosen = ins if picks is None else [ins[i] for i in picks if i < len(ins)]
        if op == "SplitV":
            chosen = ins[:1]
        return [_hull(*chosen)] * max(1, len(d["output_dtypes"])) if chosen else None
    iv = _arith(op, ins) if ins else None
    return None if iv is None else [iv]


# -- a Select's branch where its condition holds ----------------------------------------

Pieces = list[Interval]  # a union of intervals
_FLIP = {"Less": "GreaterEqual", "GreaterEqual": "Less", "Greater": "LessEqual",
         "LessEqual": "Greater"}
_MIRROR = {"Less": "Greater", "Greater": "Less", "LessEqual": "GreaterEqual",
           "GreaterEqual": "LessEqual"}
_ELEMENTWISE = frozenset({"Abs", "Neg", "Add", "AddV2", "Sub", "Mul", "RealDiv", "Cast",
                          "Maximum", "Minimum", "Identity", "Square", "Sign"})


def _intersect(a: Pieces, b: Pieces) -> Pieces:
    out = [(max(x[0], y[0]), min(x[1], y[1])) for x in a for y in b]
    return [iv for iv in out if iv[0] <= iv[1]]


def _pieces(state: _Ranges, cond: str, holds: bool, depth: int = 0
            ) -> tuple[str, Pieces] | None:
    """(x, where x lies) when condition ``cond`` is ``holds`` and compares one tensor x
    with known bounds; None when it is not such a condition."""
    g = state.g
    src = irmod.parse_input(cond)[0]
    op, refs = g.nodes[src]["op"], irmod.data_inputs(g, src)
    if depth > 4:
        return None
    if op == "LogicalNot":
        return _pieces(state, refs[0], not holds, depth + 1)
    if op in ("LogicalAnd", "LogicalOr"):
        a = _pieces(state, refs[0], holds, depth + 1)
        b = _pieces(state, refs[1], holds, depth + 1)
        if a is None or b is None or a[0] != b[0]:
            return None
        both = (op == "LogicalAnd") == holds  # both hold, or (negated) either fails
        return a[0], _intersect(a[1], b[1]) if both else a[1] + b[1]
    if op not in _FLIP or len(refs) != 2:
        return None
    known = [irmod.const_value(g, irmod.parse_input(r)[0]) for r in refs]
    if known[1] is not None and np.asarray(known[1]).size == 1:
        x, k = refs[0], float(np.asarray(known[1]).reshape(()))
    elif known[0] is not None and np.asarray(known[0]).size == 1:
        x, k, op = refs[1], float(np.asarray(known[0]).reshape(())), _MIRROR[op]
    else:
        return None
    op = op if holds else _FLIP[op]
    lo, hi = state.of(x)
    piece = (lo, min(hi, k)) if op in ("Less", "LessEqual") else (max(lo, k), hi)
    return x, [piece] if piece[0] <= piece[1] else []


def _branch(state: _Ranges, cond: str, branch: str, holds: bool, default: Interval
            ) -> Interval:
    """The range of a Select's ``branch`` where ``cond`` is ``holds``: computed on the
    part of a compared tensor's range the condition selects, when the branch is an
    elementwise function of that tensor; else ``default``."""
    found = _pieces(state, cond, holds)
    if found is None:
        return default
    x, pieces = found
    g = state.g
    chain, ref = [], branch
    while ref != x and len(chain) < 6:  # from the branch back to x, one path
        src = irmod.parse_input(ref)[0]
        if g.nodes[src]["op"] not in _ELEMENTWISE:
            return default
        ins = irmod.data_inputs(g, src)
        on_path = [i for i in ins if irmod.const_value(g, irmod.parse_input(i)[0]) is None]
        if len(on_path) != 1:
            return default
        chain.append((src, ins, on_path[0]))
        ref = on_path[0]
    if ref != x:
        return default
    if not pieces:
        return default
    results = []
    for piece in pieces:
        iv = piece
        for src, ins, via in reversed(chain):
            args = [iv if i == via else state.of(i) for i in ins]
            op = g.nodes[src]["op"]
            iv = args[0] if op in ("Identity", "Cast") else _arith(op, args)
            if iv is None:
                return default
        results.append(iv)
    got = _hull(*results)
    return (max(got[0], default[0]), min(got[1], default[1]))


def _compare(op: str, a: Interval, b: Interval) -> Interval:
    """(1, 1) when ``a op b`` always holds, (0, 0) when it never does, else (0, 1)."""
    if op in ("Greater", "GreaterEqual"):
        a, b = b, a
        op = "Less" if op == "Greater" else "LessEqual"
    if op == "Less":
        always, never = a[1] < b[0], a[0] >= b[1]
    else:
        always, never = a[1] <= b[0], a[0] > b[1]
    return (1.0, 1.0) if always else (0.0, 0.0) if never else (0.0, 1.0)


def _reads_shape(g: IR, ref: str) -> bool:
    """Whether tensor ``ref`` holds entries of one tensor's shape (and nothing else)."""
    seen = 0
    while seen < 16:
        src = irmod.parse_input(ref)[0]
        op = g.nodes[src]["op"]
        if op == "Shape":
            return True
        ins = irmod.data_inputs(g, src)
        if op not in _SHAPE_PATH or not ins or op in ("Pack", "ConcatV2"):
            return False
        ref, seen = ins[0], seen + 1
    return False


def _shape_of(g: IR, ref: str):
    src, slot, _ = irmod.parse_input(ref)
    shapes = g.nodes[src]["output_shapes"]
    return shapes[slot] if slot < len(shapes) else None


def _axis(g: IR, name: str) -> int | None:
    refs = irmod.data_inputs(g, name)
    shape = _shape_of(g, refs[0])
    axis = irmod.const_value(g, irmod.parse_input(refs[1])[0]) if len(refs) > 1 else None
    if axis is None or shape is None or np.asarray(axis).size != 1:
        return None
    return int(np.asarray(axis).reshape(())) % len(shape)


def _reduced_count(g: IR, name: str) -> float:
    refs = irmod.data_inputs(g, name)
    shape = _shape_of(g, refs[0])
    axes = irmod.const_value(g, irmod.parse_input(refs[1])[0])
    if shape is None or axes is None:
        return math.inf
    n = 1.0
    for a in np.asarray(axes).reshape(-1):
        n *= _dim(shape, int(a) % len(shape))
    return n


def value_ranges(g: IR) -> dict[str, Interval]:
    """Tensor ``"node:slot"`` -> the interval its values stay in (dtype range if unknown)."""
    state = _Ranges(g)
    try:
        order = irmod.topological_order(g)
    except nx.NetworkXUnfeasible:  # v1 control flow: values around a loop are not tracked
        order = []
    for name in order:
        found = _node_ranges(state, name)
        if found is None:
            continue
        dts = g.nodes[name]["output_dtypes"]
        for slot, iv in enumerate(found):
            dt = dts[slot] if slot < len(dts) else None
            state.ranges[irmod.tensor_ref(name, slot)] = _clip(iv, dt)
    return state.ranges


def magnitude(iv: Interval) -> float:
    return max(abs(iv[0]), abs(iv[1]))
