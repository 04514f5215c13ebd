"""Constant folding on the IR: every subgraph whose inputs are all constant becomes Consts.

Grappler folds most of these, but not all (its arithmetic optimizer runs after constant
folding, so e.g. the ``Mul`` of two constants it leaves on a convolution's filter when it
folds a scale into it stays). A converter that needs a constant input must see one,
whatever Grappler left. Stateful ops, control flow and oversized results are not folded.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.python.framework import op_def_registry

from tftrt.compiler import ir as irmod
from tftrt.compiler.ir import IR

log = logging.getLogger("tftrt")

MAX_FOLDED_BYTES = 64 << 20
_NEVER = frozenset({"Placeholder", "PlaceholderWithDefault", "NoOp", "Enter", "Exit", "Switch",
                    "Merge", "NextIteration", "LoopCond", "RefEnter", "RefSwitch", "RefMerge",
                    "ControlTrigger", "EagerPyFunc", "PyFunc", "PyFuncStateless",
                    "TRTEngineOp", "_Arg", "_Retval"})


def _stateless(op: str) -> bool:
    op_def = op_def_registry.get(op)
    return op_def is not None and not op_def.is_stateful


def foldable_nodes(g: IR, fold_variable_reads: bool = True) -> list[str]:
    """Non-constant nodes all of whose inputs are constant or foldable, in topological order."""
    try:
        order = irmod.topological_order(g)
    except Exception:  # a cyclic graph (v1 control flow): fold nothing
        return []
    const: set[str] = set()
    out: list[str] = []
    for name in order:
        d = g.nodes[name]
        if d["op"] == "Const" or (fold_variable_reads and "variable_value" in d):
            const.add(name)
            continue
        if d["op"] in _NEVER or "variable_value" in d or not _stateless(d["op"]):
            continue
        preds = {s for s, _, _ in g.in_edges(name, data=True)}
        if not preds or not preds <= const:
            continue
        if any(dt is None for dt in d["output_dtypes"]) or not d["output_dtypes"]:
            continue
        const.add(name)
        out.append(name)
    return out


def _evaluate(g: IR, names: list[str], fetch: list[str]) -> dict[str, np.ndarray]:
    """The values of tensors ``fetch`` of the foldable nodes ``names`` (and their sources)."""
    needed: set[str] = set()
    stack = [irmod.parse_input(r)[0] for r in fetch]
    while stack:
        n = stack.pop()
        if n in needed:
            continue
        needed.add(n)
        stack.extend(s for s, _, _ in g.in_edges(n, data=True))
    gd = graph_pb2.GraphDef()
    if g.graph.get("library") is not None:
        gd.library.ParseFromString(g.graph["library"])
    for n in sorted(needed, key=lambda n: g.nodes[n]["index"]):
        value = g.nodes[n].get("variable_value")
        nd = gd.node.add()
        if value is not None and g.nodes[n]["op"] != "Const":
            nd.CopyFrom(_const_node(n, value))
            continue
        nd.CopyFrom(g.nodes[n]["node_def"])
        nd.name = n
        del nd.input[:]
        nd.input.extend(irmod.node_inputs(g, n))
        nd.device = ""
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        values = sess.run(fetch)
    return dict(zip(fetch, values, strict=True))


def _const_node(name: str, value: np.ndarray) -> node_def_pb2.NodeDef:
    nd = node_def_pb2.NodeDef(name=name, op="Const")
    arr = np.asarray(value)
    nd.attr["dtype"].type = tf.as_dtype(arr.dtype).as_datatype_enum
    nd.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(arr))
    return nd


def fold_constants(g: IR, keep: frozenset[str] = frozenset(),
                   fold_variable_reads: bool = True) -> IR:
    """A copy of ``g`` with every all-constant subgraph replaced by Const nodes.

    ``keep`` names nodes that must stay (signature inputs and outputs): a foldable one
    becomes a Const of the same name. With ``fold_variable_reads`` False, reads of
    variables (an unfrozen graph) are not constants here: they keep reading the variable.
    """
    names = foldable_nodes(g, fold_variable_reads)
    if not names:
        return g
    inside = set(names)
    fetch = []  # tensors of foldable nodes read by the rest of the graph
    for n in names:
        slots = {d["src_slot"] for _, dst, d in g.out_edges(n, data=True)
                 if not d["control"] and dst not in inside}
        if n in keep:
            slots.add(0)
        fetch.extend(irmod.tensor_ref(n, s) for s in sorted(slots))
    if not fetch:
        return g
    try:
        values = _evaluate(g, names, fetch)
    except Exception as exc:  # the graph keeps computing them
        log.info("constant folding skipped: %s", exc)
        return g
    out = g.copy()
    sources = {s for n in names for s in g.predecessors(n)}
    for ref, value in values.items():
        arr = np.asarray(value)
        if arr.nbytes > MAX_FOLDED_BYTES or arr.dtype == object and arr.size > 1 << 16:
            continue
        _replace(out, ref, arr)
    _remove_dead(out, sorted(inside | sources), inside, keep)
    return out


def _replace(g: IR, ref: str, value: np.ndarray) -> None:
    """Make tensor ``ref`` come from a Const holding ``value``."""
    name, slot, _ = irmod.parse_input(ref)
    d = g.nodes[name]
    if slot == 0 and len(d["output_dtypes"]) == 1:
        target = name
        for src, _, key in list(g.in_edges(name, keys=True)):
            g.remove_edge(src, name, key)
        d["op"] = "Const"
    else:
        target = f"{name}/folded_{slot}"
        g.add_node(target, index=d["index"], output_dtypes=[], output_shapes=[])
        for _, dst, key, e in list(g.out_edges(name, keys=True, data=True)):
            if not e["control"] and e["src_slot"] == slot:
                g.remove_edge(name, dst, key)
                g.add_edge(target, dst, **{**e, "src_slot": 0, "ref": None})
    g.nodes[target].update(op="Const", node_def=_const_node(target, value),
                           output_dtypes=[np.dtype(value.dtype)],
                           output_shapes=[tuple(value.shape)])
    g.nodes[target].pop("variable_value", None)


def _remove_dead(g: IR, dead: list[str], inside: set[str], keep: frozenset[str]) -> None:
    """Remove folded nodes nothing reads any more, and then their unused sources."""
    todo = list(dead)
    while todo:
        n = todo.pop()
        if n not in g or n in keep or g.out_degree(n):
            continue  # read, or waited on
        srcs = [s for s, _, _ in g.in_edges(n, data=True)]
        g.remove_node(n)
        todo.extend(s for s in srcs if s in inside or g.nodes[s]["op"] == "Const")
