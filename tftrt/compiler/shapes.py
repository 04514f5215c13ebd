"""GraphDef views that let TensorFlow's shape inference see what it cannot on its own.

* Stand-ins: an op it cannot see through is replaced by ops of the same output dtype
  and shape. A table lookup's output has the keys' shape followed by the values' shape,
  but TensorFlow infers it only from the table's handle data, which a frozen graph no
  longer carries.
* Loops: a v1 loop's Merge joins the value entering the loop with the one the previous
  iteration computed; TensorFlow infers it before the iteration's shape is known (and
  an Enter's shape only for loop constants), so the whole body gets unknown shapes.
  ``break_loops`` infers the body from the entering shape, relaxes each loop variable
  to the shape every iteration has, and repeats until nothing changes (what
  ``tf.while_loop``'s shape invariants state).
"""

from __future__ import annotations

from collections.abc import Callable

from tensorflow.core.framework import graph_pb2, node_def_pb2, tensor_shape_pb2, types_pb2

Shape = tuple[int | None, ...] | None

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


def _relaxed(a: Shape, b: Shape) -> Shape:
    """The most specific shape both ``a`` and ``b`` have."""
    if a is None or b is None or len(a) != len(b):
        return None
    return tuple(x if x == y else None for x, y in zip(a, b, strict=True))


def _shape_proto(shape: Shape) -> tensor_shape_pb2.TensorShapeProto:
    proto = tensor_shape_pb2.TensorShapeProto()
    if shape is None:
        proto.unknown_rank = True
    else:
        for d in shape:
            proto.dim.add(size=-1 if d is None else d)
    return proto


def break_loops(graph_def: graph_pb2.GraphDef,
                infer: Callable[[graph_pb2.GraphDef], dict[str, tuple[list, list]]],
                max_rounds: int = 4) -> graph_pb2.GraphDef:
    """A view of ``graph_def`` whose loop Merges read a loop-invariant shape, not the back
    edge; ``infer`` is TensorFlow's shape inference (node -> (dtypes, shapes))."""
    nodes = {n.name: n for n in graph_def.node}
    loops = {}  # Merge -> (input entering the loop, input of its NextIteration)
    for n in graph_def.node:
        if n.op != "Merge":
            continue
        data = [i for i in n.input if not i.startswith("^")]
        back = [i for i in data if nodes.get(i.split(":")[0]) is not None
                and nodes[i.split(":")[0]].op == "NextIteration"]
        if len(data) == 2 and len(back) == 1:
            entering = data[0] if data[1] == back[0] else data[1]
            nxt = nodes[back[0].split(":")[0]]
            loops[n.name] = (entering, nxt.input[0])
    if not loops:
        return graph_def
    invariant: dict[str, Shape | str] = {m: "entering" for m in loops}
    view = graph_def
    for _ in range(max_rounds):
        view = _with_invariants(graph_def, loops, invariant)
        facts = infer(view)
        changed = False
        for m, (_, after) in loops.items():
            src, _, slot = after.partition(":")
            shapes = facts.get(src, ([], []))[1]
            k = int(slot) if slot else 0
            iterated = shapes[k] if k < len(shapes) else None
            held = facts.get(m, ([], [None]))[1][0]
            relaxed = _relaxed(held, iterated)
            if relaxed != held:
                invariant[m] = relaxed
                changed = True
        if not changed:
            return view
    return _with_invariants(graph_def, loops, {m: None for m in loops})


def _with_invariants(graph_def: graph_pb2.GraphDef, loops: dict[str, tuple[str, str]],
                     invariant: dict[str, Shape | str]) -> graph_pb2.GraphDef:
    view = graph_pb2.GraphDef()
    view.versions.CopyFrom(graph_def.versions)
    view.library.CopyFrom(graph_def.library)
    for node in graph_def.node:
        nd = view.node.add()
        nd.CopyFrom(node)
        if node.op == "Enter":  # TF infers an Enter's shape only for loop constants
            nd.op = "Identity"
            for key in ("frame_name", "is_constant", "parallel_iterations"):
                nd.attr.pop(key, None)
        if node.name not in loops:
            continue
        entering, _ = loops[node.name]
        controls = [i for i in node.input if i.startswith("^")]
        shape = invariant[node.name]
        if shape == "entering":
            source = entering
        else:
            ph = view.node.add(name=f"{node.name}/_loop_invariant", op="Placeholder")
            ph.attr["dtype"].CopyFrom(node.attr["T"])
            ph.attr["shape"].shape.CopyFrom(_shape_proto(shape))
            source = ph.name
        del nd.input[:]
        nd.input.extend([source, *controls])
        nd.attr["N"].i = 1
    return view
