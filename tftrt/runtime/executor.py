"""``ConvertedFunction``: the callable a conversion returns, running a converted GraphDef."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tftrt.runtime import tfgraph
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.signature import check_inputs, whole_model_plan
from tftrt.specs import SignatureTensor

__all__ = ["ConvertedFunction"]


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
        self.plan = whole_model_plan(graph_def, self.inputs, self.outputs, list(self.engines))
        self._tf_fn = None
        self._binding: tfgraph.PyFuncBinding | None = None
        self._tf_fn_lock = threading.Lock()

    # -- introspection --------------------------------------------------------
    @property
    def runs_without_tensorflow(self) -> bool:
        """True when one engine is the whole model and TF is not in the per-call path."""
        return self.plan is not None

    # -- calling --------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, tf.Tensor]:
        values = check_inputs(self.inputs, args, kwargs)
        if self.plan is not None:
            arrays = [np.asarray(v) for v in self.plan.engine_inputs(values)]
            outs = self.engines[self.plan.engine](arrays)
            return {k: tf.convert_to_tensor(v)
                    for k, v in self.plan.signature_outputs(self.outputs, outs).items()}
        if self._tf_fn is None:
            with self._tf_fn_lock:  # one function (and py-func binding) for all threads
                if self._tf_fn is None:
                    self._tf_fn = self._build_tf_function()
        try:
            results = self._tf_fn(*[tf.convert_to_tensor(v) for v in values])
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
            out_dtypes = [tf.as_dtype(s.dtype) for s in op.outputs]
            return tfgraph.engine_as_pyfunc(node, binding.token(op, out_dtypes))

        gd = tfgraph.rewrite_engines(self.graph_def, bind)
        self._binding = binding  # keeps the callbacks alive as long as this function
        return tfgraph.graph_function(gd, [s.ref for s in self.inputs],
                                      [s.ref for s in self.outputs], self.captures)
