"""The function library as control-flow converters see it (``converters.context.Functions``).

A ``While`` or ``If`` calls library functions (body, cond, branches). Each function,
instantiated for its argument types, is imported as an IR of its own; it can be lowered
when every node of it is supported (the same capability pass, with the same backend).
Its nodes are then lowered by their converters into the caller's ONNX (sub)graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import function_pb2, graph_pb2
from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

from tftrt.compiler import ir as irmod
from tftrt.converters.context import LoweringContext, TensorType
from tftrt.plugins.manager import Registry

# nodes of a function body that are bookkeeping, not work
_IGNORED = frozenset({"NoOp", "Placeholder"})
# ops whose output is their input
_SAME = frozenset({"Identity", "Snapshot", "StopGradient"})


class _Instance:
    """One function imported for given argument types: its IR, arguments and results."""

    def __init__(self, g: irmod.IR, args: list[str], results: list[str]) -> None:
        self.g = g
        self.args = args  # the Placeholder node of each argument
        self.results = results  # the tensor "node:slot" of each result


class FunctionLowering:
    """The library of one graph, for its control-flow converters."""

    def __init__(self, library: bytes | None, registry: Registry, backend: object | None = None,
                 dynamic_shape: bool = False) -> None:
        self._library = function_pb2.FunctionDefLibrary()
        if library:
            self._library.ParseFromString(library)
        self._library_bytes = library
        self.registry = registry
        self.backend = backend
        self.dynamic_shape = dynamic_shape
        self._fdefs = {f.signature.name: f for f in self._library.function}
        self._instances: dict[tuple, _Instance | str] = {}
        self._marked: dict[tuple, irmod.IR] = {}

    @cached_property
    def _graph(self) -> tf.Graph:
        """A graph holding the library, so that nested calls resolve."""
        graph = tf.Graph()
        gd = graph_pb2.GraphDef()
        gd.library.CopyFrom(self._library)
        with graph.as_default():
            tf.graph_util.import_graph_def(gd, name="")
        return graph

    def _key(self, name: str, args: Sequence[TensorType]) -> tuple:
        return (name, tuple((np.dtype(d).str if d is not None else None,
                             None if s is None else tuple(s)) for d, s in args))

    def _instance(self, name: str, args: Sequence[TensorType]) -> _Instance | str:
        key = self._key(name, args)
        if key not in self._instances:
            self._instances[key] = self._import(name, args)
        return self._instances[key]

    def _import(self, name: str, args: Sequence[TensorType]) -> _Instance | str:
        fdef = self._fdefs.get(name)
        if fdef is None:
            return f"function {name} is not in the graph's library"
        if len(args) != len(fdef.signature.input_arg):
            return (f"function {name} takes {len(fdef.signature.input_arg)} arguments, "
                    f"called with {len(args)}")
        shapes = [None if s is None else tf.TensorShape(list(s)) for _, s in args]
        try:
            with self._graph.as_default():
                gd, flat = function_def_to_graph_def(fdef, shapes)
            gd.library.CopyFrom(self._library)
            g = irmod.from_graph_def(gd)
        except Exception as exc:  # e.g. a body TensorFlow itself cannot import
            return f"function {name} could not be imported: {exc}"
        g.graph["functions"] = self
        arg_nodes = [a.name for a in fdef.signature.input_arg]
        results = [_flat(flat[fdef.ret[o.name]]) for o in fdef.signature.output_arg]
        return _Instance(g, arg_nodes, results)

    def _marked_instance(self, name: str, args: Sequence[TensorType]) -> irmod.IR | str:
        key = self._key(name, args)
        if key not in self._marked:
            inst = self._instance(name, args)
            if isinstance(inst, str):
                return inst
            from tftrt.compiler import capability, prepare

            g = prepare.fold(inst.g, frozenset(inst.args) | {
                irmod.parse_input(r)[0] for r in inst.results})
            self._marked[key] = capability.mark_supported(
                g, self.registry, dynamic_shape=self.dynamic_shape, backend=self.backend)
        return self._marked[key]

    # -- the Functions protocol --------------------------------------------------
    def reason(self, name: str, args: Sequence[TensorType]) -> str | None:
        marked = self._marked_instance(name, args)
        if isinstance(marked, str):
            return marked
        inst = self._instance(name, args)
        assert not isinstance(inst, str)
        live = self._live(marked, inst.results)
        for n in marked.nodes:
            d = marked.nodes[n]
            if d["op"] in _IGNORED or (d.get("supported") and n in live):
                continue
            if n not in live and not _has_effects(d["op"]):
                continue  # nothing reads it: it is not lowered
            return f"function {name}: node {n} ({d['op']}): {d['reason'] or 'has side effects'}"
        return None

    def results(self, name: str, args: Sequence[TensorType]) -> list[TensorType]:
        inst = self._instance(name, args)
        if isinstance(inst, str):
            raise ValueError(inst)
        out = []
        for ref in inst.results:
            src, slot, _ = irmod.parse_input(ref)
            d = inst.g.nodes[src]
            out.append((d["output_dtypes"][slot], d["output_shapes"][slot]))
        return out

    def passthrough(self, name: str) -> list[int | None]:
        fdef = self._fdefs[name]
        args = [a.name for a in fdef.signature.input_arg]
        nodes = {n.name: n for n in fdef.node_def}
        out = []
        for o in fdef.signature.output_arg:
            ref = fdef.ret[o.name]
            while ref.split(":")[0] in nodes and nodes[ref.split(":")[0]].op in _SAME:
                ref = next(i for i in nodes[ref.split(":")[0]].input if not i.startswith("^"))
            out.append(args.index(ref) if ref in args else None)
        return out

    def lower(self, ctx: LoweringContext, name: str, args: Sequence[str],
              types: Sequence[TensorType]) -> list[str]:
        from tftrt.compiler.lowering import node_info, run_converters

        marked = self._marked_instance(name, types)
        if isinstance(marked, str):
            raise ValueError(marked)
        inst = self._instance(name, types)
        assert not isinstance(inst, str)
        for arg, onnx_name, (_, shape) in zip(inst.args, args, types, strict=True):
            ctx.tensors[irmod.tensor_ref(arg, 0)] = (onnx_name, None)
            ctx.shapes[irmod.tensor_ref(arg, 0)] = shape
        live = self._live(marked, inst.results)
        order = [n for n in irmod.topological_order(marked.subgraph(live))
                 if marked.nodes[n]["op"] not in _IGNORED]
        run_converters(ctx, [node_info(marked, n, self.dynamic_shape) for n in order],
                       self.registry)
        return [ctx.as_layout(r, None) for r in inst.results]

    @staticmethod
    def _live(g: irmod.IR, results: Sequence[str]) -> set[str]:
        """Nodes some result depends on through data edges."""
        todo = [irmod.parse_input(r)[0] for r in results]
        live: set[str] = set()
        while todo:
            n = todo.pop()
            if n in live:
                continue
            live.add(n)
            todo.extend(s for s, _, d in g.in_edges(n, data=True) if not d["control"])
        return live


def _has_effects(op: str) -> bool:
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(op)
    return op_def is None or op_def.is_stateful


def _flat(ref: str) -> str:
    src, slot, _ = irmod.parse_input(ref)
    return irmod.tensor_ref(src, slot)
