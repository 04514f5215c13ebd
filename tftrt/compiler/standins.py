"""Large constants stood in by Placeholders while TensorFlow works on a graph's structure.

Grappler and shape inference copy and parse the whole GraphDef several times;
on a weight-heavy model that is most of a conversion (VGG16: about 25 s of
Grappler for 550 MB of weights, 0.2 s without them). Neither needs the values
of large weights: shape inference reads constant values only for shape-like
inputs (small), and Grappler folds an op on a large weight only when all its
inputs are constant, which ``fold_constant_closure`` then does on that part of
the graph alone.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2

from tftrt.specs import parse_input

# Consts whose tensor proto is at least this large are stood in; shape-like
# constants (a few integers) are far smaller.
MIN_BYTES = 1 << 16


def const_bytes(node: node_def_pb2.NodeDef) -> int:
    """The size of a Const's value, from its dtype and shape (a proto's ``ByteSize``
    serializes it to count)."""
    tensor = node.attr["value"].tensor
    count = 1
    for dim in tensor.tensor_shape.dim:
        count *= max(dim.size, 0)
    try:
        itemsize = tf.as_dtype(tensor.dtype).size
    except (TypeError, ValueError):
        itemsize = 1
    return count * max(itemsize, 1)


def is_large(node: node_def_pb2.NodeDef, min_bytes: int = MIN_BYTES) -> bool:
    return node.op == "Const" and const_bytes(node) >= min_bytes


def stand_in(graph_def: graph_pb2.GraphDef, min_bytes: int = MIN_BYTES,
             exact_shapes: bool = True
             ) -> tuple[graph_pb2.GraphDef, dict[str, node_def_pb2.NodeDef]]:
    """A copy of ``graph_def`` whose Consts of ``min_bytes`` or more are Placeholders of
    their dtype and shape, and those Consts by name (not copied).

    With ``exact_shapes`` False the Placeholders keep only their rank: Grappler feeds
    every Placeholder a tensor of its shape, its unknown dimensions taken as 1, so a
    stand-in of exact shape costs as much memory as the weight it stands in for.
    """
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    consts: dict[str, node_def_pb2.NodeDef] = {}
    for node in graph_def.node:
        if is_large(node, min_bytes):
            consts[node.name] = node
            ph = out.node.add(name=node.name, op="Placeholder", input=list(node.input))
            ph.attr["dtype"].CopyFrom(node.attr["dtype"])
            shape = ph.attr["shape"].shape
            shape.CopyFrom(node.attr["value"].tensor.tensor_shape)
            if not exact_shapes:
                for dim in shape.dim:
                    dim.size = -1
        else:
            out.node.add().CopyFrom(node)
    return out, consts


def restore(graph_def: graph_pb2.GraphDef, consts: Mapping[str, node_def_pb2.NodeDef]
            ) -> graph_pb2.GraphDef:
    """``graph_def`` with the stood-in Consts back in place of their Placeholders (in place;
    each keeps the inputs its Placeholder has now)."""
    for node in graph_def.node:
        original = consts.get(node.name)
        if original is not None and node.op == "Placeholder":
            inputs = list(node.input)
            node.CopyFrom(original)
            del node.input[:]
            node.input.extend(inputs)
    return graph_def


def put_back(original: graph_pb2.GraphDef, optimized: graph_pb2.GraphDef,
             consts: Mapping[str, node_def_pb2.NodeDef]) -> graph_pb2.GraphDef:
    """``restore(optimized, consts)`` built in ``original``, which holds ``consts`` (edited
    in place): its stood-in Consts stay where they are, not copied, and every other node
    is replaced by ``optimized``'s. The stood-in Consts come first, in their order, then
    ``optimized``'s other nodes in theirs."""
    kept = {n.name: n for n in optimized.node
            if n.op == "Placeholder" and n.name in consts}
    nodes = original.node
    for k in reversed(range(len(nodes))):
        if nodes[k].name not in kept:
            del nodes[k]
    for node in nodes:  # each keeps the inputs its Placeholder has now
        inputs = list(kept[node.name].input)
        del node.input[:]
        node.input.extend(inputs)
    for node in optimized.node:
        if node.name not in kept:
            nodes.add().CopyFrom(node)
    original.versions.CopyFrom(optimized.versions)
    original.library.CopyFrom(optimized.library)
    return original


# Ops that forward their input: Grappler removes them rather than folding them.
FORWARDING = frozenset({"Identity", "IdentityN", "Snapshot", "StopGradient"})


def constant_closure(graph_def: graph_pb2.GraphDef, consts: Collection[str]) -> set[str]:
    """Nodes that compute from constants only, at least one of them in ``consts``
    (directly or through forwarding ops): what a constant folder could fold that saw
    the stood-in values."""
    is_const = {n.name for n in graph_def.node if n.op == "Const"}
    tainted: set[str] = set(consts)  # computed from (or forwarding) a stood-in constant
    closure: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in graph_def.node:
            if node.name in is_const or node.op == "Placeholder":
                continue
            data = [parse_input(i)[0] for i in node.input if not i.startswith("^")]
            if not data or not all(src in is_const for src in data):
                continue
            is_const.add(node.name)
            changed = True
            if any(src in tainted for src in data):
                tainted.add(node.name)
                if node.op not in FORWARDING:
                    closure.add(node.name)
    return closure


def _ancestors(nodes: Mapping[str, node_def_pb2.NodeDef], names: Collection[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(parse_input(i)[0] for i in nodes[name].input if not i.startswith("^"))
    return seen


def fold_constant_closure(graph_def: graph_pb2.GraphDef, consts: Collection[str],
                          optimize: Callable[[graph_pb2.GraphDef, Sequence[str]],
                                             graph_pb2.GraphDef]) -> graph_pb2.GraphDef:
    """Fold, with ``optimize`` (a Grappler run), the nodes ``constant_closure`` finds, on
    a graph of just them and their constant inputs; the rest of ``graph_def`` is as it was.
    Folded nodes become Consts of the same name (in place)."""
    closure = constant_closure(graph_def, consts)
    if not closure:
        return graph_def
    nodes = {n.name: n for n in graph_def.node}
    needed = _ancestors(nodes, closure)
    consumers_outside = {parse_input(i)[0] for n in graph_def.node if n.name not in closure
                         for i in n.input if not i.startswith("^")}
    frontier = sorted(n for n in closure if n in consumers_outside)
    if not frontier:
        return graph_def
    sub = graph_pb2.GraphDef()
    sub.versions.CopyFrom(graph_def.versions)
    sub.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.name in needed:
            copy = sub.node.add()
            copy.CopyFrom(node)
            kept = [i for i in copy.input if not i.startswith("^")]
            del copy.input[:]
            copy.input.extend(kept)
    # a fetched node is kept as it is: fetch a NoOp that depends on them, so they fold
    fetch = sub.node.add(name="_tftrt_fold_fetch", op="NoOp")
    fetch.input.extend("^" + name for name in frontier)
    folded = {n.name: n for n in optimize(sub, [fetch.name]).node if n.op == "Const"}
    for node in graph_def.node:
        if node.name in frontier and node.name in folded:
            node.CopyFrom(folded[node.name])
    return graph_def
