"""``ConvertedFunction``: the callable a conversion returns, running a converted GraphDef."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tftrt.errors import InputSpecError
from tftrt.runtime import tfgraph
from tftrt.runtime.engine_op import EngineOp
from tftrt.specs import ENGINE_OP, SignatureTensor, parse_input, tensor_ref


def check_inputs(specs: Sequence[SignatureTensor], args: Sequence[Any],
                 kwargs: Mapping[str, Any]) -> list[Any]:
    """Map positional/keyword arguments onto the signature, checking dtype and shape."""
    names = [s.name for s in specs]
    if len(args) > len(specs):
        raise InputSpecError(f"expected at most {len(specs)} positional inputs {names}, "
                             f"got {len(args)}")
    values: dict[str, Any] = dict(zip(names, args, strict=False))
    for key, v in kwargs.items():
        if key not in names:
            raise InputSpecError(f"unexpected input {key!r}; the signature's inputs are {names}")
        if key in values:
            raise InputSpecError(f"input {key!r} given twice")
        values[key] = v
    missing = [n for n in names if n not in values]
    if missing:
        raise InputSpecError(f"missing inputs {missing}; the signature's inputs are {names}")
    out = []
    for spec in specs:
        v = values[spec.name]
        if isinstance(v, (tf.Tensor, np.ndarray, np.generic)):
            dtype = np.dtype(v.dtype.as_numpy_dtype) if isinstance(v, tf.Tensor) else v.dtype
            if dtype != spec.dtype:
                raise InputSpecError(f"input {spec.name!r} must have dtype {spec.dtype.name}, "
                                     f"got {np.dtype(dtype).name}")
        else:
            try:
                v = np.asarray(v, dtype=spec.dtype)
            except (TypeError, ValueError) as exc:
                raise InputSpecError(f"input {spec.name!r} cannot be read as "
                                     f"{spec.dtype.name}: {exc}") from None
        shape = tuple(v.shape)
        if spec.shape is not None:
            if len(shape) != len(spec.shape):
                raise InputSpecError(f"input {spec.name!r} must have rank {len(spec.shape)} "
                                     f"(shape {_fmt(spec.shape)}), got shape {list(shape)}")
            for want, got in zip(spec.shape, shape, strict=True):
                if want is not None and want != got:
                    raise InputSpecError(f"input {spec.name!r} must have shape "
                                         f"{_fmt(spec.shape)}, got {list(shape)}")
        out.append(v)
    return out


def _fmt(shape) -> str:
    return str([d if d is not None else None for d in shape])


class InputPlan:
    """The signature's inputs, with the checks of ``check_inputs`` prepared once: a call
    that gives every input as a numpy array of the right dtype and shape (positionally
    or by name) is checked in a few comparisons; any other call takes ``check_inputs``."""

    def __init__(self, specs: Sequence[SignatureTensor]) -> None:
        self.specs = tuple(specs)
        self.names = tuple(s.name for s in self.specs)
        self._checks = tuple(
            (np.dtype(s.dtype), None if s.shape is None else len(s.shape),
             () if s.shape is None else tuple((k, d) for k, d in enumerate(s.shape)
                                              if d is not None))
            for s in self.specs)

    def quick(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[np.ndarray] | None:
        """The inputs in signature order when they pass the prepared checks, else None."""
        if kwargs:
            if args or len(kwargs) != len(self.names):
                return None
            try:
                args = [kwargs[n] for n in self.names]
            except KeyError:
                return None
        elif len(args) != len(self._checks):
            return None
        for v, (dtype, rank, fixed) in zip(args, self._checks, strict=True):
            if type(v) is not np.ndarray or v.dtype != dtype:
                return None
            if rank is not None:
                shape = v.shape
                if len(shape) != rank:
                    return None
                for k, d in fixed:
                    if shape[k] != d:
                        return None
        return list(args)

    def arrays(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        """Every input checked (``check_inputs``), in signature order."""
        values = self.quick(args, kwargs)
        return values if values is not None else check_inputs(self.specs, args, kwargs)


def _owned(out: Any, inputs: Sequence[Any]) -> np.ndarray:
    """``out`` as an array no one else holds (an engine's fresh output is; one that views
    memory, or is an input handed back, is copied), so a tensor may adopt it."""
    if type(out) is np.ndarray and out.base is None and all(out is not x for x in inputs):
        return out
    return np.array(out)


def _resolve_identity(graph_def: graph_pb2.GraphDef, ref: str) -> str:
    """Follow Identity nodes back from tensor ``ref``."""
    nodes = {n.name: n for n in graph_def.node}
    while True:
        name, slot, _ = parse_input(ref)
        node = nodes.get(name)
        if node is None or node.op != "Identity":
            return tensor_ref(name, slot)
        data = [i for i in node.input if not i.startswith("^")]
        ref = tensor_ref(*parse_input(data[0])[:2])


class ConvertedFunction:
    """Calls the converted model: ``fn(x)`` or ``fn(name=x)`` -> {output name: tf.Tensor}.

    A model converted into one engine that covers it entirely runs the engine
    directly; otherwise TensorFlow runs the graph, each engine node calling
    its engine.
    """

    def __init__(self, graph_def: graph_pb2.GraphDef, inputs: Sequence[SignatureTensor],
                 outputs: Sequence[SignatureTensor], engines: Mapping[str, EngineOp],
                 captures: Mapping[str, Any] | None = None) -> None:
        self.graph_def = graph_def
        # resource Placeholder name -> the variable it reads (unfrozen graphs)
        self.captures = dict(captures or {})
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self.engines = dict(engines)
        self._plan = InputPlan(self.inputs)
        self._fast = self._whole_model_plan()
        self._tf_fn = None
        self._binding: tfgraph.PyFuncBinding | None = None
        self._tf_fn_lock = threading.Lock()

    # -- introspection --------------------------------------------------------
    @property
    def runs_without_tensorflow(self) -> bool:
        """True when one engine is the whole model and TF is not in the per-call path."""
        return self._fast is not None

    def _whole_model_plan(self):
        engines = [n for n in self.graph_def.node if n.op == ENGINE_OP]
        if len(engines) != 1 or engines[0].name not in self.engines:
            return None
        engine = engines[0]
        allowed = {ENGINE_OP, "Placeholder", "Identity", "NoOp"}
        if any(n.op not in allowed for n in self.graph_def.node):
            return None
        sig_in = {s.ref: k for k, s in enumerate(self.inputs)}
        in_order = []
        for ref in engine.input:
            if ref.startswith("^"):
                return None
            r = _resolve_identity(self.graph_def, ref)
            if r not in sig_in:
                return None
            in_order.append(sig_in[r])
        out_ports = []
        for spec in self.outputs:
            name, slot, _ = parse_input(_resolve_identity(self.graph_def, spec.ref))
            if name != engine.name:
                return None
            out_ports.append(slot)
        identity = in_order == list(range(len(self.inputs)))
        return (self.engines[engine.name], None if identity else tuple(in_order),
                tuple((spec.name, p) for spec, p in zip(self.outputs, out_ports, strict=True)))

    # -- calling --------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, tf.Tensor]:
        fast = self._fast
        if fast is not None:
            op, in_order, out_ports = fast
            values = self._plan.quick(args, kwargs)
            if values is None:
                values = [np.asarray(v) for v in check_inputs(self.inputs, args, kwargs)]
            arrays = values if in_order is None else [values[k] for k in in_order]
            outs = op(arrays)
            adopt = tfgraph.adopt
            return {name: adopt(_owned(outs[p], arrays)) for name, p in out_ports}
        values = self._plan.arrays(args, kwargs)
        if self._tf_fn is None:
            with self._tf_fn_lock:  # one function (and py-func binding) for all threads
                if self._tf_fn is None:
                    self._tf_fn = self._build_tf_function()
        try:
            results = self._tf_fn(*[v if isinstance(v, tf.Tensor) else
                                    tfgraph.adopt(np.array(v)) for v in values])
        except tf.errors.OpError:
            error, self._binding.error = self._binding.error, None
            if error is not None:
                raise error from None
            raise
        return {spec.name: t for spec, t in zip(self.outputs, results, strict=True)}

    def _build_tf_function(self):
        binding = tfgraph.PyFuncBinding()

        def bind(node):
            op = self.engines.get(node.name)
            if op is None:  # no runtime: the node runs its native segment
                return tfgraph.engine_as_native_call(node)
            return tfgraph.engine_as_pyfunc(node, binding.token(op))

        gd = tfgraph.rewrite_engines(self.graph_def, bind)
        self._binding = binding  # keeps the callbacks alive as long as this function
        return tfgraph.graph_function(gd, [s.ref for s in self.inputs],
                                      [s.ref for s in self.outputs], self.captures)
