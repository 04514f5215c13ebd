"""The measured cost model: each candidate segment built and timed on the sample inputs.

The graph runs once in TensorFlow on the first sample feed to get every
candidate's input and output tensors. Then, per candidate: its native time is
the median time of its nodes as a graph function run the way the runtime runs
converted graphs, less the cost of calling one that only passes tensors
through; its engine time is the median of ``Engine.run`` on an engine the
backend builds for those inputs' shapes; its boundary time is one engine call
from the graph (an EagerPyFunc node, as the runtime binds engines, measured
once per process) plus the bytes it moves. Each pair is timed in alternating
blocks so other load on the machine hits both alike. A candidate that fails to
lower or build costs infinity.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tftrt.compiler import codegen, layers, precision
from tftrt.compiler import ir as irmod
from tftrt.compiler.costs import Constants
from tftrt.compiler.lowering import LoweringError, lower_segment, plan_segment, tensor_spec
from tftrt.plugins.partitioning import PartitionRequest, SegmentCost
from tftrt.plugins.types import BuildConfig
from tftrt.runtime.tfgraph import PyFuncBinding, graph_function
from tftrt.specs import input_name, output_name

log = logging.getLogger("tftrt")

BUDGET_MS = 40.0  # timing budget per measured callable
MAX_CALLS = 60


def median_ms(fn: Callable[[], object], budget_ms: float = BUDGET_MS) -> float:
    """Median milliseconds of ``fn()`` over as many calls as fit ``budget_ms`` (3 to 60)."""
    return excess_ms(fn, None, budget_ms)


def excess_ms(fn: Callable[[], object], base: Callable[[], object] | None,
              budget_ms: float = BUDGET_MS, block: int = 3) -> float:
    """Median ms of ``fn()`` less the median of ``base()``, timed in alternating blocks
    so that the machine's drift (other load) hits both alike."""
    fns = [fn] if base is None else [fn, base]
    for f in fns:
        f()
        f()
    times: list[list[float]] = [[] for _ in fns]
    spent = 0.0
    while len(times[0]) < 3 or (spent < budget_ms * len(fns) and len(times[0]) < MAX_CALLS):
        for k, f in enumerate(fns):
            for _ in range(block):
                t0 = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t0) * 1e3)
                spent += times[k][-1]
    medians = [statistics.median(t) for t in times]
    return medians[0] - (medians[1] if base is not None else 0.0)


def _chain_graph(chain: int, pyfunc_token: str | None) -> graph_pb2.GraphDef:
    """x -> ``chain`` x (Relu, then an EagerPyFunc calling ``pyfunc_token`` or an Identity)
    -> y: TensorFlow ops between engine calls, as in a partly converted graph."""
    gd = graph_pb2.GraphDef()
    f32 = tf.float32.as_datatype_enum
    gd.node.add(name="x", op="Placeholder").attr["dtype"].type = f32
    prev = "x"
    for k in range(chain):
        relu = gd.node.add(name=f"relu{k}", op="Relu", input=[prev])
        relu.attr["T"].type = f32
        node = gd.node.add(name=f"call{k}", input=[relu.name])
        if pyfunc_token is None:
            node.op = "Identity"
            node.attr["T"].type = f32
        else:
            node.op = "EagerPyFunc"
            node.attr["token"].s = pyfunc_token.encode()
            node.attr["Tin"].list.type.append(f32)
            node.attr["Tout"].list.type.append(f32)
            node.attr["is_async"].b = False
        prev = node.name
    gd.node.add(name="y", op="Identity", input=[prev]).attr["T"].type = f32
    return gd


def _identity_onnx() -> bytes:
    import onnx
    from onnx import helper

    vi = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 16]) for n in "xy"]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "call", vi[:1], vi[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    return model.SerializeToString()


@functools.cache
def _engine_call_ms(backend, chain: int = 10) -> float:
    binding = PyFuncBinding()
    engine = backend.build(_identity_onnx(), BuildConfig(input_shapes=((1, 16),)))
    token = binding.token(lambda xs: engine.run([np.asarray(xs[0])]), [tf.float32])
    with_engines = graph_function(_chain_graph(chain, token), ["x:0"], ["y:0"])
    plain = graph_function(_chain_graph(chain, None), ["x:0"], ["y:0"])
    x = tf.constant(np.zeros((1, 16), np.float32))
    in_graph = excess_ms(lambda: with_engines(x), lambda: plain(x)) / chain
    alone = median_ms(lambda: engine.run([np.zeros((1, 16), np.float32)]))
    return max(in_graph - alone, 0.0)


def engine_call_ms(backend) -> float:
    """What one call of a (trivial) engine of ``backend`` costs a converted graph, beyond
    the engine's own work: the EagerPyFunc round trip the runtime binds engines with, and
    waking the backend's threads between TensorFlow ops. Measured once per backend."""
    return _engine_call_ms(backend)


def _passthrough(n_inputs: int, n_outputs: int):
    """A graph function (as the runtime runs graphs) passing its inputs through."""
    graph = tf.Graph()
    with graph.as_default():
        ins = [tf.compat.v1.placeholder(tf.float32, [1], name=input_name(k))
               for k in range(n_inputs)]
        for k in range(n_outputs):
            tf.identity(ins[k % n_inputs], name=output_name(k))
    return graph_function(graph.as_graph_def(), [input_name(k) + ":0" for k in range(n_inputs)],
                          [output_name(k) + ":0" for k in range(n_outputs)])


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
    """The segment's time inside a graph run as the runtime runs converted graphs."""
    g = request.graph
    ins = [tensor_spec(g, r) for r in plan.inputs]
    outs = [tensor_spec(g, r) for r in plan.outputs]
    gd = codegen.segment_graph_def(g, plan, ins, outs)
    fn = graph_function(gd, [input_name(k) + ":0" for k in range(len(ins))],
                        [output_name(k) + ":0" for k in range(len(outs))])
    base = _passthrough(max(len(ins), 1), max(len(outs), 1))
    args = [tf.convert_to_tensor(values[r]) for r in plan.inputs]
    small = [tf.constant(np.zeros((1,), np.float32)) for _ in range(max(len(ins), 1))]
    return max(excess_ms(lambda: fn(*args), lambda: base(*small)), 0.0)


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
    call = engine_call_ms(request.backend)
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
