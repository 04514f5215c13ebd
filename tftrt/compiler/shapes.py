"""Stand-ins that let TensorFlow's shape inference see through ops it cannot: a GraphDef view
in which such an op is replaced by ops of the same output dtype and shape.

A table lookup's output has the keys' shape followed by the values' shape, but TensorFlow
infers it only from the table's handle data, which a frozen graph no longer carries.
"""

from __future__ import annotations

from tensorflow.core.framework import graph_pb2, node_def_pb2, types_pb2

LOOKUP_OPS = frozenset({"LookupTableFindV2", "LookupTableFind"})


def _lookup_standin(node: node_def_pb2.NodeDef) -> list[node_def_pb2.NodeDef]:
    """``BroadcastTo(default, concat(shape(keys), shape(default)))`` named like the lookup."""
    keys, default = node.input[1], node.input[2]
    controls = [i for i in node.input if i.startswith("^")]
    name = node.name
    out: list[node_def_pb2.NodeDef] = []

    def add(suffix: str, op: str, inputs: list[str], **types: int) -> str:
        nd = node_def_pb2.NodeDef(name=f"{name}/_shape_{suffix}", op=op, input=inputs)
        for key, value in types.items():
            nd.attr[key].type = value
        out.append(nd)
        return nd.name

    keys_shape = add("keys", "Shape", [keys], T=node.attr["Tin"].type,
                     out_type=types_pb2.DT_INT32)
    value_shape = add("value", "Shape", [default], T=node.attr["Tout"].type,
                      out_type=types_pb2.DT_INT32)
    axis = node_def_pb2.NodeDef(name=f"{name}/_shape_axis", op="Const")
    axis.attr["dtype"].type = types_pb2.DT_INT32
    axis.attr["value"].tensor.dtype = types_pb2.DT_INT32
    axis.attr["value"].tensor.int_val.append(0)
    axis.attr["value"].tensor.tensor_shape.SetInParent()
    out.append(axis)
    dims = add("dims", "ConcatV2", [keys_shape, value_shape, axis.name],
               T=types_pb2.DT_INT32, Tidx=types_pb2.DT_INT32)
    out[-1].attr["N"].i = 2
    result = node_def_pb2.NodeDef(name=name, op="BroadcastTo", input=[default, dims, *controls])
    result.attr["T"].type = node.attr["Tout"].type
    result.attr["Tidx"].type = types_pb2.DT_INT32
    out.append(result)
    return out


def with_shape_standins(graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """``graph_def`` (itself if nothing changes) with stand-ins for ops shape inference cannot
    see through; the stand-ins keep the replaced nodes' names."""
    if not any(n.op in LOOKUP_OPS for n in graph_def.node):
        return graph_def
    view = graph_pb2.GraphDef()
    view.versions.CopyFrom(graph_def.versions)
    view.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        if node.op in LOOKUP_OPS and len(node.input) >= 3:
            view.node.extend(_lookup_standin(node))
        else:
            view.node.add().CopyFrom(node)
    return view
