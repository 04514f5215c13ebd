"""``ConvertedFunction``: the callable a conversion returns, running a converted GraphDef."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tftrt.runtime import stages, tfgraph
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.signature import InputPlan, check_inputs, whole_model_plan
from tftrt.specs import SignatureTensor

__all__ = ["ConvertedFunction"]


def _owned(out: Any, inputs: Sequence[Any]) -> np.ndarray:
    """``out`` as an array no one else holds (an engine's fresh output is; one that views
    memory, or is an input handed back, is copied), so a tensor may adopt it."""
    if type(out) is np.ndarray and out.base is None and all(out is not x for x in inputs):
        return out
    return np.array(out)


def _tensor_plan(specs: Sequence[SignatureTensor]) -> InputPlan | None:
    """Quick checks of eager tensors given as the inputs (None: none can be made)."""
    if tfgraph.EAGER_TENSOR is None:
        return None
    try:
        dtypes = [tf.as_dtype(s.dtype) for s in specs]
    except TypeError:
        return None
    return InputPlan(specs, tfgraph.EAGER_TENSOR, dtypes)


class ConvertedFunction:
    """Calls the converted model: ``fn(x)`` or ``fn(name=x)`` -> {output name: tf.Tensor}.

    A model converted into one engine that covers it entirely runs the engine
    directly. Otherwise, called eagerly, the graph runs as native stages with the
    engines called between them (``runtime/stages.py``); inside a ``tf.function``,
    or where stages cannot cut the graph, TensorFlow runs the whole graph, each
    engine node a py-func calling its engine.
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
        self.plan = whole_model_plan(graph_def, self.inputs, self.outputs, list(self.engines))
        self._checks = InputPlan(self.inputs)
        self._tensor_checks = _tensor_plan(self.inputs)
        self._fast = None if self.plan is None else (
            self.engines[self.plan.engine],
            None if self.plan.inputs == tuple(range(len(self.inputs))) else self.plan.inputs,
            tuple((s.name, p) for s, p in zip(self.outputs, self.plan.outputs, strict=True)))
        self._tf_fn = None
        self._staged: stages.StagedGraph | None | bool = False  # False: not planned yet
        self._binding: tfgraph.PyFuncBinding | None = None
        self._tf_fn_lock = threading.Lock()

    # -- introspection --------------------------------------------------------
    @property
    def runs_without_tensorflow(self) -> bool:
        """True when one engine is the whole model and TF is not in the per-call path."""
        return self.plan is not None

    # -- calling --------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, tf.Tensor]:
        fast = self._fast
        if fast is not None:
            op, in_order, out_ports = fast
            values = self._checks.quick(args, kwargs)
            if values is None:
                # eager tensors pass the prepared checks too, and are read without a copy
                tensors = None if self._tensor_checks is None else \
                    self._tensor_checks.quick(args, kwargs)
                values = [np.asarray(v) for v in (tensors if tensors is not None else
                                                  check_inputs(self.inputs, args, kwargs))]
            arrays = values if in_order is None else [values[k] for k in in_order]
            outs = op(arrays)
            adopt = tfgraph.adopt
            return {name: adopt(_owned(outs[p], arrays)) for name, p in out_ports}
        # eager tensors of the signature's dtypes and shapes pass in a few comparisons
        tensors = None if self._tensor_checks is None else \
            self._tensor_checks.quick(args, kwargs)
        if tensors is None:
            tensors = [v if isinstance(v, tf.Tensor) else tfgraph.adopt(np.array(v))
                       for v in self._checks.arrays(args, kwargs)]
        if self._staged is False:
            with self._tf_fn_lock:
                if self._staged is False:
                    self._staged = stages.plan(self.graph_def, self.inputs, self.outputs,
                                               self.engines, self.captures)
        if self._staged is not None and tf.executing_eagerly():
            # engines called from here, between native stages: no py-func round trips
            results = self._staged(tensors)
            return {spec.name: t for spec, t in zip(self.outputs, results, strict=True)}
        if self._tf_fn is None:
            with self._tf_fn_lock:  # one function (and py-func binding) for all threads
                if self._tf_fn is None:
                    self._tf_fn = self._build_tf_function()
        try:
            results = self._tf_fn(*tensors)
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
