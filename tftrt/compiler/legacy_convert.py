"""A SavedModel TF-TRT wrote -> a tftrt ``Conversion``: one tftrt engine per ``TRTEngineOp``.

The model is rewritten so that TensorFlow 2.18+ loads it (``legacy_model``), then
loaded and frozen like any input model; each former engine node is found again as
a call of its segment function. Each segment is lowered to ONNX by the converters
and spliced back as a tftrt ``TRTEngineOp`` with the node's own settings (precision,
implicit batch or dynamic shape, profile strategy, engine cache size, runtime
builds, workspace). A segment holding an op that cannot be converted stays a call
of its native segment, with the reason recorded.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from tensorflow.core.framework import function_pb2, graph_pb2

from tftrt.compiler import capability, codegen, ir, legacy_assets, legacy_model
from tftrt.compiler.freeze import FrozenModel, load_and_freeze
from tftrt.compiler.legacy_options import check_overrides, engine_options, model_options
from tftrt.compiler.lowering import LoweringError, SegmentPlan, lower_segment
from tftrt.compiler.pipeline import CompileOptions, Conversion, engine_attrs, make_engine_ops
from tftrt.errors import SavedModelError
from tftrt.plugins.manager import Registry
from tftrt.plugins.types import EngineBackend
from tftrt.specs import (
    Shape,
    TensorSpec,
    input_name,
    native_segment_name,
    output_name,
    parse_input,
    tensor_ref,
)

log = logging.getLogger("tftrt.migrate")

@dataclass
class EngineRecord:
    """What became of one TF-TRT engine."""

    name: str
    source: legacy_model.LegacyEngine
    options: CompileOptions
    ops: Counter = field(default_factory=Counter)  # op type -> count in the segment
    converted: bool = False
    reason: str | None = None  # why it runs natively
    serialized: list[str] = field(default_factory=list)  # notes on TF-TRT's saved engines
    calibration: str | None = None  # how INT8 scales were obtained

    @property
    def shape_mode(self) -> str:
        if self.options.use_dynamic_shape:
            return f"dynamic shape, {self.options.profile_strategy} profiles"
        return "implicit batch"


@dataclass
class LegacyConversion:
    """The conversion of a TF-TRT model, its model-wide options and per-engine records."""

    source: str
    conversion: Conversion
    options: CompileOptions
    records: list[EngineRecord]
    serialized_unused: int = 0  # saved TensorRT engines that could not be used
    # engine -> TF-TRT's tensor name in its segment ("node", "node:1", TensorRTInputPH_0)
    # -> the ONNX tensor holding it: where a TensorRT calibration table's scales go
    tensor_names: dict[str, dict[str, str]] = field(default_factory=dict)


# -- reading and freezing ------------------------------------------------------------

def freeze_legacy(path: str, tags: Sequence[str], signature_key: str | None
                  ) -> tuple[FrozenModel, dict[str, legacy_model.LegacyEngine], dict[str, str]]:
    """The frozen signature of TF-TRT model ``path`` (engines as marked segment calls), its
    engines by name, and its serialized-engine assets (file -> engine). ``signature_key``
    None: serving_default, else the model's only signature (TF-TRT saves one)."""
    sm = legacy_model.read_saved_model(path)
    mg = legacy_model.meta_graph(sm, tags)
    if signature_key is None:
        keys = sorted(k for k in mg.signature_def if not k.startswith("__"))
        signature_key = keys[0] if len(keys) == 1 else "serving_default"
    engines = legacy_model.read_engines(mg)
    if not engines:
        raise SavedModelError(f"{path!r} holds no TRTEngineOp: TF-TRT did not convert it; "
                              "convert it with tftrt's TrtGraphConverterV2 instead")
    assets = legacy_model.engine_assets(mg)
    adir = os.path.join(path, "assets")
    for fname in sorted(os.listdir(adir)) if os.path.isdir(adir) else []:
        if fname.startswith(legacy_model.ENGINE_ASSET_PREFIX):  # on disk, not in the proto
            assets.setdefault(fname, fname[len(legacy_model.ENGINE_ASSET_PREFIX):])
    legacy_model.patch_meta_graph(mg, engines)
    tmp = tempfile.mkdtemp(prefix=".tftrt-legacy-")
    try:
        legacy_model.write_loadable_copy(path, sm, tmp)
        frozen = load_and_freeze(tmp, tags, signature_key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return frozen, engines, assets


# -- lowering one segment ------------------------------------------------------------

def _merge_shapes(inferred: Shape, declared: Shape) -> Shape:
    if inferred is None or declared is None or len(inferred) != len(declared):
        return inferred if inferred is not None else declared
    return tuple(a if a is not None else b for a, b in zip(inferred, declared, strict=True))


def segment_ir(fdef: function_pb2.FunctionDef, input_shapes: Sequence[Shape]
               ) -> tuple[ir.IR, list[str], list[str]]:
    """The segment function as an IR, its argument tensors and its output tensors."""
    import tensorflow as tf
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph

    shapes = [None if s is None else tf.TensorShape(list(s)) for s in input_shapes]
    fg = function_def_to_graph(fdef, input_shapes=shapes)
    g = ir.from_graph_def(fg.as_graph_def())
    return g, [t.name for t in fg.inputs], [t.name for t in fg.outputs]


def _trt_names(tensors: Mapping[str, str], args: Sequence[str], outs: Sequence[str]
               ) -> dict[str, str]:
    """TF-TRT's names for the segment's tensors (TensorRT's ITensor names) -> ONNX names."""
    names = {}
    for ref, onnx_name in tensors.items():
        node, slot, _ = parse_input(ref)
        names[node if slot == 0 else f"{node}:{slot}"] = onnx_name
    for k, _ in enumerate(args):
        names[input_name(k)] = input_name(k)
    for k, _ in enumerate(outs):
        names[output_name(k)] = output_name(k)
    return names


def lower_engine(fdef: function_pb2.FunctionDef, input_shapes: Sequence[Shape], name: str,
                 opts: CompileOptions, registry: Registry, tensors_out: dict[str, str]
                 ) -> tuple[bytes | None, Counter, str | None, list[TensorSpec]]:
    """The segment's ONNX (or None and the reason it cannot convert), its op counts and
    output specs (refs inside the segment); ``tensors_out`` gets TF-TRT's tensor names."""
    try:
        g, args, outs = segment_ir(fdef, input_shapes)
    except Exception as exc:
        return None, Counter(), f"its segment could not be imported: {exc}", []
    arg_nodes = {parse_input(a)[0] for a in args}
    members = [n for n in g.nodes if n not in arg_nodes]
    ops = Counter(g.nodes[n]["op"] for n in members)
    deny = capability.denylist_from_env()
    marked = capability.mark_supported(g, registry, arg_nodes, deny, opts.use_dynamic_shape)
    bad = sorted((marked.nodes[n]["op"], n, marked.nodes[n]["reason"]) for n in members
                 if not marked.nodes[n]["supported"])
    if bad:
        op, node, why = bad[0]
        more = f" (and {len(bad) - 1} more nodes)" if len(bad) > 1 else ""
        return None, ops, f"node {node!r} ({op}) cannot be converted: {why}{more}", []
    plan = SegmentPlan(frozenset(members), frozenset(), tuple(args), tuple(outs))
    tensors: dict[str, str] = {}
    try:
        lowered = lower_segment(marked, plan, registry, name, outputs=list(outs),
                                dynamic_shape=opts.use_dynamic_shape, tensors_out=tensors)
    except LoweringError as exc:
        return None, ops, str(exc), []
    tensors_out.update(_trt_names(tensors, args, outs))
    return lowered.model.SerializeToString(), ops, None, list(lowered.outputs)


# -- splicing ------------------------------------------------------------------------

def _engine_name(seq: int, index: int, taken: set[str]) -> str:
    """A tftrt engine name (``TRTEngineOp_<graph>_<k>``, numbered like a conversion in this
    process) whose native segment no other model loaded in this process has."""
    from tensorflow.python.eager import context

    name, k = codegen.engine_name(seq, index), 1
    while name in taken or context.context().has_function(native_segment_name(name)):
        name, k = f"{codegen.engine_name(seq, index)}_{k}", k + 1
    taken.add(name)
    return name


def _rename_refs(graph_def: graph_pb2.GraphDef, old: str, new: str) -> None:
    for node in graph_def.node:
        for k, ref in enumerate(node.input):
            src, slot, control = parse_input(ref)
            if src == old:
                node.input[k] = f"^{new}" if control else tensor_ref(new, slot)


def _engine_node(name: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 opts: CompileOptions) -> codegen.EngineNode:
    plan = SegmentPlan(frozenset(), frozenset(), tuple(s.ref for s in inputs),
                       tuple(s.ref for s in outputs))
    return codegen.EngineNode(name, plan, tuple(inputs), tuple(outputs), engine_attrs(opts))


def convert_legacy(path: str, registry: Registry, backend: EngineBackend,
                   overrides: Mapping | None = None, tags: Sequence[str] = ("serve",),
                   signature_key: str | None = None) -> LegacyConversion:
    """Each TF-TRT engine of the model in ``path`` as a tftrt engine (or a native call)."""
    overrides = check_overrides(overrides or {})
    frozen, engines, assets = freeze_legacy(path, tags, signature_key)
    graph_def = graph_pb2.GraphDef()
    graph_def.CopyFrom(frozen.graph_def)
    shapes_ir = ir.from_graph_def(frozen.graph_def)
    library = {f.signature.name: f for f in graph_def.library.function}
    taken = {n.name for n in graph_def.node}
    records, nodes, onnx_models, renamed, tensor_names = [], [], {}, {}, {}
    seq = codegen.next_graph_sequence()
    for node in list(graph_def.node):
        if legacy_model.ENGINE_MARK not in node.attr:
            continue
        source = engines[node.attr[legacy_model.ENGINE_MARK].s.decode()]
        del node.attr[legacy_model.ENGINE_MARK]
        fdef = library[node.attr["f"].func.name]
        opts = engine_options(source, overrides)
        data_in = [r for r in node.input if not r.startswith("^")]
        in_shapes = [_merge_shapes(_inferred(shapes_ir, r), d) for r, d in
                     zip(data_in, _padded(source.input_shapes, len(data_in)), strict=True)]
        taken.discard(node.name)  # the call node is replaced: its name is free
        name = _engine_name(seq, len(records), taken)
        names: dict[str, str] = {}
        model, ops, reason, out_specs = lower_engine(fdef, in_shapes, name, opts, registry,
                                                     names)
        tensor_names[name] = names
        record = EngineRecord(name, source, opts, ops)
        records.append(record)
        # the segment under a name of its own, free of the loader's attrs
        seg = function_pb2.FunctionDef()
        seg.CopyFrom(fdef)
        seg.signature.name = native_segment_name(name)
        for key in [k for k in seg.attr if k == "_noinline" or k.startswith("_Grappler")]:
            del seg.attr[key]
        graph_def.library.function.append(seg)
        if model is None:
            record.reason = reason
            node.attr["f"].func.name = seg.signature.name
            log.warning("%s stays native: %s", name, reason)
            continue
        record.converted = True
        in_specs = [TensorSpec(r, _inferred_dtype(shapes_ir, r), s)
                    for r, s in zip(data_in, in_shapes, strict=True)]
        out_specs = [TensorSpec(tensor_ref(name, k), s.dtype, _merge_shapes(s.shape, d))
                     for k, (s, d) in enumerate(zip(out_specs, _padded(
                         source.output_shapes, len(out_specs)), strict=True))]
        engine = _engine_node(name, in_specs, out_specs, opts)
        new = codegen.engine_node_def(engine, seg.signature.name)
        new.input.extend(node.input)
        renamed[node.name] = name
        node.CopyFrom(new)
        nodes.append(engine)
        onnx_models[name] = model
    for old, new in renamed.items():
        _rename_refs(graph_def, old, new)
    seen = {r.source.name for r in records}
    for source in (e for n, e in engines.items() if n not in seen):
        records.append(EngineRecord(source.name, source, engine_options(source, overrides),
                                    reason="after freezing it is not in the signature's "
                                           "top-level graph (e.g. inside control flow): its "
                                           "segment runs natively"))
    _prune_library(graph_def)
    frozen = replace(frozen, graph_def=graph_def, outputs=tuple(
        replace(t, ref=_renamed_ref(t.ref, renamed)) for t in frozen.outputs))
    ops = {}
    for engine in nodes:
        record = next(r for r in records if r.name == engine.name)
        ops.update(make_engine_ops(graph_def, onnx_models, [engine],
                                   _build_time(record.options), backend))
    unused = legacy_assets.attach_serialized(path, assets, records, ops, backend)
    conversion = Conversion(frozen, graph_def, ops, onnx_models, {}, None)
    return LegacyConversion(path, conversion, model_options(records, overrides), records,
                            unused, tensor_names)


def _functions_named(nodes) -> set[str]:
    out = set()
    for node in nodes:
        for value in node.attr.values():
            if value.WhichOneof("value") == "func":
                out.add(value.func.name)
            elif value.WhichOneof("value") == "list":
                out.update(f.name for f in value.list.func)
    return out


def _prune_library(graph_def: graph_pb2.GraphDef) -> None:
    """Drop library functions that nothing in the graph calls any more."""
    library = {f.signature.name: f for f in graph_def.library.function}
    live: set[str] = set()
    todo = _functions_named(graph_def.node)
    while todo:
        name = todo.pop()
        if name in live or name not in library:
            continue
        live.add(name)
        todo |= _functions_named(library[name].node_def)
    kept = [f for f in graph_def.library.function if f.signature.name in live]
    del graph_def.library.function[:]
    graph_def.library.function.extend(kept)


def _build_time(opts: CompileOptions) -> CompileOptions:
    return replace(opts, allow_build_at_runtime=True)


def _padded(shapes: Sequence[Shape], n: int) -> list[Shape]:
    """Declared shapes for ``n`` tensors (freezing can drop resource inputs: then none)."""
    return list(shapes) if len(shapes) == n else [None] * n


def _inferred(g: ir.IR, ref: str) -> Shape:
    src, slot, _ = parse_input(ref)
    shapes = g.nodes[src]["output_shapes"]
    return shapes[slot] if slot < len(shapes) else None


def _inferred_dtype(g: ir.IR, ref: str):
    src, slot, _ = parse_input(ref)
    return g.nodes[src]["output_dtypes"][slot]


def _renamed_ref(ref: str, renamed: Mapping[str, str]) -> str:
    src, slot, _ = parse_input(ref)
    return tensor_ref(renamed[src], slot) if src in renamed else ref
