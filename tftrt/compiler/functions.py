"""GraphDef passes on function calls, before Grappler: what keeps a call from being inlined
is removed, and functional control flow is kept functional.

Keras and ``tf.function(jit_compile=True)`` mark functions for XLA (``_XlaMustCompile``) or
against inlining (``_noinline``); Grappler's function optimizer then leaves the call in the
graph, where no converter sees its ops. Without the marks Grappler inlines it like any other
call. ``While``/``If`` stay functional (Grappler would lower them to Switch/Merge): their
bodies are what the control-flow converters lower to ONNX ``Loop``/``If``.
"""

from __future__ import annotations

from collections.abc import Iterable

from tensorflow.core.framework import graph_pb2, node_def_pb2

# attributes that make Grappler keep a function call as a call
NO_INLINE_ATTRS = ("_noinline", "_XlaMustCompile", "_XlaCompile", "_XlaScope",
                   "_XlaCompiledKernel", "api_implements", "api_preferred_device")
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
# a call node tftrt itself keeps as a call (a TF-TRT engine's segment it migrates)
KEEP_CALL_ATTR = "_tftrt_legacy_engine"
CONTROL_FLOW_OPS = frozenset({"If", "StatelessIf", "While", "StatelessWhile", "Case",
                              "StatelessCase"})
LOWER_ATTR = "_lower_using_switch_merge"


def _all_nodes(graph_def: graph_pb2.GraphDef) -> Iterable[node_def_pb2.NodeDef]:
    yield from graph_def.node
    for fdef in graph_def.library.function:
        yield from fdef.node_def


def allow_inlining(graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """``graph_def``, in place (no copy of its weights), with function calls Grappler may
    inline (all but the call nodes marked with ``KEEP_CALL_ATTR``)."""
    out = graph_def
    kept = {n.attr["f"].func.name for n in _all_nodes(out)
            if KEEP_CALL_ATTR in n.attr and "f" in n.attr}
    for node in _all_nodes(out):
        if KEEP_CALL_ATTR in node.attr:
            continue
        for key in NO_INLINE_ATTRS:
            node.attr.pop(key, None)
    for fdef in out.library.function:
        if fdef.signature.name in kept:
            continue
        for key in NO_INLINE_ATTRS:
            fdef.attr.pop(key, None)
    return out


def set_control_flow_lowering(graph_def: graph_pb2.GraphDef, lower: bool,
                              names: Iterable[str] | None = None) -> graph_pb2.GraphDef:
    """A copy whose ``If``/``While`` nodes (only ``names`` of the main graph, if given) Grappler
    lowers to Switch/Merge (``lower``) or keeps functional."""
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    return mark_lowering(out, lower, names)


def mark_lowering(graph_def: graph_pb2.GraphDef, lower: bool,
                  names: Iterable[str] | None = None) -> graph_pb2.GraphDef:
    """``set_control_flow_lowering`` in place (no copy of the graph's weights)."""
    wanted = None if names is None else set(names)
    nodes = (_all_nodes(graph_def) if wanted is None
             else (n for n in graph_def.node if n.name in wanted))
    for node in nodes:
        if node.op in CONTROL_FLOW_OPS:
            node.attr[LOWER_ATTR].b = lower
    return graph_def


def drop_colocation(graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """``graph_def`` without colocation constraints (``_class``): placement is not ours to
    keep, and a constraint naming a node outside an engine's segment breaks that segment."""
    for node in _all_nodes(graph_def):
        node.attr.pop("_class", None)
    return graph_def


def remaining_calls(graph_def: graph_pb2.GraphDef) -> list[str]:
    """Names of the main graph's function-call nodes (but the calls tftrt keeps)."""
    return [n.name for n in graph_def.node if n.op in CALL_OPS and KEEP_CALL_ATTR not in n.attr]
