"""SavedModels that TF-TRT wrote: recognise them, read their engines, and rewrite them so
that a TensorFlow without TF-TRT loads them.

TensorFlow 2.18+ registers no ``TRTEngineOp`` and no TRT resource op, so such a
model is handled as a ``SavedModel`` proto before TensorFlow ever imports it:

* every ``TRTEngineOp`` node (top-level graph or library function) becomes a call
  of its ``segment_func``, marked with :data:`ENGINE_MARK` (its canonical name) so
  the converted graph can find it again; segment functions get ``_noinline`` so
  freezing and Grappler keep each call in one piece;
* the TRT engine resources that ``build()`` + ``save()`` leave (objects whose
  creator/initializer/destroyer functions call ``CreateTRTResourceHandle`` and
  ``InitializeTRTResource``, their ``trt-serialized-engine.*`` assets and the
  top-level nodes using them) are removed; object-graph nodes become empty generic
  objects so that no node id changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.python.framework import op_def_registry

from tftrt.compiler.functions import KEEP_CALL_ATTR
from tftrt.compiler.tfattrs import shape_from_proto, tf_dtype_to_np
from tftrt.errors import SavedModelError
from tftrt.specs import ENGINE_OP, Shape

ENGINE_MARK = KEEP_CALL_ATTR  # freezing keeps these calls as calls
RESOURCE_OPS = frozenset({"CreateTRTResourceHandle", "InitializeTRTResource",
                          "SerializeTRTResource", "GetCalibrationDataOp"})
TRT_OPS = RESOURCE_OPS | {ENGINE_OP}
ENGINE_ASSET_PREFIX = "trt-serialized-engine."
_RESOURCE_DTYPE = 20  # DT_RESOURCE


@dataclass(frozen=True)
class LegacyEngine:
    """One ``TRTEngineOp`` as TF-TRT wrote it, with TF 2.17's defaults for missing attrs."""

    name: str  # canonical: the node name after its last '/', as TF-TRT keys its caches
    node: str
    function: str  # library function holding the node; "" for the top-level graph
    segment_func: str
    in_dtypes: tuple[np.dtype | None, ...]  # None: a resource (an unfrozen variable)
    out_dtypes: tuple[np.dtype | None, ...]
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    precision_mode: str
    use_implicit_batch: bool
    profile_strategy: str
    max_cached_engines: int
    allow_build_at_runtime: bool
    workspace_size_bytes: int
    use_calibration: bool
    calibration_data: bytes
    max_batch_size: int
    static_engine: bool
    has_serialized_segment: bool


def _attr(node: node_def_pb2.NodeDef, key: str, kind: str, default):
    if key not in node.attr:
        return default
    value = node.attr[key]
    return getattr(value, kind) if value.WhichOneof("value") == kind else default


def _shapes(node: node_def_pb2.NodeDef, key: str) -> tuple[Shape, ...]:
    if key not in node.attr:
        return ()
    return tuple(shape_from_proto(s) for s in node.attr[key].list.shape)


def _dtypes(node: node_def_pb2.NodeDef, key: str) -> tuple[np.dtype | None, ...]:
    types = node.attr[key].list.type if key in node.attr else ()
    return tuple(None if t == _RESOURCE_DTYPE else tf_dtype_to_np(t) for t in types)


def canonical_name(node_name: str) -> str:
    return node_name.rsplit("/", 1)[-1]


def engine_from_node(node: node_def_pb2.NodeDef, function: str) -> LegacyEngine:
    """The attributes of a ``TRTEngineOp`` node, defaults as TF 2.17 registers them."""
    strategy = _attr(node, "profile_strategy", "s", b"").decode() or "Range"
    return LegacyEngine(
        name=canonical_name(node.name), node=node.name, function=function,
        segment_func=node.attr["segment_func"].func.name if "segment_func" in node.attr else "",
        in_dtypes=_dtypes(node, "InT"), out_dtypes=_dtypes(node, "OutT"),
        input_shapes=_shapes(node, "input_shapes"),
        output_shapes=_shapes(node, "output_shapes"),
        precision_mode=_attr(node, "precision_mode", "s", b"FP32").decode().upper(),
        use_implicit_batch=_attr(node, "_use_implicit_batch", "b", True),
        profile_strategy=strategy,
        max_cached_engines=_attr(node, "max_cached_engines_count", "i", 1),
        allow_build_at_runtime=_attr(node, "_allow_build_at_runtime", "b", True),
        workspace_size_bytes=_attr(node, "workspace_size_bytes", "i", 1 << 30),
        use_calibration=_attr(node, "use_calibration", "b", True),
        calibration_data=_attr(node, "calibration_data", "s", b""),
        max_batch_size=_attr(node, "max_batch_size", "i", 1),
        static_engine=_attr(node, "static_engine", "b", True),
        has_serialized_segment=bool(_attr(node, "serialized_segment", "s", b"")))


def read_saved_model(path: str) -> saved_model_pb2.SavedModel:
    """The ``saved_model.pb`` of directory ``path``, with errors that name what is wrong."""
    if not path or not os.path.isdir(path):
        raise SavedModelError(f"SavedModel directory {path!r} does not exist")
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.isfile(pb):
        raise SavedModelError(f"{path!r} is not a SavedModel: it has no saved_model.pb")
    try:
        with open(pb, "rb") as f:
            return saved_model_pb2.SavedModel.FromString(f.read())
    except Exception as exc:
        raise SavedModelError(f"{pb!r} is not a readable SavedModel: {exc}") from None


def _graph_nodes(mg: meta_graph_pb2.MetaGraphDef
                 ) -> Iterator[tuple[str, Iterable[node_def_pb2.NodeDef]]]:
    yield "", mg.graph_def.node
    for fdef in mg.graph_def.library.function:
        yield fdef.signature.name, fdef.node_def


def has_engines(sm: saved_model_pb2.SavedModel) -> bool:
    return any(n.op == ENGINE_OP for mg in sm.meta_graphs for _, nodes in _graph_nodes(mg)
               for n in nodes)


def is_tftrt_saved_model(path: str) -> bool:
    """True when ``path`` is a SavedModel holding ``TRTEngineOp`` nodes (TF-TRT wrote it)."""
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        return False
    try:
        return has_engines(read_saved_model(path))
    except SavedModelError:
        return False


def meta_graph(sm: saved_model_pb2.SavedModel, tags) -> meta_graph_pb2.MetaGraphDef:
    """The meta graph with exactly ``tags``."""
    for mg in sm.meta_graphs:
        if set(mg.meta_info_def.tags) == set(tags):
            return mg
    raise SavedModelError(f"the SavedModel has no MetaGraph with tags {list(tags)}; it has "
                          f"{[list(m.meta_info_def.tags) for m in sm.meta_graphs]}")


def read_engines(mg: meta_graph_pb2.MetaGraphDef) -> dict[str, LegacyEngine]:
    """Every ``TRTEngineOp`` of the meta graph by canonical name (suffixed where two nodes
    share one); each one's segment function must be in the library."""
    library = {f.signature.name for f in mg.graph_def.library.function}
    engines: dict[str, LegacyEngine] = {}
    for function, nodes in _graph_nodes(mg):
        for node in nodes:
            if node.op != ENGINE_OP:
                continue
            engine = engine_from_node(node, function)
            where = f"function {function!r}" if function else "the top-level graph"
            if not engine.segment_func:
                raise SavedModelError(f"TRTEngineOp {node.name!r} in {where} has no "
                                      "segment_func: its segment cannot be rebuilt")
            if engine.segment_func not in library:
                raise SavedModelError(
                    f"TRTEngineOp {node.name!r} in {where} names segment_func "
                    f"{engine.segment_func!r}, which is missing from the function library")
            name, k = engine.name, 1
            while name in engines:  # the same name in two functions: two engines
                name, k = f"{engine.name}_{k}", k + 1
            engines[name] = replace(engine, name=name)
    return engines


def engine_assets(mg: meta_graph_pb2.MetaGraphDef) -> dict[str, str]:
    """Serialized-engine asset file name -> canonical engine name, from ``asset_file_def``."""
    out = {}
    for asset in mg.asset_file_def:
        if asset.filename.startswith(ENGINE_ASSET_PREFIX):
            out[asset.filename] = asset.filename[len(ENGINE_ASSET_PREFIX):]
    return out


# -- rewriting -------------------------------------------------------------------

def _call_node(node: node_def_pb2.NodeDef, name: str) -> node_def_pb2.NodeDef:
    call = node_def_pb2.NodeDef(name=node.name, device=node.device, input=list(node.input),
                                op="PartitionedCall")
    call.attr["f"].func.name = node.attr["segment_func"].func.name
    call.attr["Tin"].CopyFrom(node.attr["InT"])
    call.attr["Tout"].CopyFrom(node.attr["OutT"])
    call.attr[ENGINE_MARK].s = name.encode()
    if "_output_shapes" in node.attr:
        call.attr["_output_shapes"].CopyFrom(node.attr["_output_shapes"])
    return call


def _rewrite_engine_nodes(nodes, names: dict[tuple[str, str], str], function: str,
                          in_function: bool) -> None:
    """TRTEngineOp -> call of its segment; in functions, ``x:out_tensor:k`` -> ``x:output:k``."""
    engines = set()
    for i, node in enumerate(nodes):
        if node.op == ENGINE_OP:
            engines.add(node.name)
            nodes[i].CopyFrom(_call_node(node, names[(function, node.name)]))
    if not in_function or not engines:
        return
    for node in nodes:
        for k, ref in enumerate(node.input):
            parts = ref.split(":")
            if len(parts) == 3 and parts[0] in engines and parts[1] == "out_tensor":
                node.input[k] = f"{parts[0]}:output:{parts[2]}"


def _uses(nodes: Iterable[node_def_pb2.NodeDef], ops: frozenset[str],
          functions: set[str]) -> bool:
    """True if a node runs one of ``ops`` or calls one of ``functions``."""
    return any(n.op in ops or ("f" in n.attr and n.attr["f"].func.name in functions)
               for n in nodes)


def _drop_top_level(graph: graph_pb2.GraphDef, dropped_fns: set[str]) -> None:
    """Remove top-level nodes that use TRT resources, and whatever reads them."""
    gone = {n.name for n in graph.node if _uses([n], RESOURCE_OPS, dropped_fns)}
    changed = True
    while changed:
        changed = False
        for n in graph.node:
            if n.name in gone:
                continue
            if any(r.lstrip("^").split(":")[0] in gone for r in n.input
                   if not r.startswith("^")):
                gone.add(n.name)
                changed = True
    kept = [n for n in graph.node if n.name not in gone]
    for n in kept:
        refs = [r for r in n.input if r.lstrip("^").split(":")[0] not in gone]
        del n.input[:]
        n.input.extend(refs)
    del graph.node[:]
    graph.node.extend(kept)


def _generic_object(obj) -> None:
    obj.Clear()
    obj.user_object.identifier = "_generic_user_object"
    obj.user_object.version.producer = 1
    obj.user_object.version.min_consumer = 1


def _clean_object_graph(mg: meta_graph_pb2.MetaGraphDef, dropped_fns: set[str],
                        asset_index: dict[int, int | None]) -> None:
    """TRT resources, their functions and engine assets become empty generic objects."""
    graph = mg.object_graph_def
    for name in dropped_fns:
        if name in graph.concrete_functions:
            del graph.concrete_functions[name]
    for obj in graph.nodes:
        kind = obj.WhichOneof("kind")
        if kind == "function" and set(obj.function.concrete_functions) & dropped_fns:
            _generic_object(obj)
        elif kind == "bare_concrete_function" and \
                obj.bare_concrete_function.concrete_function_name in dropped_fns:
            _generic_object(obj)
        elif kind == "asset":
            new = asset_index.get(obj.asset.asset_file_def_index)
            if new is None:
                _generic_object(obj)
            else:
                obj.asset.asset_file_def_index = new
    for obj in graph.nodes:  # a resource whose functions are gone is a TRT engine resource
        if obj.WhichOneof("kind") == "resource":
            fns = {graph.nodes[c.node_id].WhichOneof("kind") for c in obj.children
                   if c.local_name in ("_create_resource", "_initialize", "_destroy_resource")}
            if fns and fns <= {"user_object"}:
                _generic_object(obj)


def _fix_op_list(mg: meta_graph_pb2.MetaGraphDef) -> None:
    ops = mg.meta_info_def.stripped_op_list
    kept = [op for op in ops.op if op.name not in TRT_OPS]
    present = {op.name for op in kept}
    for name in ("PartitionedCall", "StatefulPartitionedCall"):
        if name not in present:
            kept.append(op_def_registry.get(name))
    del ops.op[:]
    ops.op.extend(kept)


def patch_meta_graph(mg: meta_graph_pb2.MetaGraphDef, engines: dict[str, LegacyEngine]
                     ) -> None:
    """Rewrite ``mg`` in place so that TensorFlow without TF-TRT loads it."""
    names = {(e.function, e.node): name for name, e in engines.items()}
    library = mg.graph_def.library
    dropped = {f.signature.name for f in library.function
               if _uses(f.node_def, RESOURCE_OPS, set())}
    kept = [f for f in library.function if f.signature.name not in dropped]
    del library.function[:]
    library.function.extend(kept)
    segments = {e.segment_func for e in engines.values()}
    for fdef in library.function:
        _rewrite_engine_nodes(fdef.node_def, names, fdef.signature.name, in_function=True)
        if fdef.signature.name in segments:
            fdef.attr["_noinline"].CopyFrom(attr_value_pb2.AttrValue(b=True))
    _drop_top_level(mg.graph_def, dropped)
    _rewrite_engine_nodes(mg.graph_def.node, names, "", in_function=False)
    assets = list(mg.asset_file_def)
    index: dict[int, int | None] = {}
    kept_assets = []
    for k, asset in enumerate(assets):
        if asset.filename.startswith(ENGINE_ASSET_PREFIX):
            index[k] = None
        else:
            index[k] = len(kept_assets)
            kept_assets.append(asset)
    del mg.asset_file_def[:]
    mg.asset_file_def.extend(kept_assets)
    _clean_object_graph(mg, dropped, index)
    _fix_op_list(mg)


def write_loadable_copy(src: str, sm: saved_model_pb2.SavedModel, dst: str) -> None:
    """Write into empty directory ``dst`` a SavedModel TF 2.18+ loads: the rewritten proto,
    with links to ``src``'s variables and assets."""
    with open(os.path.join(dst, "saved_model.pb"), "wb") as f:
        f.write(sm.SerializeToString())
    for sub in ("variables", "assets", "assets.extra"):
        if os.path.isdir(os.path.join(src, sub)):
            os.symlink(os.path.abspath(os.path.join(src, sub)), os.path.join(dst, sub))
