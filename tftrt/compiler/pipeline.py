"""The conversion pipeline: frozen model -> IR -> passes -> lowering -> codegen.

Engines are not built here: each engine node gets an ``EngineOp`` that builds
its engine on ``build()`` or first use, as TF-TRT does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tensorflow.core.framework import graph_pb2

from tftrt.compiler import (
    capability,
    codegen,
    ir,
    layers,
    onnxbytes,
    partition,
    precision,
    prepare,
    segment,
)
from tftrt.compiler.collector import release_memory
from tftrt.compiler.freeze import FrozenModel
from tftrt.compiler.lowering import LoweringError, lower_segment, plan_segment
from tftrt.compiler.passes import run_passes
from tftrt.plugins.manager import Registry
from tftrt.plugins.partitioning import DEFAULT_PARTITIONER, PartitionRequest
from tftrt.plugins.passes import (
    AFTER_IMPORT,
    AFTER_SEGMENTATION,
    BEFORE_SEGMENTATION,
    PassContext,
    PassRecord,
)
from tftrt.plugins.types import EngineBackend
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.tfgraph import lazy_function_callable

log = logging.getLogger("tftrt.lowering")

# weights this large go into an engine's ONNX bytes straight from the TF graph's
# (``onnxbytes``), not through a ModelProto
DETACH_BYTES = 1 << 16


@dataclass(frozen=True)
class CompileOptions:
    precision_mode: str = "FP32"
    minimum_segment_size: int = 3
    maximum_cached_engines: int = 1
    max_workspace_size_bytes: int = 1 << 30
    use_dynamic_shape: bool = False
    allow_build_at_runtime: bool = True
    profile_strategy: str = "Range"
    max_engines: int | None = None  # None: TF_TRT_MAX_ALLOWED_ENGINES
    denylist: frozenset[str] | None = None  # None: TF_TRT_OP_DENYLIST
    partitioner: str = DEFAULT_PARTITIONER
    partitioner_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Conversion:
    """Everything a conversion produced."""

    frozen: FrozenModel
    graph_def: graph_pb2.GraphDef  # the converted GraphDef (TRTEngineOp nodes)
    engines: dict[str, EngineOp]
    onnx_models: dict[str, bytes]
    nonconversion: dict[str, dict[str, int]] = field(default_factory=dict)
    ir: ir.IR | None = None
    partitioner: str = DEFAULT_PARTITIONER
    partitioner_plugin: str = ""
    passes: list[PassRecord] = field(default_factory=list)  # in the order they ran


def engine_attrs(opts: CompileOptions) -> dict:
    a = codegen.attr_value
    attrs = {
        "precision_mode": a(opts.precision_mode),
        "max_cached_engines_count": a(opts.maximum_cached_engines),
        "workspace_size_bytes": a(int(opts.max_workspace_size_bytes)),
        "use_calibration": a(False),
        "calibration_data": a(""),
        "serialized_segment": a(""),
        "static_engine": a(False),
        "_use_implicit_batch": a(not opts.use_dynamic_shape),
        "_allow_build_at_runtime": a(opts.allow_build_at_runtime),
    }
    if opts.use_dynamic_shape:
        attrs["profile_strategy"] = a(opts.profile_strategy)
    return attrs


def compile_model(frozen: FrozenModel, opts: CompileOptions, registry: Registry,
                  backend: EngineBackend,
                  sample_inputs: Sequence[Mapping[str, np.ndarray]] = ()) -> Conversion:
    """Segment the frozen graph, lower each segment to ONNX and splice in engine nodes.

    ``sample_inputs`` (feeds keyed by graph tensor) are handed to the partitioner.
    Control flow lowered so that its body could convert, but left without an engine
    inside, is compiled again in its functional form, as the original model had it.
    """
    conversion = _compile(frozen, opts, registry, backend, sample_inputs, frozenset())
    lowered = conversion.ir.graph.get("lowered", ()) if conversion.ir is not None else ()
    idle = frozenset(n for n in lowered if not any(
        _inside(node, n) for e in conversion.engines.values() for node in _segment_nodes(
            conversion.graph_def, e.name)))
    if idle:
        log.info("%s kept functional: no engine inside once lowered", ", ".join(sorted(idle)))
        conversion = _compile(frozen, opts, registry, backend, sample_inputs, idle)
    # the variables' views have done their job (the IR's values): the conversion does not
    # keep the variables alive
    conversion.frozen = dataclasses.replace(frozen, weights={})
    return conversion


def _inside(node: str, control_flow: str) -> bool:
    """Whether ``node`` came from lowering the control-flow node ``control_flow``."""
    return node.startswith((f"{control_flow}/", f"Func/{control_flow}/"))


def _segment_nodes(graph_def: graph_pb2.GraphDef, engine: str) -> list[str]:
    """The original node names inside ``engine``'s native segment."""
    name = codegen.native_segment_name(engine)
    for f in graph_def.library.function:
        if f.signature.name == name:
            return [n.name for n in f.node_def]
    return []


def _compile(frozen: FrozenModel, opts: CompileOptions, registry: Registry,
             backend: EngineBackend, sample_inputs: Sequence[Mapping[str, np.ndarray]],
             keep_functional: frozenset[str]) -> Conversion:
    g = prepare.prepare(ir.from_graph_def(frozen.graph_def,
                                          variable_values=frozen.variable_values,
                                          const_values=frozen.weights),
                        frozen, registry, backend, opts.use_dynamic_shape, keep_functional)
    sig_in = tuple(t.ref for t in frozen.inputs)
    sig_out = tuple(t.ref for t in frozen.outputs)

    def at(point: str) -> PassContext:
        return PassContext(point, sig_in, sig_out, opts.partitioner_options)

    g, records = run_passes(g, at(AFTER_IMPORT), registry)
    excluded = {ir.parse_input(ref)[0] for ref in sig_in + sig_out}
    deny = capability.denylist_from_env() if opts.denylist is None else opts.denylist
    marked = capability.mark_supported(g, registry, excluded, deny, opts.use_dynamic_shape,
                                       backend)
    marked, done = run_passes(marked, at(BEFORE_SEGMENTATION), registry)
    records += done
    if done:
        _mark_unmarked(marked, registry, excluded, deny, opts.use_dynamic_shape)
    counts = capability.nonconversion_counts(marked)
    plugin = ""
    segments: list[segment.Segment] = []
    if opts.minimum_segment_size != -1:
        cap = segment.max_engines_from_env() if opts.max_engines is None else opts.max_engines
        request = PartitionRequest(
            graph=marked, minimum_segment_size=opts.minimum_segment_size, max_engines=cap,
            backend=backend, registry=registry, precision_mode=opts.precision_mode,
            dynamic_shape=opts.use_dynamic_shape, options=opts.partitioner_options,
            sample_inputs=tuple(sample_inputs), variables=frozen.variables or {},
            inputs=sig_in, outputs=sig_out)
        marked, result = partition.partition(request, opts.partitioner, registry,
                                             at(AFTER_SEGMENTATION))
        del request  # what a cost model built for it (candidate engines) goes with it
        records += result.passes
        segments = result.segments
        _count(counts, marked, result.capped, segment.cap_reason(cap))
        plugin = result.plugin
    seq = codegen.next_graph_sequence()
    nodes, onnx_models = [], {}
    for seg in segments:
        name = codegen.engine_name(seq, len(nodes))
        plan = plan_segment(marked, seg.nodes)
        try:
            lowered = lower_segment(marked, plan, registry, name,
                                    dynamic_shape=opts.use_dynamic_shape,
                                    detach_bytes=DETACH_BYTES)
            weights = lowered.weights
            model = lowered.model
            if layers.has_layers(model):  # decompositions may read any weight
                model, weights = onnxbytes.attach(model, weights), {}
            model = layers.resolve(model, registry, backend.name, opts.precision_mode)
        except LoweringError as exc:
            log.warning("segment %s stays native: %s", name, exc)
            _count(counts, marked, seg.nodes, f"Its segment could not be lowered: {exc}")
            continue
        # the weights the converters decoded are in the ONNX model now: held with the IR
        # they would be one more copy of every weight (they decode again if asked for)
        ir.forget_decoded(marked, plan.nodes)
        # the lowering's garbage goes back first: the bytes are new memory, not its
        # freed heap (ResNet50: 280 MB resident otherwise)
        release_memory(collect=False)
        onnx_models[name] = onnxbytes.serialize(model, weights)
        nodes.append(codegen.EngineNode(name, plan, lowered.inputs, lowered.outputs,
                                        engine_attrs(opts)))
        del lowered, model, weights  # each weight is held by the model's bytes from here on
    ir.forget_decoded(marked)
    graph_def = codegen.splice(marked, nodes)
    engines = make_engine_ops(graph_def, onnx_models, nodes, opts, backend)
    return Conversion(frozen, graph_def, engines, onnx_models, counts, marked,
                      partitioner=opts.partitioner, partitioner_plugin=plugin, passes=records)


def _mark_unmarked(g: ir.IR, registry: Registry, excluded: set[str], deny: frozenset[str],
                   dynamic_shape: bool) -> None:
    """Capability marks for the nodes a pass added, and a reason where a pass gave none;
    the signature's own nodes stay out of engines whatever a pass said."""
    for n, d in g.nodes(data=True):
        if n in excluded:
            d["supported"], d["reason"] = False, capability.EXCLUDED
        elif "supported" not in d:
            d["reason"] = capability.node_reason(g, n, registry, frozenset(excluded), deny,
                                                 dynamic_shape)
            d["supported"] = d["reason"] is None
        elif not d["supported"] and not d.get("reason"):
            d["reason"] = "Kept native by a graph pass"


def _count(counts: dict[str, dict[str, int]], g: ir.IR, nodes: frozenset[str],
           reason: str) -> None:
    """Add supported ``nodes`` that stay native for ``reason`` to the non-conversion counts."""
    by_op = Counter(g.nodes[n]["op"] for n in nodes if n in g and not ir.is_const_like(g, n))
    for op, k in by_op.items():
        counts.setdefault(op, {})
        counts[op][reason] = counts[op].get(reason, 0) + k


def make_engine_ops(graph_def: graph_pb2.GraphDef, onnx_models: dict[str, bytes],
                    nodes: list[codegen.EngineNode], opts: CompileOptions,
                    backend: EngineBackend) -> dict[str, EngineOp]:
    """One runtime ``EngineOp`` per engine node, with its native segment as fallback."""
    library = {f.signature.name: f for f in graph_def.library.function}
    ops = {}
    for node in nodes:
        fdef = library[codegen.native_segment_name(node.name)]
        model = precision.onnx_for_backend(onnx_models[node.name], backend.name,
                                           opts.precision_mode)
        ops[node.name] = EngineOp(
            name=node.name, onnx_model=model, backend=backend,
            inputs=node.inputs, outputs=node.outputs,
            native=lazy_function_callable(fdef, graph_def.library),
            precision_mode=opts.precision_mode, dynamic_shape=opts.use_dynamic_shape,
            profile_strategy=opts.profile_strategy,
            max_cached_engines=opts.maximum_cached_engines,
            allow_build_at_runtime=opts.allow_build_at_runtime,
            max_workspace_size_bytes=int(opts.max_workspace_size_bytes))
    return ops

