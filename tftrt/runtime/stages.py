"""A converted graph run as native stages with its engines called in between, from Python.

An engine node inside a TensorFlow graph is a py-func: each call wakes one of
TensorFlow's threads, takes the GIL there and runs the engine beside TensorFlow's
spinning pool threads (the engine runs about twice as slow as alone, and the round trip
costs on top). Called eagerly, the graph is instead cut at its engines: every native op
gets the number of engines on its longest path from the inputs, the ops of one number
form one stage, and the engines of that number run after it, on the calling thread, on
the stage's outputs. A stage of a few ops runs as eager ops (``eager_stage``), a larger
one as one ``tf.function``. A graph of two engines with native ops between them is then
two engine calls around the native ops, with no function call at all.

Graphs this does not cover keep the py-func path (``plan`` returns None): engines inside
v1 control flow frames or library functions, resource or variant tensors crossing from one
stage to another, and no engine at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2

from tftrt.runtime import eager_stage, tfgraph
from tftrt.specs import ENGINE_OP, SignatureTensor, parse_input, tensor_ref

# Ops that stand for their input: a reference to one is a reference to its input.
_FORWARDING = frozenset({"Identity", "Snapshot", "StopGradient"})
# Ops copied into every stage that reads them, not fed from stage to stage.
_COPIED = frozenset({"Const", "Placeholder"})
_V1_FRAMES = frozenset({"Enter", "Exit", "NextIteration", "LoopCond", "Switch", "Merge",
                        "RefEnter", "RefExit", "RefNextIteration", "RefSwitch", "RefMerge"})


class _Unstageable(Exception):
    """A tensor that cannot cross from one stage to another."""


@dataclass
class _Engine:
    op: Any  # EngineOp: ``op(list of arrays) -> list of arrays``
    name: str
    inputs: tuple[str, ...]
    n_out: int


@dataclass
class _Stage:
    fn: tfgraph.GraphFunction | eager_stage.EagerStage
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class StagedGraph:
    """``run(input tensors) -> output tensors`` of a converted graph, stage by stage."""

    def __init__(self, steps: list[tuple[_Stage | None, list[_Engine]]],
                 inputs: Sequence[str], outputs: Sequence[str]) -> None:
        self._steps = steps
        self._inputs = tuple(inputs)
        self._outputs = tuple(outputs)

    def __call__(self, tensors: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        values: dict[str, Any] = dict(zip(self._inputs, tensors, strict=True))
        adopt = tfgraph.adopt
        for stage, engines in self._steps:
            if stage is not None:
                outs = stage.fn(*[_tensor(values[r]) for r in stage.inputs])
                values.update(zip(stage.outputs, outs or (), strict=True))
            for e in engines:
                arrays = [_array(values[r]) for r in e.inputs]
                for k, out in enumerate(e.op(arrays)):
                    values[f"{e.name}:{k}"] = out
        out = []
        for ref in self._outputs:
            v = values[ref]
            if not isinstance(v, tf.Tensor):
                v = adopt(v if type(v) is np.ndarray and v.base is None else np.array(v))
                values[ref] = v
            out.append(v)
        return out


def _tensor(v: Any) -> tf.Tensor:
    if isinstance(v, tf.Tensor):
        return v
    # an engine's fresh output is no one else's: the tensor may take its memory
    return tfgraph.adopt(v if type(v) is np.ndarray and v.base is None else np.array(v))


def _array(v: Any) -> np.ndarray:
    return v.numpy() if isinstance(v, tf.Tensor) else v


def plan(graph_def: graph_pb2.GraphDef, inputs: Sequence[SignatureTensor],
         outputs: Sequence[SignatureTensor], engines: Mapping[str, Any],
         captures: Mapping[str, Any] | None = None) -> StagedGraph | None:
    """The staged run of ``graph_def``, or None where the py-func path must run it."""
    live = [n for n in graph_def.node if n.op == ENGINE_OP and n.name in engines]
    if not live or any(n.op in _V1_FRAMES for n in graph_def.node):
        return None
    if any(nd.op == ENGINE_OP for f in graph_def.library.function for nd in f.node_def):
        return None
    # engines without a runtime run their native segments, as native ops
    graph_def = tfgraph.rewrite_engines(
        graph_def, lambda n: n if n.name in engines else tfgraph.engine_as_native_call(n))
    nodes = {n.name: n for n in graph_def.node}
    sig_in = {s.ref for s in inputs}

    def resolve(ref: str) -> str:
        while True:
            name, slot, _ = parse_input(ref)
            node = nodes.get(name)
            if (node is None or node.op not in _FORWARDING or tensor_ref(name, slot) in sig_in
                    or any(i.startswith("^") for i in node.input)):
                return tensor_ref(name, slot)
            ref = node.input[0]

    def is_engine(name: str) -> bool:
        return nodes[name].op == ENGINE_OP

    def skipped(name: str) -> bool:  # fed, copied or forwarded: in no stage of its own
        node = nodes[name]
        return (node.op in _COPIED or node.op == "NoOp"
                or (node.op in _FORWARDING and resolve(f"{name}:0") != f"{name}:0"))

    depth: dict[str, int] = {}
    for name in _topological(graph_def):
        d = 0
        for ref in nodes[name].input:
            src, _, control = parse_input(ref)
            if src not in nodes:
                continue
            if not control:
                src = parse_input(resolve(ref))[0]
            d = max(d, depth.get(src, 0) + (1 if is_engine(src) else 0))
        depth[name] = d

    wanted = [resolve(s.ref) for s in outputs]
    consumers: dict[str, set[int | str]] = {}  # ref -> stages (int) / engines reading it
    for name, node in nodes.items():
        if skipped(name):
            continue
        for ref in node.input:
            if ref.startswith("^"):
                continue
            r = resolve(ref)
            consumers.setdefault(r, set()).add(name if is_engine(name) else depth[name])

    graph = tf.Graph()  # the dtypes and shapes of tensors crossing stages
    with graph.as_default():
        tf.graph_util.import_graph_def(tfgraph.native_graph_def(graph_def), name="")

    top = max(depth.values(), default=0)
    steps: list[tuple[_Stage | None, list[_Engine]]] = []
    for k in range(top + 1):
        members = [n for n in graph_def.node if depth.get(n.name) == k
                   and not skipped(n.name) and not is_engine(n.name)]
        stage = None
        if members:
            try:
                stage = _stage(graph_def, members, nodes, resolve, consumers, wanted, k,
                               graph, sig_in, captures)
            except _Unstageable:
                return None
        eng = [_Engine(engines[n.name], n.name,
                       tuple(resolve(i) for i in n.input if not i.startswith("^")),
                       len(n.attr["OutT"].list.type))
               for n in graph_def.node if is_engine(n.name) and depth[n.name] == k]
        if stage is not None or eng:
            steps.append((stage, eng))
    have = set(sig_in)  # every engine input and output must be computed by then
    for stage, eng in steps:
        have.update(stage.outputs if stage is not None else ())
        for e in eng:
            if not have.issuperset(e.inputs):
                return None
            have.update(f"{e.name}:{k}" for k in range(e.n_out))
    if not have.issuperset(wanted):
        return None
    return StagedGraph(steps, [s.ref for s in inputs], wanted)


def _stage(graph_def, members, nodes, resolve, consumers, wanted, k, graph, sig_in,
           captures) -> _Stage | None:
    """Stage ``k``: its member nodes, fed what they read from elsewhere."""
    names = {n.name for n in members}
    fed: dict[str, str] = {}  # outside ref -> Placeholder name
    copied: set[str] = set()
    gd = graph_pb2.GraphDef()
    gd.versions.CopyFrom(graph_def.versions)
    gd.library.CopyFrom(graph_def.library)
    for node in members:
        out = gd.node.add()
        out.CopyFrom(node)
        del out.input[:]
        for ref in node.input:
            src, _, control = parse_input(ref)
            if control:
                if src in names:
                    out.input.append(ref)
                continue
            r = resolve(ref)
            rsrc = parse_input(r)[0]
            if rsrc in names:
                out.input.append(r)
            elif nodes[rsrc].op in _COPIED and r not in sig_in:
                copied.add(rsrc)
                out.input.append(r)
            else:
                if r not in fed:
                    fed[r] = f"tftrt_stage{k}_in{len(fed)}"
                out.input.append(fed[r])
    for name in copied:
        node = gd.node.add()
        node.CopyFrom(nodes[name])
        del node.input[:]  # a Const's or handle's control inputs live in other stages
    for r, ph in fed.items():
        t = graph.get_tensor_by_name(r)
        if t.dtype in (tf.resource, tf.variant):  # a handle made in one stage: keep one graph
            raise _Unstageable(r)
        p = node_def_pb2.NodeDef(name=ph, op="Placeholder")
        p.attr["dtype"].type = t.dtype.as_datatype_enum
        p.attr["shape"].shape.CopyFrom(t.shape.as_proto())
        gd.node.append(p)
    produced = [r for r, users in consumers.items()
                if parse_input(r)[0] in names and any(u != k for u in users)]
    produced += [r for r in wanted if parse_input(r)[0] in names and r not in produced]
    stateful = any(graph.get_operation_by_name(n.name).op_def.is_stateful for n in members)
    if not produced and not stateful:
        return None
    placeholders = list(fed.values())
    fn = None if stateful else eager_stage.build(gd, _topological(gd), placeholders, produced,
                                                 graph)
    if fn is None:
        fn = tfgraph.graph_function(gd, [f"{ph}:0" for ph in placeholders], produced,
                                    captures)
    return _Stage(fn, tuple(fed), tuple(produced))


def _topological(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Node names, every node after its inputs (data and control)."""
    nodes = {n.name: n for n in graph_def.node}
    indeg = {n: 0 for n in nodes}
    users: dict[str, list[str]] = {n: [] for n in nodes}
    for n in graph_def.node:
        for ref in n.input:
            src = parse_input(ref)[0]
            if src in nodes:
                indeg[n.name] += 1
                users[src].append(n.name)
    ready = [n for n, d in indeg.items() if d == 0]
    order = []
    while ready:
        n = ready.pop()
        order.append(n)
        for u in users[n]:
            indeg[u] -= 1
            if indeg[u] == 0:
                ready.append(u)
    return order
