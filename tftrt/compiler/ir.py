"""The IR: a GraphDef as a ``networkx.MultiDiGraph``, and back, losslessly.

Nodes are keyed by TF node name and carry:
  ``op``, ``node_def`` (the NodeDef with its inputs cleared: attrs, device,
  debug info stay exact; a large Const without inputs keeps the imported GraphDef's
  own NodeDef, so that its weight is not copied: passes replace a ``node_def``
  rather than edit one in place), ``index`` (position in the GraphDef),
  ``output_dtypes`` / ``output_shapes`` (inferred by TensorFlow), and, for
  variable reads of an unfrozen graph, ``variable_value`` (the value read at
  conversion time, which makes the node constant-like).
Edges carry ``src_slot`` (-1 for control), ``dst_slot`` (the input index for
data edges, -1 for control), ``control`` and ``pos`` (position in the
consumer's input list, which fixes the order on the way back).
Graph attributes: ``versions`` and ``library`` (serialized protos).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, node_def_pb2

from tftrt.compiler import standins
from tftrt.compiler.shapes import break_loops, with_shape_standins
from tftrt.compiler.tfattrs import decode_attrs
from tftrt.specs import parse_input, tensor_ref

IR = nx.MultiDiGraph


def from_graph_def(graph_def: graph_pb2.GraphDef, infer_shapes: bool = True,
                   variable_values: Mapping[str, np.ndarray] | None = None,
                   const_values: Mapping[str, np.ndarray] | None = None) -> IR:
    """Import a GraphDef into the IR, with TensorFlow's inferred dtypes and shapes.

    ``variable_values`` maps variable nodes (resource Placeholders, VarHandleOp,
    VariableV2) to their values; the nodes reading them get ``variable_value``.
    ``const_values`` maps Consts to their values as arrays already at hand (the
    variables a graph was frozen from): ``attrs`` gives those instead of decoding
    a copy from the NodeDef.
    """
    g = nx.MultiDiGraph()
    g.graph["versions"] = (graph_def.versions.SerializeToString()
                           if graph_def.HasField("versions") else None)
    g.graph["library"] = (graph_def.library.SerializeToString()
                          if graph_def.HasField("library") else None)
    for idx, nd in enumerate(graph_def.node):
        if nd.name in g:
            raise ValueError(f"GraphDef has two nodes named {nd.name!r}")
        if not nd.input and standins.is_large(nd):
            stripped = nd  # a weight: shared with graph_def, not copied
        else:
            stripped = node_def_pb2.NodeDef()
            stripped.CopyFrom(nd)
            del stripped.input[:]
        g.add_node(nd.name, op=nd.op, node_def=stripped, index=idx,
                   output_dtypes=[], output_shapes=[])
    for nd in graph_def.node:
        for pos, ref in enumerate(nd.input):
            src, slot, control = parse_input(ref)
            if src not in g:
                raise ValueError(f"node {nd.name!r} reads {ref!r}, which is not in the graph")
            g.add_edge(src, nd.name, src_slot=slot, dst_slot=-1 if control else pos,
                       control=control, pos=pos, ref=ref)
    if const_values:
        _seed_values(g, const_values)
    if variable_values:
        annotate_variable_reads(g, variable_values)
    if infer_shapes:
        annotate_shapes(g, graph_def)
    return g


def _seed_values(g: IR, values: Mapping[str, np.ndarray]) -> None:
    """``attrs``' cache of each Const in ``values`` (of its dtype and shape), holding the
    array given as its value."""
    for name, value in values.items():
        d = g.nodes[name] if name in g else None
        if d is None or d["op"] != "Const":
            continue
        nd = d["node_def"]
        tensor = nd.attr["value"].tensor
        if (tf.as_dtype(tensor.dtype).as_numpy_dtype != value.dtype.type
                or tuple(x.size for x in tensor.tensor_shape.dim) != value.shape):
            continue
        decoded = decode_attrs({k: v for k, v in nd.attr.items() if k != "value"})
        decoded["value"] = value if not value.flags.writeable else _read_only(value)
        d["_attrs"] = (nd, decoded)


def _read_only(value: np.ndarray) -> np.ndarray:
    view = value.view()
    view.flags.writeable = False
    return view


READ_OPS = frozenset({"ReadVariableOp", "Identity"})
REF_VARIABLE_OPS = frozenset({"VariableV2", "Variable"})


def annotate_variable_reads(g: IR, values: Mapping[str, np.ndarray]) -> None:
    """Give each read of a known variable (and Identities of reads) its ``variable_value``."""
    for name in topological_order(g):
        d = g.nodes[name]
        if d["op"] in REF_VARIABLE_OPS and name in values:
            d["variable_value"] = values[name]
        elif d["op"] in READ_OPS:
            ins = data_inputs(g, name)
            if len(ins) != 1:
                continue
            src, slot, _ = parse_input(ins[0])
            if slot != 0:
                continue
            if d["op"] == "ReadVariableOp" and src in values:
                d["variable_value"] = values[src]
            elif "variable_value" in g.nodes[src]:
                d["variable_value"] = g.nodes[src]["variable_value"]


def const_value(g: IR, name: str) -> np.ndarray | None:
    """The node's output value if known at conversion time (a Const or a variable read)."""
    d = g.nodes[name]
    if d["op"] == "Const":
        return attrs(g, name).get("value")
    return d.get("variable_value")


def is_const_like(g: IR, name: str) -> bool:
    """True for Consts and for variable reads whose value is known."""
    return g.nodes[name]["op"] == "Const" or "variable_value" in g.nodes[name]


def _shape_view(g: IR, graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """``graph_def`` with known variable reads as Placeholders of their exact shape, and
    large weights as Placeholders of theirs (their values shape nothing, and copying
    them into a graph is most of the cost on weight-heavy models).

    TensorFlow cannot infer what a resource read returns without handle data,
    so this view is what shape inference runs on; ops shape inference cannot see
    through get stand-ins (``shapes.with_shape_standins``).
    """
    view, _ = standins.stand_in(with_shape_standins(graph_def))
    if not any("variable_value" in d for _, d in g.nodes(data=True)):
        return view
    for nd in view.node:
        value = g.nodes[nd.name].get("variable_value") if nd.name in g else None
        if value is None:
            continue
        name, controls = nd.name, [i for i in nd.input if i.startswith("^")]
        nd.Clear()
        nd.name = name
        nd.op = "Placeholder"
        nd.input.extend(controls)
        nd.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
        nd.attr["shape"].shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
    return view


def infer_shapes(graph_def: graph_pb2.GraphDef) -> dict[str, tuple[list, list]]:
    """TensorFlow's shape inference: node name -> (output dtypes, output shapes)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    out = {}
    for op in graph.get_operations():
        dtypes, shapes = [], []
        for t in op.outputs:
            dt = t.dtype
            dtypes.append(np.dtype(dt.as_numpy_dtype) if dt.is_numpy_compatible else None)
            shapes.append(None if t.shape.rank is None else tuple(t.shape.as_list()))
        out[op.name] = (dtypes, shapes)
    return out


def annotate_shapes(g: IR, graph_def: graph_pb2.GraphDef) -> None:
    """Set ``output_dtypes``/``output_shapes`` on every node from TensorFlow's shape inference.

    Loops (v1 control flow) get the shapes every iteration has (``shapes.break_loops``).
    """
    facts = infer_shapes(break_loops(_shape_view(g, graph_def), infer_shapes))
    for name, (dtypes, shapes) in facts.items():
        if name in g:
            g.nodes[name]["output_dtypes"] = dtypes
            g.nodes[name]["output_shapes"] = shapes


def node_inputs(g: IR, name: str) -> list[str]:
    """The node's input list as in a NodeDef ("src:slot" for data, "^src" for control)."""
    edges = sorted(g.in_edges(name, data=True), key=lambda e: e[2]["pos"])
    return [_ref_string(s, d) for s, _, d in edges]


def _ref_string(src: str, d: dict) -> str:
    if d.get("ref") and parse_input(d["ref"]) == (src, d["src_slot"], d["control"]):
        return d["ref"]
    if d["control"]:
        return "^" + src
    return src if d["src_slot"] == 0 else tensor_ref(src, d["src_slot"])


def data_inputs(g: IR, name: str) -> list[str]:
    """The node's data inputs, in input order, as "src:slot"."""
    edges = [e for e in g.in_edges(name, data=True) if not e[2]["control"]]
    edges.sort(key=lambda e: e[2]["dst_slot"])
    return [tensor_ref(s, d["src_slot"]) for s, _, d in edges]


def attrs(g: IR, name: str) -> dict:
    """The node's attrs as Python values (tensors as read-only arrays).

    Decoded once per NodeDef: a weight is read from its proto once however many
    passes and converters ask for it."""
    d = g.nodes[name]
    nd = d["node_def"]
    cached = d.get("_attrs")
    if cached is None or cached[0] is not nd:
        cached = d["_attrs"] = (nd, decode_attrs(nd.attr))
    return {k: list(v) if isinstance(v, list) else v for k, v in cached[1].items()}


def forget_decoded(g: IR, nodes: Iterable[str] | None = None) -> None:
    """Drop the attrs ``attrs`` decoded (after code that may edit NodeDefs in place, or
    when the decoded weights are no longer needed), of ``nodes`` or of every node."""
    for name in g.nodes if nodes is None else nodes:
        if name in g:
            g.nodes[name].pop("_attrs", None)


def to_graph_def(g: IR) -> graph_pb2.GraphDef:
    """The IR as a GraphDef, in original node order (new nodes last, by name)."""
    out = graph_pb2.GraphDef()
    if g.graph.get("versions") is not None:
        out.versions.ParseFromString(g.graph["versions"])
    if g.graph.get("library") is not None:
        out.library.ParseFromString(g.graph["library"])
    order = sorted(g.nodes, key=lambda n: (g.nodes[n].get("index", float("inf")), n))
    for name in order:
        nd = out.node.add()
        nd.CopyFrom(g.nodes[name]["node_def"])
        nd.name = name
        del nd.input[:]
        nd.input.extend(node_inputs(g, name))
    return out


def topological_order(g: IR) -> list[str]:
    """Nodes in a deterministic topological order (ties broken by GraphDef position)."""
    return list(nx.lexicographical_topological_sort(
        g, key=lambda n: (g.nodes[n].get("index", float("inf")), n)))
