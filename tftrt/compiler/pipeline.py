"""The conversion pipeline: frozen model -> IR -> passes -> lowering -> codegen.

Engines are not built here: each engine node gets an ``EngineOp`` that builds
its engine on ``build()`` or first use, as TF-TRT does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tensorflow.core.framework import graph_pb2

from tftrt.compiler import capability, codegen, ir, precision, segment
from tftrt.compiler.freeze import FrozenModel
from tftrt.compiler.lowering import LoweringError, lower_segment, plan_segment
from tftrt.plugins.manager import Registry
from tftrt.plugins.types import EngineBackend
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.tfgraph import lazy_function_callable

log = logging.getLogger("tftrt.lowering")


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


@dataclass
class Conversion:
    """Everything a conversion produced."""

    frozen: FrozenModel
    graph_def: graph_pb2.GraphDef  # the converted GraphDef (TRTEngineOp nodes)
    engines: dict[str, EngineOp]
    onnx_models: dict[str, bytes]
    nonconversion: dict[str, dict[str, int]] = field(default_factory=dict)
    ir: ir.IR | None = None


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
                  backend: EngineBackend) -> Conversion:
    """Segment the frozen graph, lower each segment to ONNX and splice in engine nodes."""
    g = ir.from_graph_def(frozen.graph_def, variable_values=frozen.variable_values)
    excluded = {ir.parse_input(t.ref)[0] for t in frozen.inputs + frozen.outputs}
    deny = capability.denylist_from_env() if opts.denylist is None else opts.denylist
    marked = capability.mark_supported(g, registry, excluded, deny, opts.use_dynamic_shape)
    counts = capability.nonconversion_counts(marked)
    segments = [] if opts.minimum_segment_size == -1 else segment.segment_graph(
        marked, opts.minimum_segment_size, opts.max_engines)
    seq = codegen.next_graph_sequence()
    nodes, onnx_models = [], {}
    for seg in segments:
        name = codegen.engine_name(seq, len(nodes))
        plan = plan_segment(marked, seg.nodes)
        try:
            lowered = lower_segment(marked, plan, registry, name,
                                    dynamic_shape=opts.use_dynamic_shape)
        except LoweringError as exc:
            log.warning("segment %s stays native: %s", name, exc)
            continue
        onnx_models[name] = lowered.model.SerializeToString()
        nodes.append(codegen.EngineNode(name, plan, lowered.inputs, lowered.outputs,
                                        engine_attrs(opts)))
    graph_def = codegen.splice(marked, nodes)
    engines = make_engine_ops(graph_def, onnx_models, nodes, opts, backend)
    return Conversion(frozen, graph_def, engines, onnx_models, counts, marked)


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

