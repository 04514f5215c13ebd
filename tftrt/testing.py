"""A harness for converter authors: prove a converter against TensorFlow.

``check_function(fn, inputs)`` traces ``fn``, freezes it, lowers every node
through the registry (built-ins plus installed plugins) into one ONNX model,
runs it on ONNX Runtime and compares with TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from tftrt.compiler import ir as irmod
from tftrt.compiler.lowering import lower_segment, plan_segment
from tftrt.plugins.manager import Registry, get_registry


def trace(fn: Callable[..., object], specs: Sequence[tf.TensorSpec]) -> tuple[irmod.IR, list[str],
                                                                             list[str]]:
    """Trace and freeze ``fn``; returns the IR and its input and output tensor refs."""
    concrete = tf.function(fn).get_concrete_function(*specs)
    frozen = convert_variables_to_constants_v2(concrete)
    g = irmod.from_graph_def(frozen.graph.as_graph_def())
    ins = [irmod.tensor_ref(*irmod.parse_input(t.name)[:2]) for t in frozen.inputs]
    outs = [irmod.tensor_ref(*irmod.parse_input(t.name)[:2]) for t in frozen.outputs]
    return g, ins, outs


def lower_function(fn: Callable[..., object], specs: Sequence[tf.TensorSpec],
                   registry: Registry | None = None) -> onnx.ModelProto:
    """``fn`` lowered into one ONNX model (every node but its Placeholders)."""
    registry = registry or get_registry()
    g, ins, outs = trace(fn, specs)
    members = [n for n in g.nodes if g.nodes[n]["op"] not in ("Placeholder", "NoOp")]
    lowered = lower_segment(g, plan_segment(g, members), registry, "under_test", outputs=outs)
    if [s.ref for s in lowered.inputs] != ins:
        raise AssertionError(f"segment inputs {lowered.inputs} differ from function inputs {ins}")
    return lowered.model


def run_onnx(model: onnx.ModelProto, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, inputs, strict=True)))


def check_function(fn: Callable[..., object], inputs: Sequence[np.ndarray], *,
                   specs: Sequence[tf.TensorSpec] | None = None, rtol: float = 1e-5,
                   atol: float = 1e-5, registry: Registry | None = None) -> onnx.ModelProto:
    """Assert that ``fn`` lowered to ONNX gives TensorFlow's results on ``inputs``.

    ``specs`` default to the inputs' exact shapes and dtypes; pass specs with
    None dims to check dynamic shapes. Returns the ONNX model.
    """
    specs = specs or [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)) for x in inputs]
    model = lower_function(fn, specs, registry)
    onnx.checker.check_model(model)
    expected = fn(*[tf.constant(x) for x in inputs])
    expected = [expected] if not isinstance(expected, (list, tuple)) else list(expected)
    got = run_onnx(model, inputs)
    assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        e = np.asarray(e)
        assert g.shape == e.shape, f"output {k}: shape {g.shape}, TensorFlow gives {e.shape}"
        assert g.dtype == e.dtype, f"output {k}: dtype {g.dtype}, TensorFlow gives {e.dtype}"
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"output {k}")
    return model
