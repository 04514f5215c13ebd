"""The measured cost model: each candidate segment built and timed on the sample inputs.

The graph runs once in TensorFlow on the first sample feed to get every
candidate's input and output tensors. Per candidate, then: its native time is
the median time of its nodes as a graph function run the way the runtime runs
converted graphs, less that of one passing its tensors through; its engine
time is the median of an ``EngineOp`` call (the runtime's object, engine built
by the backend for those shapes). Its boundary time is measured in place: the
whole graph with the candidate as its one engine, run as the runtime runs an eager
call (native stages with the engine between them, else a PyFunc), against the
whole graph without it; the boundary is
what that difference leaves once the engine's and the native time are counted
(the PyFunc call, the copies, waking the backend's threads between TensorFlow's ops),
so that a candidate's gain is exactly what the graph saved. Without the
signature's tensors the boundary is one engine call measured on a chain of
trivial engines plus the bytes moved. Each pair is timed in alternating blocks
so that other load on the machine hits both alike. A candidate that fails to
lower or build costs infinity. ``compare`` times whole partitions the same way,
side by side, reusing the engines built for costing.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import statistics
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tftrt.compiler import codegen, layers, precision
from tftrt.compiler import ir as irmod
from tftrt.compiler.costs import Constants
from tftrt.compiler.lowering import LoweringError, lower_segment, plan_segment, tensor_spec
from tftrt.plugins.partitioning import PartitionRequest, SegmentCost
from tftrt.plugins.types import BuildConfig
from tftrt.runtime import stages
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.tfgraph import (
    PyFuncBinding,
    engine_as_pyfunc,
    graph_function,
    pyfunc_node,
    rewrite_engines,
)
from tftrt.specs import SignatureTensor, input_name, output_name

log = logging.getLogger("tftrt.segment")

BUDGET_MS = 40.0  # timing budget per measured callable
IN_PLACE_BUDGET_MS = 400.0  # for the whole graph, with and without the candidate
MAX_CALLS = 60
COMPARE_BUDGET_MS = 800.0  # for each whole partition the partitioner checks
COMPARE_MAX_CALLS = 120
_CANDIDATES = itertools.count()
# id(request) -> candidate -> (plan, lowering, EngineOp): built once for costing and for
# comparing partitions, and dropped with the request (its engines are not the conversion's)
_BUILT: dict[int, dict[frozenset[str], tuple[Any, Any, EngineOp]]] = {}


def median_ms(fn: Callable[[], object], budget_ms: float = BUDGET_MS) -> float:
    """Median milliseconds of ``fn()`` over as many calls as fit ``budget_ms`` (3 to 60)."""
    return medians_ms([fn], budget_ms)[0]


def excess_ms(fn: Callable[[], object], base: Callable[[], object],
              budget_ms: float = BUDGET_MS) -> float:
    """Median ms of ``fn()`` less the median of ``base()``, timed as ``medians_ms`` times."""
    with_fn, without = medians_ms([fn, base], budget_ms)
    return with_fn - without


def medians_ms(fns: Sequence[Callable[[], object]], budget_ms: float = BUDGET_MS,
               block: int = 3, max_calls: int = MAX_CALLS) -> list[float]:
    """Median ms of each of ``fns``, timed in alternating blocks so that the machine's
    drift (other load) hits all alike, within about ``budget_ms`` each."""
    for f in fns:
        f()
        f()
    times: list[list[float]] = [[] for _ in fns]
    spent = 0.0
    while len(times[0]) < 3 or (spent < budget_ms * len(fns) and len(times[0]) < max_calls):
        for k, f in enumerate(fns):
            for _ in range(block):
                t0 = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t0) * 1e3)
                spent += times[k][-1]
    return [statistics.median(t) for t in times]


def _chain_graph(chain: int, pyfunc_token: str | None) -> graph_pb2.GraphDef:
    """x -> ``chain`` x (Relu, then a PyFunc calling ``pyfunc_token`` or an Identity)
    -> y: TensorFlow ops between engine calls, as in a partly converted graph."""
    gd = graph_pb2.GraphDef()
    f32 = tf.float32.as_datatype_enum
    gd.node.add(name="x", op="Placeholder").attr["dtype"].type = f32
    prev = "x"
    for k in range(chain):
        relu = gd.node.add(name=f"relu{k}", op="Relu", input=[prev])
        relu.attr["T"].type = f32
        if pyfunc_token is None:
            node = gd.node.add(name=f"call{k}", op="Identity", input=[relu.name])
            node.attr["T"].type = f32
        else:
            gd.node.append(pyfunc_node(f"call{k}", [relu.name], pyfunc_token, [f32], [f32]))
        prev = f"call{k}"
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
    the engine's own work: the PyFunc round trip the runtime binds engines with, and
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


def _engine_op(request: PartitionRequest, plan) -> tuple[EngineOp, object]:
    """An EngineOp for the candidate, as the pipeline would make it, and its lowering."""
    name = f"TRTEngineOp_cost_{next(_CANDIDATES)}"  # functions are process-wide in TF
    lowered = lower_segment(request.graph, plan, request.registry, name,
                            dynamic_shape=request.dynamic_shape)
    model = layers.resolve(lowered.model, request.registry, request.backend.name,
                           request.precision_mode)
    model_bytes = precision.onnx_for_backend(model.SerializeToString(), request.backend.name,
                                             request.precision_mode)
    op = EngineOp(name=name, onnx_model=model_bytes, backend=request.backend,
                  inputs=lowered.inputs, outputs=lowered.outputs, native=None,
                  precision_mode=request.precision_mode, dynamic_shape=request.dynamic_shape,
                  profile_strategy="Range", max_cached_engines=1, allow_build_at_runtime=True,
                  max_workspace_size_bytes=1 << 30)
    return op, lowered


def _in_place(request: PartitionRequest, built: Sequence[tuple[Any, Any, EngineOp]],
              binding: PyFuncBinding):
    """The whole graph with the ``built`` candidates ((plan, lowering, EngineOp) each) as its
    engines, run as the runtime runs an eager call: native stages with the engines called
    between them, or, where stages cannot cut the graph, one graph with the engines bound
    as PyFuncs."""
    nodes = [codegen.EngineNode(op.name, plan, lowered.inputs, lowered.outputs, {})
             for plan, lowered, op in built]
    gd = codegen.splice(request.graph, nodes)
    g = request.graph
    specs = [[SignatureTensor(t.ref, t.ref, np.dtype(t.dtype), t.shape)
              for t in map(functools.partial(tensor_spec, g), refs)]
             for refs in (request.inputs, request.outputs)]
    ops = {op.name: op for _, _, op in built}
    staged = stages.plan(gd, *specs, ops, request.variables)
    if staged is not None:
        return lambda *feeds: staged(list(feeds))
    tokens = {name: binding.token(op, [tf.as_dtype(s.dtype) for s in op.outputs])
              for name, op in ops.items()}
    gd = rewrite_engines(gd, lambda n: engine_as_pyfunc(n, tokens[n.name]))
    return graph_function(gd, list(request.inputs), list(request.outputs), request.variables)


def _can_time_in_place(request: PartitionRequest) -> bool:
    return bool(request.inputs and request.outputs and request.sample_inputs) and \
        set(request.inputs) <= set(request.sample_inputs[0])


def _feeds(request: PartitionRequest) -> list[tf.Tensor]:
    return [tf.convert_to_tensor(request.sample_inputs[0][r]) for r in request.inputs]


def _native_graph(request: PartitionRequest):
    return graph_function(irmod.to_graph_def(request.graph), list(request.inputs),
                          list(request.outputs), request.variables)


def _built(request: PartitionRequest, segment: frozenset[str]):
    """(plan, lowering, EngineOp) of a candidate, built once per request."""
    cache = _BUILT.get(id(request))
    if cache is None:
        cache = _BUILT[id(request)] = {}
        weakref.finalize(request, _BUILT.pop, id(request), None)
    if segment not in cache:
        plan = plan_segment(request.graph, segment)
        op, lowered = _engine_op(request, plan)
        cache[segment] = (plan, lowered, op)
    return cache[segment]


def compare(request: PartitionRequest, partitions: Sequence[Sequence[frozenset[str]]]
            ) -> list[float] | None:
    """Median ms per call of the whole graph with each partition's segments as its
    engines (an empty partition: the graph as it is), timed side by side on the first
    sample feed; None where the signature's tensors are not all fed."""
    if not _can_time_in_place(request):
        return None
    binding = PyFuncBinding()
    feeds = _feeds(request)
    native = _native_graph(request)
    runs: list[Callable[[], object] | None] = []
    for partition in partitions:
        if not partition:
            runs.append(lambda: native(*feeds))
            continue
        try:
            whole = _in_place(request, [_built(request, frozenset(s)) for s in partition],
                              binding)
            whole(*feeds)
        except (LoweringError, RuntimeError, ValueError, tf.errors.OpError) as exc:
            log.info("cost model: a partition of %d segments does not run (%s)",
                     len(partition), exc)
            runs.append(None)  # costs infinity, as a candidate that does not build
            continue
        runs.append(lambda f=whole: f(*feeds))
    ready = [r for r in runs if r is not None]
    timed = medians_ms(ready, COMPARE_BUDGET_MS, max_calls=COMPARE_MAX_CALLS) if ready else []
    it = iter(timed)
    return [math.inf if r is None else next(it) for r in runs]


def estimate(request: PartitionRequest, segments: Sequence[frozenset[str]],
             c: Constants) -> list[SegmentCost]:
    """Measured costs of ``segments`` (see the module docstring)."""
    g = request.graph
    plans = [plan_segment(g, s) for s in segments]
    values = boundary_values(request, [r for p in plans for r in p.inputs + p.outputs])
    in_place = _can_time_in_place(request)
    if in_place:
        feeds = _feeds(request)
        native_graph = _native_graph(request)
    binding = PyFuncBinding()
    costs = []
    for seg, plan in zip(segments, plans, strict=True):
        native = _native_ms(request, plan, values)
        arrays = [values[r] for r in plan.inputs]
        try:
            _, lowered, op = _built(request, frozenset(seg))
            engine = median_ms(lambda op=op, arrays=arrays: op(arrays))
        except (LoweringError, RuntimeError, ValueError) as exc:
            log.info("cost model: a candidate of %d nodes does not build (%s)", len(seg), exc)
            costs.append(SegmentCost(native, float("inf"), 0.0))
            continue
        if in_place:
            with_engine = _in_place(request, [(plan, lowered, op)], binding)
            delta = excess_ms(lambda f=with_engine: f(*feeds), lambda: native_graph(*feeds),
                              budget_ms=IN_PLACE_BUDGET_MS)
            boundary = delta - engine + native  # so that the gain is what the graph saves
        else:
            moved = sum(values[r].nbytes for r in plan.inputs + plan.outputs)
            boundary = engine_call_ms(request.backend) + moved / c.copy_bytes_per_ms
        costs.append(SegmentCost(native, engine, boundary))
    return costs
