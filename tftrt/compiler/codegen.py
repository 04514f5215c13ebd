"""Codegen: splice one ``TRTEngineOp`` node per segment into the GraphDef.

Each engine node keeps its segment as a library function
``<engine>_native_segment`` (inputs ``TensorRTInputPH_<k>``, outputs
``TensorRTOutputPH_<k>``) for native fallback and for plain TensorFlow.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf
from tensorflow.core.framework import (
    attr_value_pb2,
    function_pb2,
    graph_pb2,
    node_def_pb2,
    op_def_pb2,
)
from tensorflow.python.framework import op_def_registry

from tftrt.compiler import functions as fnlib
from tftrt.compiler import ir as irmod
from tftrt.compiler.ir import IR
from tftrt.compiler.lowering import SegmentPlan
from tftrt.specs import (
    ENGINE_OP,
    ORIGINAL_OP_ATTR,
    TensorSpec,
    input_name,
    native_segment_name,
    output_name,
)

ENGINE_DEVICE = "/job:localhost/replica:0/task:0/device:CPU:0"
_GRAPH_SEQ = itertools.count()


def next_graph_sequence() -> int:
    """TF-TRT's process-wide counter of converted graphs (the first %03d in engine names)."""
    return next(_GRAPH_SEQ)


def engine_name(graph_seq: int, index: int) -> str:
    return f"{ENGINE_OP}_{graph_seq:03d}_{index:03d}"


@dataclass(frozen=True)
class EngineNode:
    """What codegen needs about one engine."""

    name: str
    plan: SegmentPlan
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    attrs: dict  # extra TRTEngineOp attrs: name -> AttrValue


def _shape_proto(shape) -> tf.TensorShape:
    return tf.TensorShape(None if shape is None else list(shape)).as_proto()


def _type_enum(dtype) -> int:
    return tf.as_dtype(dtype).as_datatype_enum


def segment_graph_def(g: IR, plan: SegmentPlan, inputs: Sequence[TensorSpec],
                      outputs: Sequence[TensorSpec]) -> graph_pb2.GraphDef:
    """The segment as a standalone GraphDef: Placeholders in, Identities out."""
    gd = graph_pb2.GraphDef()
    gd.versions.ParseFromString(g.graph.get("versions") or b"")
    port = {spec.ref: input_name(k) for k, spec in enumerate(inputs)}
    for k, spec in enumerate(inputs):
        ph = gd.node.add(name=input_name(k), op="Placeholder")
        ph.attr["dtype"].type = _type_enum(spec.dtype)
        ph.attr["shape"].shape.CopyFrom(_shape_proto(spec.shape))
    for n in sorted(plan.nodes, key=lambda n: g.nodes[n]["index"]):
        nd = gd.node.add()
        value = g.nodes[n].get("variable_value")
        if value is not None:  # the value baked into the engine, so both paths agree
            nd.CopyFrom(_const_node(n, value))
            nd.attr[ORIGINAL_OP_ATTR].s = g.nodes[n]["op"].encode()
            continue
        nd.CopyFrom(g.nodes[n]["node_def"])
        nd.device = ""
        for ref in irmod.node_inputs(g, n):
            src, slot, control = irmod.parse_input(ref)
            if control:
                if src in plan.nodes:
                    nd.input.append(ref)
            elif src in plan.nodes:
                nd.input.append(ref)
            else:
                nd.input.append(port[irmod.tensor_ref(src, slot)])
    for k, spec in enumerate(outputs):
        out = gd.node.add(name=output_name(k), op="Identity", input=[spec.ref])
        out.attr["T"].type = _type_enum(spec.dtype)
    return gd


def _const_node(name: str, value) -> node_def_pb2.NodeDef:
    nd = node_def_pb2.NodeDef(name=name, op="Const")
    nd.attr["dtype"].type = _type_enum(value.dtype)
    nd.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return nd


def native_segment_function(g: IR, plan: SegmentPlan, inputs: Sequence[TensorSpec],
                            outputs: Sequence[TensorSpec], name: str,
                            into: function_pb2.FunctionDef | None = None
                            ) -> function_pb2.FunctionDef:
    """The segment's nodes as a library function called ``name``: inputs
    ``TensorRTInputPH_<k>``, outputs ``tensorrtoutputph_<k>`` returned directly (as
    TF-TRT's, so its node list holds exactly the segment's nodes).

    Written from the IR's NodeDefs, each weight copied once (importing the segment
    into a graph and reading it back copied every weight four times). ``into``: the
    (empty) FunctionDef to write it in, e.g. one added to a library."""
    library = _library_signatures(g)
    fdef = function_pb2.FunctionDef() if into is None else into
    fdef.signature.name = name
    port = {}
    for k, spec in enumerate(inputs):
        arg = fdef.signature.input_arg.add(name=input_name(k), type=_type_enum(spec.dtype))
        port[spec.ref] = arg.name
    order = sorted(plan.nodes, key=lambda n: g.nodes[n]["index"])
    nodes, baked = {}, set()
    for n in order:
        value = g.nodes[n].get("variable_value")
        nd = fdef.node_def.add()
        if value is not None:  # the value baked into the engine, so both paths agree
            nd.CopyFrom(_const_node(n, value))
            nd.attr[ORIGINAL_OP_ATTR].s = g.nodes[n]["op"].encode()
            baked.add(n)
        else:
            nd.CopyFrom(g.nodes[n]["node_def"])
            nd.device = ""
        nodes[n] = nd
    for n, nd in nodes.items():
        for ref in [] if n in baked else irmod.node_inputs(g, n):
            src, slot, control = irmod.parse_input(ref)
            if control:
                if src in plan.nodes:
                    nd.input.append("^" + src)
            elif src in plan.nodes:
                nd.input.append(_function_output(nodes[src], slot, library))
            else:
                nd.input.append(port[irmod.tensor_ref(src, slot)])
        if _is_stateful(nd.op, library):
            fdef.signature.is_stateful = True
    for k, spec in enumerate(outputs):
        out = output_name(k).lower()
        fdef.signature.output_arg.add(name=out, type=_type_enum(spec.dtype))
        src, slot, _ = irmod.parse_input(spec.ref)
        fdef.ret[out] = (_function_output(nodes[src], slot, library) if src in nodes
                         else port[irmod.tensor_ref(src, slot)])
    return fdef


def _library_signatures(g: IR) -> dict[str, op_def_pb2.OpDef]:
    """The signatures of the graph's library functions (ops a node may call by name)."""
    raw = g.graph.get("library")
    if not raw:
        return {}
    library = function_pb2.FunctionDefLibrary()
    library.ParseFromString(raw)
    return {f.signature.name: f.signature for f in library.function}


def _op_def(op: str, library: dict[str, op_def_pb2.OpDef]) -> op_def_pb2.OpDef:
    op_def = library.get(op) or op_def_registry.get(op)
    if op_def is None:
        raise ValueError(f"op {op!r} is not registered with TensorFlow in this process")
    return op_def


def _is_stateful(op: str, library: dict[str, op_def_pb2.OpDef]) -> bool:
    op_def = library.get(op) or op_def_registry.get(op)
    return op_def is not None and op_def.is_stateful


def _function_output(node: node_def_pb2.NodeDef, slot: int,
                     library: dict[str, op_def_pb2.OpDef]) -> str:
    """How a function body names output ``slot`` of ``node``: ``node:arg:index``."""
    k = 0
    for arg in _op_def(node.op, library).output_arg:
        if arg.number_attr:
            count = node.attr[arg.number_attr].i
        elif arg.type_list_attr:
            count = len(node.attr[arg.type_list_attr].list.type)
        else:
            count = 1
        if slot < k + count:
            return f"{node.name}:{arg.name}:{slot - k}"
        k += count
    raise ValueError(f"node {node.name!r} ({node.op}) has no output {slot}")


def engine_node_def(engine: EngineNode, segment_func: str) -> node_def_pb2.NodeDef:
    nd = node_def_pb2.NodeDef(name=engine.name, op=ENGINE_OP, device=ENGINE_DEVICE)
    nd.attr["segment_func"].func.name = segment_func
    nd.attr["InT"].list.type.extend(_type_enum(s.dtype) for s in engine.inputs)
    nd.attr["OutT"].list.type.extend(_type_enum(s.dtype) for s in engine.outputs)
    nd.attr["input_shapes"].list.shape.extend(_shape_proto(s.shape) for s in engine.inputs)
    nd.attr["output_shapes"].list.shape.extend(_shape_proto(s.shape) for s in engine.outputs)
    nd.attr["_output_shapes"].list.shape.extend(_shape_proto(s.shape) for s in engine.outputs)
    for key, value in engine.attrs.items():
        nd.attr[key].CopyFrom(value)
    return nd


def splice(g: IR, engines: Sequence[EngineNode]) -> graph_pb2.GraphDef:
    """The converted GraphDef: segments replaced by engine nodes, native functions added."""
    out = g.copy()
    renamed: dict[str, str] = {}  # tensor of a replaced node -> engine output
    for engine in engines:
        _splice_one(out, engine, native_segment_name(engine.name), renamed)
    gd = irmod.to_graph_def(out)
    for engine in engines:  # written in the library: extend() would copy every weight
        native_segment_function(g, engine.plan, engine.inputs, engine.outputs,
                                native_segment_name(engine.name), into=gd.library.function.add())
    # Freezing kept control flow functional for the converters; what stays native runs
    # lowered to Switch/Merge again, as TensorFlow runs a tf.function's
    fnlib.mark_lowering(gd, True)
    return gd


def _splice_one(out: IR, engine: EngineNode, fname: str, renamed: dict[str, str]) -> None:
    members = engine.plan.members
    index = min(out.nodes[n]["index"] for n in members)
    ctrl_srcs = sorted({u for m in members for u, _, d in out.in_edges(m, data=True)
                        if d["control"] and u not in members and not irmod.is_const_like(out, u)})
    consumers = [(m, dst, d) for m in members for _, dst, d in out.out_edges(m, data=True)
                 if dst not in members]
    out.add_node(engine.name, op=ENGINE_OP, node_def=engine_node_def(engine, fname),
                 index=index, output_dtypes=[s.dtype for s in engine.outputs],
                 output_shapes=[s.shape for s in engine.outputs])
    pos = itertools.count()
    for k, spec in enumerate(engine.inputs):
        src, slot, _ = irmod.parse_input(renamed.get(spec.ref, spec.ref))
        out.add_edge(src, engine.name, src_slot=slot, dst_slot=k, control=False, pos=next(pos))
    for src in ctrl_srcs:
        out.add_edge(src, engine.name, src_slot=-1, dst_slot=-1, control=True, pos=next(pos))
    port = {spec.ref: k for k, spec in enumerate(engine.outputs)}
    for ref, k in port.items():
        renamed[ref] = irmod.tensor_ref(engine.name, k)
    ctrl_done: set[str] = set()
    for m, dst, d in consumers:
        if d["control"]:
            if dst not in ctrl_done:
                ctrl_done.add(dst)
                out.add_edge(engine.name, dst, src_slot=-1, dst_slot=-1, control=True,
                             pos=d["pos"])
        else:
            k = port[irmod.tensor_ref(m, d["src_slot"])]
            out.add_edge(engine.name, dst, src_slot=k, dst_slot=d["dst_slot"],
                         control=False, pos=d["pos"])
    out.remove_nodes_from(members)
    out.remove_nodes_from([c for c in engine.plan.inlined
                           if c in out and out.out_degree(c) == 0])


def engine_nodes(graph_def: graph_pb2.GraphDef) -> list[node_def_pb2.NodeDef]:
    return [n for n in graph_def.node if n.op == ENGINE_OP]


def attr_value(value) -> attr_value_pb2.AttrValue:
    """An AttrValue for a Python str/bytes, bool, int or float."""
    av = attr_value_pb2.AttrValue()
    if isinstance(value, bool):
        av.b = value
    elif isinstance(value, int):
        av.i = value
    elif isinstance(value, float):
        av.f = value
    elif isinstance(value, str):
        av.s = value.encode()
    elif isinstance(value, bytes):
        av.s = value
    else:
        raise TypeError(f"unsupported attr value {value!r}")
    return av
