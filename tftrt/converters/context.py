"""What a converter sees (``NodeInfo``) and what it writes to (``LoweringContext``).

Layouts: every TF tensor lowered into a segment is held as an ONNX tensor plus
a permutation ``perm`` such that ``onnx_tensor == transpose(tf_tensor, perm)``
(``None`` means the TF layout). Layout-aware converters (convolution, pooling,
elementwise ops) consume and produce permuted tensors directly, so a chain of
NHWC ops lowers to NCHW ONNX with transposes only at the chain's ends.
Converters that need the TF layout ask for it and get one cached Transpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Perm = tuple[int, ...] | None
Shape = tuple[int | None, ...] | None  # None: unknown rank; None dim: unknown size

NHWC_TO_NCHW: tuple[int, ...] = (0, 3, 1, 2)
NCHW_TO_NHWC: tuple[int, ...] = (0, 2, 3, 1)

FLOAT_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float16)})
INT_DTYPES = frozenset({np.dtype(np.int32), np.dtype(np.int64)})
# what arithmetic converters accept; a backend that computes some of it inexactly says so
# (plugins.types.NumericLimits), and the capability pass keeps such nodes native there
NUMERIC_DTYPES = FLOAT_DTYPES | INT_DTYPES


def invert_perm(perm: Sequence[int]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def compose_perm(first: Perm, second: Perm) -> Perm:
    """The permutation equal to applying ``first`` then ``second``."""
    if first is None:
        return second
    if second is None:
        return first
    out = tuple(first[i] for i in second)
    return None if out == tuple(range(len(out))) else out


def onnx_dtype(dtype: np.dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


TensorType = tuple[np.dtype, "Shape"]  # a function argument or result: dtype and shape


class Functions(Protocol):
    """The graph's function library, as the converters of control flow see it.

    A function is named by its library name and called with argument types; its body
    converts when every node of it does.
    """

    def reason(self, name: str, args: Sequence[TensorType]) -> str | None:
        """Why function ``name`` cannot be lowered for ``args``, or None."""
        ...

    def results(self, name: str, args: Sequence[TensorType]) -> list[TensorType]:
        """The dtypes and shapes of the function's results."""
        ...

    def passthrough(self, name: str) -> list[int | None]:
        """Per result, the argument it returns unchanged (None: a computed result)."""
        ...

    def lower(self, ctx: LoweringContext, name: str, args: Sequence[str],
              types: Sequence[TensorType]) -> list[str]:
        """Lower the function's body into ``ctx`` with its arguments bound to the ONNX
        tensors ``args`` (TF layout); returns its results' ONNX names (TF layout)."""
        ...


@dataclass
class NodeInfo:
    """A TF node as a converter sees it: op, decoded attrs, and its inputs' facts."""

    name: str
    op: str
    attrs: dict[str, Any]
    inputs: list[str]  # data inputs as "node:slot"
    input_dtypes: list[np.dtype | None]
    input_shapes: list[Shape]
    input_consts: list[np.ndarray | None]
    output_dtypes: list[np.dtype | None]
    output_shapes: list[Shape]
    dynamic_shape: bool = False
    # output slots some node reads (data edges); converters may leave others unset
    used_outputs: frozenset[int] = frozenset({0})
    # this node's own output value when known at conversion time (an unfrozen variable read)
    value: np.ndarray | None = None
    # the function library, for ops that call functions (While, If); None outside a graph
    functions: Functions | None = None

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def const(self, i: int) -> np.ndarray | None:
        """The value of input ``i`` if its producer is a Const (or a known variable read)."""
        return self.input_consts[i]

    def rank(self, i: int) -> int | None:
        shape = self.input_shapes[i]
        return None if shape is None else len(shape)


@dataclass
class LoweringContext:
    """Accumulates one segment's ONNX graph while converters run."""

    opset: int = 17
    # TF_TRT_ENABLE_LAYOUT_OPTIMIZER=0: every tensor is held in its TF layout between ops
    keep_layout: bool = False
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    # TF tensor "node:slot" -> (onnx name, perm)
    tensors: dict[str, tuple[str, Perm]] = field(default_factory=dict)
    # TF tensor "node:slot" -> its TF-layout shape, where the lowering knows it
    shapes: dict[str, Shape] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)
    _transposed: dict[tuple[str, Perm], str] = field(default_factory=dict)
    _const_cache: dict[tuple, str] = field(default_factory=dict)
    _held: list[np.ndarray] = field(default_factory=list)
    # the model ``make_model`` returns; ``const`` writes initializers straight into its
    # graph (copying each weight into a model afterwards would copy it once more)
    _model: onnx.ModelProto = field(default_factory=onnx.ModelProto)
    # weights of at least this many bytes stay out of the model: ``detached`` holds them
    # (name -> (TensorProto without data, buffer)), for ``onnxbytes.serialize``
    detach_bytes: int | None = None
    detached: dict[str, tuple[onnx.TensorProto, Any]] = field(default_factory=dict)

    # -- naming -------------------------------------------------------------
    def unique(self, hint: str) -> str:
        base = hint.replace(":", "_") or "t"
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}__{k}"
        self._names.add(name)
        return name

    # -- graph inputs/outputs ------------------------------------------------
    def bind(self, ref: str, onnx_name: str, perm: Perm = None) -> None:
        """Make TF tensor ``ref`` available as ``onnx_name`` (permuted by ``perm``)."""
        self._names.add(onnx_name)
        self.tensors[ref] = (onnx_name, perm)

    def lookup(self, ref: str) -> tuple[str, Perm]:
        try:
            return self.tensors[ref]
        except KeyError:
            raise KeyError(f"tensor {ref} has not been lowered yet") from None

    def as_layout(self, ref: str, perm: Perm) -> str:
        """ONNX name of TF tensor ``ref`` permuted by ``perm`` (None: TF layout)."""
        name, have = self.lookup(ref)
        if have == perm:
            return name
        # x_have = transpose(x, have); want transpose(x, perm) = transpose(x_have, p)
        p = compose_perm(invert_perm(have) if have is not None else None, perm)
        if p is None:
            return name
        key = (name, p)
        if key not in self._transposed:
            self._transposed[key] = self._relayout(name, p, self._held_shape(ref, have))
        return self._transposed[key]

    def _held_shape(self, ref: str, perm: Perm) -> Shape:
        shape = self.shapes.get(ref)
        if shape is None or perm is None:
            return shape
        return tuple(shape[i] for i in perm)

    def _relayout(self, name: str, p: tuple[int, ...], held: Shape) -> str:
        """Transpose ``name`` by ``p``; a Squeeze+Unsqueeze when only size-1 axes move."""
        if held is not None and len(held) == len(p):
            units = [k for k, d in enumerate(held) if d == 1]
            moved = [a for a in p if a not in units]
            if units and moved == sorted(moved):
                target_units = [k for k, a in enumerate(p) if a in units]
                squeezed = self.node("Squeeze", [name, self.int64s(units, f"{name}_units")],
                                     hint=f"{name}_squeeze")
                return self.node("Unsqueeze", [squeezed,
                                               self.int64s(target_units, f"{name}_at")],
                                 hint=f"{name}_perm")
        return self.node("Transpose", [name], perm=list(p), hint=f"{name}_perm")

    # -- converter-facing helpers -------------------------------------------
    def input(self, node: NodeInfo, i: int) -> str:
        """Input ``i`` of ``node`` in TF layout."""
        return self.as_layout(node.inputs[i], None)

    def input_any(self, node: NodeInfo, i: int) -> tuple[str, Perm]:
        """Input ``i`` of ``node`` in whatever layout it has."""
        return self.lookup(node.inputs[i])

    def input_as(self, node: NodeInfo, i: int, perm: Perm) -> str:
        return self.as_layout(node.inputs[i], perm)

    def set_output(self, node: NodeInfo, slot: int, onnx_name: str, perm: Perm = None) -> None:
        ref = f"{node.name}:{slot}"
        self.tensors[ref] = (onnx_name, perm)
        if self.keep_layout and perm is not None:
            self.tensors[ref] = (self.as_layout(ref, None), None)

    def node(self, op_type: str, inputs: Sequence[str], *, outputs: int = 1,
             hint: str | None = None, domain: str = "", **attrs: Any) -> Any:
        """Append an ONNX node; returns its output name (or names if ``outputs`` > 1)."""
        hint = hint or op_type
        outs = [self.unique(f"{hint}_out{k}" if outputs > 1 else hint) for k in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), outs,
                                           name=self.unique(f"{hint}/{op_type}"),
                                           domain=domain or None, **attrs))
        return outs if outputs > 1 else outs[0]

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """An initializer holding ``value``; identical constants are shared."""
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == np.float64 and dtype is None:
            arr = arr.astype(np.float32)
        # small values are shared by content; a weight by the array holding it (keying
        # it by its bytes would copy it once more and hold the copy)
        key = (arr.dtype.str, arr.tobytes(), arr.shape) if arr.nbytes <= 1024 else \
            (arr.dtype.str, id(arr), arr.shape)
        if key in self._const_cache:
            return self._const_cache[key]
        name = self.unique(hint)
        if self._detachable(arr):
            header = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(arr.dtype),
                                 dims=arr.shape)
            raw = _whole_bytes(arr)
            self.detached[name] = (header, np.ascontiguousarray(arr) if raw is None else raw)
        else:
            self.initializers.append(_fill_tensor(self._model.graph.initializer.add(), arr,
                                                  name))
        self._const_cache[key] = name
        if arr.nbytes > 1024:
            self._held.append(arr)  # its id stays its own while the key is held
        return name

    def _detachable(self, arr: np.ndarray) -> bool:
        return (self.detach_bytes is not None and arr.nbytes >= self.detach_bytes
                and arr.dtype.kind in "iuf" and arr.dtype.byteorder != ">")

    def int64s(self, values: Sequence[int], hint: str = "ints") -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), hint)

    # -- subgraphs (bodies of Loop, If) ----------------------------------------
    def subgraph(self) -> LoweringContext:
        """A context for a subgraph of this one: its own nodes and TF tensors, names and
        constants shared (constants live in the main graph, which subgraphs see)."""
        child = LoweringContext(opset=self.opset, initializers=self.initializers)
        child._names = self._names
        child._const_cache = self._const_cache
        child._model = self._model
        child.detach_bytes, child.detached = self.detach_bytes, self.detached
        return child

    def make_graph(self, inputs: Sequence[tuple[str, np.dtype, Shape]],
                   outputs: Sequence[tuple[str, np.dtype, Shape]],
                   name: str) -> onnx.GraphProto:
        """This subgraph context as a GraphProto (no initializers: they are the main
        graph's), with nodes nothing reads dropped."""
        nodes, _ = _prune(self.nodes, [], [o[0] for o in outputs])
        return helper.make_graph(nodes, self.unique(name), [_value_info(*i) for i in inputs],
                                 [_value_info(*o) for o in outputs])

    # -- finishing ----------------------------------------------------------
    def make_model(self, inputs: Sequence[tuple[str, np.dtype, Shape]],
                   outputs: Sequence[tuple[str, np.dtype, Shape]],
                   name: str) -> onnx.ModelProto:
        """The ONNX model of this segment, with unused nodes and initializers dropped
        (also from ``detached``, whose weights it does not hold)."""
        headers = [h for h, _ in self.detached.values()]
        nodes, inits = _prune(self.nodes, self.initializers + headers,
                              [o[0] for o in outputs])
        used = {t.name for t in inits}
        for name in [n for n in self.detached if n not in used]:
            del self.detached[name]
        inits = [t for t in inits if t.name not in self.detached]
        # filled in place: make_graph and make_model would each copy every weight
        model, self._model = self._model, onnx.ModelProto()
        own = model.graph.initializer
        needed = {t.name for t in inits}
        for k in reversed(range(len(own))):  # those ``const`` wrote that nothing reads
            if own[k].name not in needed:
                del own[k]
        written = {t.name for t in own}
        model.ir_version = min(onnx.IR_VERSION, 9)
        model.producer_name = "tftrt"
        model.opset_import.add(domain="", version=self.opset)
        graph = model.graph
        graph.name = name
        graph.node.extend(nodes)
        graph.input.extend(_value_info(*i) for i in inputs)
        graph.output.extend(_value_info(*o) for o in outputs)
        for init in inits:  # added to the list by hand; add+CopyFrom: upb's extend is slower
            if init.name not in written:
                graph.initializer.add().CopyFrom(init)
        return model


def _fill_tensor(tensor: onnx.TensorProto, arr: np.ndarray, name: str) -> onnx.TensorProto:
    """``tensor`` (empty) made ``numpy_helper.from_array(arr, name)``; a weight read
    straight from a proto's bytes is written from those bytes (one copy, not two)."""
    raw = _whole_bytes(arr)
    if raw is None or arr.dtype.kind not in "iuf" or arr.dtype.byteorder == ">":
        tensor.CopyFrom(numpy_helper.from_array(arr, name))
        return tensor
    tensor.name = name
    tensor.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
    tensor.dims.extend(arr.shape)
    tensor.raw_data = raw
    return tensor


def _whole_bytes(arr: np.ndarray) -> bytes | None:
    """The ``bytes`` object ``arr`` is a C-ordered view of, all of it; else None."""
    root = arr
    while isinstance(root, np.ndarray):
        root = root.base
    if (isinstance(root, bytes) and arr.flags.c_contiguous and len(root) == arr.nbytes
            and arr.nbytes > 0):
        return root
    return None


def _value_info(n: str, dt: np.dtype, shape: Shape) -> onnx.ValueInfoProto:
    dims = None if shape is None else [
        d if d is not None and d >= 0 else f"{n}_d{k}" for k, d in enumerate(shape)]
    return helper.make_tensor_value_info(n, onnx_dtype(dt), dims)


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """The names a node's subgraphs (Loop and If bodies) read from the scopes around them."""
    names: set[str] = set()
    for attr in node.attribute:
        graphs = list(attr.g.node and [attr.g] or []) + list(attr.graphs)
        for graph in graphs:
            local = {i.name for i in graph.input} | {t.name for t in graph.initializer}
            for inner in graph.node:
                local.update(inner.output)
            for inner in graph.node:
                names.update(i for i in inner.input if i and i not in local)
                names.update(_subgraph_inputs(inner) - local)
            names.update(o.name for o in graph.output if o.name not in local)
    return names


def _prune(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto],
           outputs: list[str]) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    needed = set(outputs)
    keep: list[onnx.NodeProto] = []
    for n in reversed(nodes):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
            needed.update(_subgraph_inputs(n))
    keep.reverse()
    return keep, [t for t in inits if t.name in needed]


__all__ = [
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "NUMERIC_DTYPES",
    "NCHW_TO_NHWC",
    "NHWC_TO_NCHW",
    "LoweringContext",
    "NodeInfo",
    "Perm",
    "Shape",
    "TensorProto",
    "compose_perm",
    "invert_perm",
    "onnx_dtype",
]
