"""The measured cost model: each candidate segment built and timed on the sample inputs.

The graph runs once in TensorFlow on the first sample feed to get every
candidate's input tensors. Then, per candidate: its native time is the median
time of its nodes as a TensorFlow graph function, less the cost of calling an
empty one; its engine time is the median of ``Engine.run`` on an engine the
backend builds for those inputs' shapes; its boundary time is one engine call
from the graph (a py-function round trip, measured once per process) plus the
bytes it moves. A candidate that fails to lower or build costs infinity.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tftrt.compiler import codegen, layers, precision
from tftrt.compiler import ir as irmod
from tftrt.compiler.costs import Constants
from tftrt.compiler.lowering import LoweringError, lower_segment, plan_segment, tensor_spec
from tftrt.plugins.partitioning import PartitionRequest, SegmentCost
from tftrt.plugins.types import BuildConfig
from tftrt.runtime.tfgraph import graph_function
from tftrt.specs import input_name, output_name

log = logging.getLogger("tftrt")

BUDGET_MS = 40.0  # timing budget per measured callable
MAX_CALLS = 60


def median_ms(fn: Callable[[], object], budget_ms: float = BUDGET_MS) -> float:
    """Median milliseconds of ``fn()`` over as many calls as fit ``budget_ms`` (3 to 60)."""
    fn()
    fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < 3 or (spent < budget_ms and len(times) < MAX_CALLS):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        spent += times[-1]
    return statistics.median(times)


@functools.cache
def engine_call_ms() -> float:
    """What one engine call costs the graph: a py-function round trip, less an Identity."""
    x = tf.constant(np.zeros((1, 16), np.float32))
    plain = tf.function(tf.identity).get_concrete_function(x)
    pyfunc = tf.function(lambda t: tf.numpy_function(np.copy, [t], tf.float32)
                         ).get_concrete_function(x)
    return max(median_ms(lambda: pyfunc(x)) - median_ms(lambda: plain(x)), 0.0)


@functools.cache
def _empty_call_ms(n_inputs: int, n_outputs: int) -> float:
    """The cost of calling a graph function that only passes tensors through."""
    args = [tf.constant(np.zeros((1,), np.float32)) for _ in range(n_inputs)]

    def passthrough(*xs):
        return [tf.identity(xs[k % n_inputs]) for k in range(n_outputs)]

    fn = tf.function(passthrough).get_concrete_function(*args)
    return median_ms(lambda: fn(*args))


def boundary_values(request: PartitionRequest, refs: Sequence[str]) -> dict[str, np.ndarray]:
    """The values of graph tensors ``refs`` on the first sample feed."""
    feed: Mapping[str, np.ndarray] = request.sample_inputs[0]
    wanted = [r for r in dict.fromkeys(refs) if r not in feed]
    values = {r: np.asarray(v) for r, v in feed.items()}
    if wanted:
        gd = irmod.to_graph_def(request.graph)
        fn = graph_function(gd, list(feed), wanted, captures=request.variables)
        out = fn(*[tf.convert_to_tensor(v) for v in feed.values()])
        values.update({r: np.asarray(t) for r, t in zip(wanted, out, strict=True)})
    return values


def _native_ms(request: PartitionRequest, plan, values: Mapping[str, np.ndarray]) -> float:
    g = request.graph
    ins = [tensor_spec(g, r) for r in plan.inputs]
    outs = [tensor_spec(g, r) for r in plan.outputs]
    gd = codegen.segment_graph_def(g, plan, ins, outs)
    fn = graph_function(gd, [input_name(k) + ":0" for k in range(len(ins))],
                        [output_name(k) + ":0" for k in range(len(outs))])
    args = [tf.convert_to_tensor(values[r]) for r in plan.inputs]
    spent = median_ms(lambda: fn(*args))
    return max(spent - _empty_call_ms(max(len(ins), 1), max(len(outs), 1)), 0.0)


def _engine_ms(request: PartitionRequest, plan, values: Mapping[str, np.ndarray]) -> float:
    g = request.graph
    lowered = lower_segment(g, plan, request.registry, "cost_candidate",
                            dynamic_shape=request.dynamic_shape)
    model = layers.resolve(lowered.model, request.registry, request.backend.name,
                           request.precision_mode)
    model_bytes = precision.onnx_for_backend(model.SerializeToString(), request.backend.name,
                                             request.precision_mode)
    arrays = [values[r] for r in plan.inputs]
    config = BuildConfig(precision_mode=request.precision_mode,
                         input_shapes=tuple(tuple(a.shape) for a in arrays))
    engine = request.backend.build(model_bytes, config)
    return median_ms(lambda: engine.run(arrays))


def estimate(request: PartitionRequest, segments: Sequence[frozenset[str]],
             c: Constants) -> list[SegmentCost]:
    """Measured costs of ``segments`` (see the module docstring)."""
    g = request.graph
    plans = [plan_segment(g, s) for s in segments]
    values = boundary_values(request, [r for p in plans for r in p.inputs + p.outputs])
    call = engine_call_ms()
    costs = []
    for seg, plan in zip(segments, plans, strict=True):
        native = _native_ms(request, plan, values)
        try:
            engine = _engine_ms(request, plan, values)
        except (LoweringError, RuntimeError, ValueError) as exc:
            log.info("cost model: a candidate of %d nodes does not build (%s)", len(seg), exc)
            engine = float("inf")
        moved = sum(values[r].nbytes for r in plan.inputs + plan.outputs)
        costs.append(SegmentCost(native, engine, call + moved / c.copy_bytes_per_ms))
    return costs
