"""Running GraphDefs from Python: the one place that touches TensorFlow's private
py-func registry (pinned to the TF versions the tests run)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, function_pb2, graph_pb2, node_def_pb2
from tensorflow.python.eager import context as _context
from tensorflow.python.framework.function_def_to_graph import function_def_to_graph
from tensorflow.python.ops import script_ops

try:
    from tensorflow.python.framework.ops import EagerTensor as _EagerTensor
except ImportError:  # pragma: no cover - a TF without it: the public, copying way
    _EagerTensor = None

from tftrt.errors import TftrtError
from tftrt.specs import ENGINE_OP

EAGER_TENSOR: type | None = _EagerTensor  # the type of eager tensors, where TF exposes it


def adopt(array: np.ndarray) -> tf.Tensor:
    """An eager tensor of ``array``, which the caller hands over: the tensor may share
    its memory (``tf.convert_to_tensor`` copies an array first, then wraps the copy)."""
    if _EagerTensor is None:  # pragma: no cover
        return tf.convert_to_tensor(array)
    ctx = _context.context()
    ctx.ensure_initialized()
    device = ctx.device_name
    # No device: the tensor stays where numpy put it, in host memory. Naming one (even
    # the default, '') places it with an _EagerConst op, which costs 10 us a call warm and
    # about 50 us right after an engine has run; only a non-CPU scope needs that.
    return _EagerTensor(array, device if device and "CPU" not in device.upper() else None,
                        None)


class GraphFunction:
    """A concrete function running a GraphDef, called flat: ``fn(*tensors) ->
    list[tf.Tensor]``, eagerly or inside a ``tf.function``."""

    def __init__(self, function: Any) -> None:
        self.function = function
        # A structured call binds the arguments by structure first; the pruned function
        # of a v1 graph fails that and formats every input tensor for the error it then
        # swallows (~3 ms a call on a 200 KB input): call flat.
        self._call_flat = getattr(function, "_call_flat", None)
        self._captured = function.captured_inputs

    def __call__(self, *args: tf.Tensor) -> list[tf.Tensor]:
        if self._call_flat is None:  # pragma: no cover - a TF without the private call
            return self.function(*args)
        return self._call_flat(list(args), self._captured)


def graph_function(graph_def: graph_pb2.GraphDef, inputs: Sequence[str],
                   outputs: Sequence[str], captures: Mapping[str, Any] | None = None
                   ) -> GraphFunction:
    """A function running ``graph_def`` from tensors ``inputs`` to ``outputs``.

    ``captures`` binds resource Placeholders (by node name) to variables or other
    resources (lookup tables), or to their handle tensors. The graph is imported into
    a ``tf.function``, so a call costs what calling the original function costs. A
    graph with v1 control flow (loops lowered to Enter/Exit) or that calls functions of
    its library is imported into a v1 graph instead (``wrap_function``): there no
    automatic control dependencies cross loop frames, and the library goes with it.
    """
    if _needs_v1_graph(graph_def):
        return _v1_graph_function(graph_def, inputs, outputs, captures)
    nodes = {n.name: n for n in graph_def.node}
    specs = [_placeholder_spec(nodes, ref) for ref in inputs]
    bound = {name: obj for name, obj in (captures or {}).items() if name in nodes}
    outputs = list(outputs)
    graph_def = _without_controls_on(graph_def, {r.split(":")[0] for r in inputs} | set(bound))

    def run(*args):
        input_map = dict(zip(inputs, args, strict=True))
        graph = tf.compat.v1.get_default_graph()
        input_map.update({f"{name}:0": graph.capture(resource_handle(obj))
                          for name, obj in bound.items()})
        wanted = [ref for ref in outputs if ref not in input_map]
        got = dict(zip(wanted, tf.graph_util.import_graph_def(
            graph_def, input_map=input_map, return_elements=wanted, name=""), strict=True))
        return [input_map[ref] if ref in input_map else got[ref] for ref in outputs]

    return GraphFunction(
        tf.function(run, input_signature=specs, autograph=False).get_concrete_function())


_V1_CONTROL_FLOW = frozenset({"Enter", "Exit", "NextIteration", "LoopCond", "RefEnter",
                              "RefExit", "RefNextIteration"})


def _without_controls_on(graph_def: graph_pb2.GraphDef, names: set[str]) -> graph_pb2.GraphDef:
    """A copy without control inputs on ``names`` (fed Placeholders: in a tf.function a
    control edge would run the unfed Placeholder itself)."""
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    for node in out.node:
        kept = [i for i in node.input if not (i.startswith("^") and i[1:] in names)]
        if len(kept) != len(node.input):
            del node.input[:]
            node.input.extend(kept)
    return out


def _needs_v1_graph(graph_def: graph_pb2.GraphDef) -> bool:
    """Whether ``graph_def`` has v1 control flow or calls a function of its library."""
    library = {f.signature.name for f in graph_def.library.function}
    for node in graph_def.node:
        if node.op in _V1_CONTROL_FLOW or node.op in library:
            return True
        if any(v.HasField("func") and v.func.name in library for v in node.attr.values()):
            return True
    return False


def _v1_graph_function(graph_def: graph_pb2.GraphDef, inputs: Sequence[str],
                       outputs: Sequence[str], captures: Mapping[str, Any] | None = None):
    """``graph_function`` through ``wrap_function``: a v1 graph, pruned to the outputs."""
    graph_def = _without_name_clashes(graph_def)
    present = {n.name for n in graph_def.node}

    def _import():
        graph = tf.compat.v1.get_default_graph()
        input_map = {f"{name}:0": graph.capture(resource_handle(obj))
                     for name, obj in (captures or {}).items() if name in present}
        tf.graph_util.import_graph_def(graph_def, input_map=input_map, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    g = wrapped.graph
    return GraphFunction(wrapped.prune([g.get_tensor_by_name(t) for t in inputs],
                                       [g.get_tensor_by_name(t) for t in outputs]))


_CLASH_SUFFIXES = itertools.count()


def _without_name_clashes(graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """``graph_def``, or a copy with its library functions renamed where a function of the
    same name already exists in this process (e.g. the original model, loaded beside its
    conversion: TensorFlow refuses a second, different definition of a name)."""
    ctx = _context.context()
    if not any(ctx.has_function(f.signature.name) for f in graph_def.library.function):
        return graph_def
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    rename_functions(out, f"_tftrt{next(_CLASH_SUFFIXES)}")
    return out


def _placeholder_spec(nodes: Mapping[str, node_def_pb2.NodeDef], ref: str) -> tf.TensorSpec:
    name = ref.split(":")[0]
    node = nodes.get(name)
    if node is None or node.op != "Placeholder":
        raise TftrtError(f"graph input {ref!r} is not a Placeholder of the graph")
    shape = tf.TensorShape(node.attr["shape"].shape) if "shape" in node.attr else None
    return tf.TensorSpec(shape, tf.as_dtype(node.attr["dtype"].type))


def resource_handle(obj: Any) -> tf.Tensor:
    """The resource tensor of a variable, a trackable resource (a table), or a handle itself."""
    if isinstance(obj, tf.Variable):
        return obj.handle
    handle = getattr(obj, "resource_handle", None)
    return obj if handle is None else handle


def function_callable(fdef: function_pb2.FunctionDef,
                      library: function_pb2.FunctionDefLibrary | None = None
                      ) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
    """A numpy-in, numpy-out callable running a library function eagerly."""
    fg = function_def_to_graph(fdef)
    gd = fg.as_graph_def()
    if library is not None:
        gd.library.CopyFrom(library)
    fn = graph_function(gd, [t.name for t in fg.inputs], [t.name for t in fg.outputs])

    def run(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [t.numpy() for t in fn(*[tf.convert_to_tensor(x) for x in inputs])]

    return run


def lazy_function_callable(fdef: function_pb2.FunctionDef,
                           library: function_pb2.FunctionDefLibrary | None = None
                           ) -> Callable[[Sequence[np.ndarray]], list[np.ndarray]]:
    """Like ``function_callable``, traced on first call (most native segments never run)."""
    holder: list[Callable[[Sequence[np.ndarray]], list[np.ndarray]]] = []

    def run(inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not holder:
            holder.append(function_callable(fdef, library))
        return holder[0](inputs)

    return run


class PyFuncBinding:
    """Registers Python callables as ``PyFunc`` tokens, holding them strongly.

    A ``PyFunc`` node hands its callback numpy arrays sharing the input tensors'
    memory and takes numpy arrays back, with no eager tensors made on the way
    (``EagerPyFunc``'s round trip costs about twice as much per call).
    """

    def __init__(self) -> None:
        self._funcs: list[object] = []  # the registry holds callbacks weakly
        self._tokens: list[str] = []
        self.error: TftrtError | None = None  # the last tftrt error a callback raised

    def token(self, fn: Callable[[Sequence[np.ndarray]], list[np.ndarray]],
              out_dtypes: Sequence[tf.DType] = ()) -> str:
        """A token for ``PyFunc`` nodes calling ``fn(list of arrays) -> list of arrays``
        (``out_dtypes`` is kept for callers; the node's ``Tout`` types the outputs)."""
        def call(*args: np.ndarray) -> list[np.ndarray]:
            try:
                return fn(args)
            except TftrtError as exc:  # TF wraps it in an UnknownError; the caller unwraps
                self.error = exc
                raise

        self._funcs.append(call)
        token = script_ops._py_funcs.insert(call)  # noqa: SLF001 - see module docstring
        self._tokens.append(token)
        return token

    def __del__(self) -> None:
        try:
            for token in self._tokens:
                script_ops._py_funcs.remove(token)  # noqa: SLF001
        except Exception:
            pass


def pyfunc_node(name: str, inputs: Sequence[str], token: str, tin: Sequence[int],
                tout: Sequence[int]) -> node_def_pb2.NodeDef:
    """A ``PyFunc`` node ``name`` calling ``token`` on ``inputs`` (dtype enums ``tin``)."""
    out = node_def_pb2.NodeDef(name=name, op="PyFunc", input=list(inputs))
    out.attr["token"].s = token.encode()
    out.attr["Tin"].list.type.extend(tin)
    out.attr["Tout"].list.type.extend(tout)
    return out


def engine_as_pyfunc(node: node_def_pb2.NodeDef, token: str) -> node_def_pb2.NodeDef:
    """A ``PyFunc`` node calling ``token`` in place of engine node ``node``."""
    return pyfunc_node(node.name, node.input, token, node.attr["InT"].list.type,
                       node.attr["OutT"].list.type)


def engine_as_native_call(node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef:
    """A ``PartitionedCall`` of the engine's native segment in place of engine node ``node``."""
    out = node_def_pb2.NodeDef(name=node.name, op="PartitionedCall", input=list(node.input))
    out.attr["f"].func.name = node.attr["segment_func"].func.name
    out.attr["Tin"].CopyFrom(node.attr["InT"])
    out.attr["Tout"].CopyFrom(node.attr["OutT"])
    return out


def rewrite_engines(graph_def: graph_pb2.GraphDef, rewrite: Callable[[node_def_pb2.NodeDef],
                    node_def_pb2.NodeDef]) -> graph_pb2.GraphDef:
    """A copy of ``graph_def`` with every engine node replaced by ``rewrite(node)``."""
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    for i, node in enumerate(out.node):
        if node.op == ENGINE_OP:
            out.node[i].CopyFrom(rewrite(node))
    return out


def rename_functions(graph_def: graph_pb2.GraphDef, suffix: str) -> dict[str, str]:
    """Give every library function of ``graph_def`` a name ending in ``suffix``, in place,
    rewriting every reference to it; returns old name -> new name.

    TensorFlow keeps one function of a name per process: two loaded models whose
    functions share a name but differ (e.g. both have a ``TRTEngineOp_000_000``
    engine) would clash when the second runs.
    """
    names = {f.signature.name: f"{f.signature.name}{suffix}" for f in graph_def.library.function}

    def fix_attr(value: attr_value_pb2.AttrValue) -> None:
        if value.HasField("func"):
            fix_func(value.func)
        elif value.HasField("list"):
            for f in value.list.func:
                fix_func(f)

    def fix_func(func: attr_value_pb2.NameAttrList) -> None:
        func.name = names.get(func.name, func.name)
        for v in func.attr.values():
            fix_attr(v)

    def fix_node(node: node_def_pb2.NodeDef) -> None:
        if node.op in names:  # a function called as an op
            node.op = names[node.op]
        for v in node.attr.values():
            fix_attr(v)

    for node in graph_def.node:
        fix_node(node)
    for fdef in graph_def.library.function:
        fdef.signature.name = names[fdef.signature.name]
        for node in fdef.node_def:
            fix_node(node)
    for grad in graph_def.library.gradient:
        grad.function_name = names.get(grad.function_name, grad.function_name)
        grad.gradient_func = names.get(grad.gradient_func, grad.gradient_func)
    return names


def native_graph_def(graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """The converted graph run entirely by TensorFlow (engines call their native segments)."""
    return rewrite_engines(graph_def, engine_as_native_call)
