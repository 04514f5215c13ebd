"""Load and freeze: SavedModel -> frozen, Grappler-optimized GraphDef + signature facts.

With freezing disabled (``TF_TRT_EXPERIMENTAL_FEATURES=disable_graph_freezing``)
the graph keeps its variables: captured resources stay Placeholders, reads stay
``ReadVariableOp`` (or ``VariableV2`` in TF1 graphs), and the values they hold
at conversion time are recorded so converters can bake them into engines.

State that cannot become a constant (a lookup table, any other captured resource
that is not a variable) stays a resource Placeholder bound to that resource at run
time, as TF-TRT leaves it: the ops using it stay native, the rest of the graph
converts. Function calls are inlined (also those marked for XLA or against
inlining); ``While``/``If`` stay functional.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow.python.grappler import tf_optimizer

from tftrt.compiler import functions, loading, standins, varconsts
from tftrt.errors import SavedModelError
from tftrt.specs import SignatureTensor

log = logging.getLogger("tftrt")


@dataclass(frozen=True)
class FrozenModel:
    """The graph to convert and its signature; frozen unless ``variables`` is non-empty."""

    graph_def: graph_pb2.GraphDef
    inputs: tuple[SignatureTensor, ...]
    outputs: tuple[SignatureTensor, ...]
    signature_key: str
    # resource Placeholder name -> what it captures: a tf.Variable (unfrozen only) or a
    # resource that cannot be frozen (a lookup table; its trackable where one is known)
    variables: Mapping[str, Any] = field(default_factory=dict)
    # unfrozen only: variable node (resource Placeholder or VariableV2) -> value at conversion
    variable_values: Mapping[str, np.ndarray] = field(default_factory=dict)
    # resource Placeholder of a static table -> (min, max) of the values it holds
    table_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    # frozen only: large Const -> its value, read-only, a view of the variable it was
    # frozen from (the IR takes it as the Const's value instead of decoding a copy)
    weights: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def frozen(self) -> bool:
        return not self.variable_values


GRAPPLER_OPTIMIZERS = ("pruning", "debug_stripper", "function", "constfold", "dependency",
                       "arithmetic", "common_subgraph_elimination")


def _ref(name: str) -> str:
    return name if ":" in name else name + ":0"


def load_signature(saved_model_dir: str, tags: Sequence[str], signature_key: str):
    """The signature's ConcreteFunction, with clear errors for every way it can be missing."""
    path = os.fspath(saved_model_dir) if saved_model_dir is not None else None
    if not path:
        raise SavedModelError("input_saved_model_dir is required")
    if not os.path.isdir(path):
        raise SavedModelError(f"SavedModel directory {path!r} does not exist")
    if not any(os.path.isfile(os.path.join(path, f))
               for f in ("saved_model.pb", "saved_model.pbtxt")):
        raise SavedModelError(f"{path!r} is not a SavedModel: it has no saved_model.pb")
    try:
        from tensorflow.python.saved_model import loader_impl

        sm, debug_info = loader_impl.parse_saved_model_with_debug_info(path)
    except Exception as exc:
        raise SavedModelError(f"SavedModel {path!r} is malformed: {exc}") from exc
    available = [list(mg.meta_info_def.tags) for mg in sm.meta_graphs]
    if not any(set(t) == set(tags) for t in available):
        raise SavedModelError(
            f"SavedModel {path!r} has no MetaGraph with tags {list(tags)}; it has {available}")
    try:
        loaded = loading.load(path, tags, sm, debug_info, signature_key)
    except Exception as exc:
        raise SavedModelError(f"SavedModel {path!r} could not be loaded: {exc}") from exc
    sigs = dict(getattr(loaded, "signatures", {}) or {})
    if signature_key not in sigs:
        raise SavedModelError(f"SavedModel {path!r} has no signature {signature_key!r}; "
                              f"it has {sorted(sigs)}")
    return loaded, sigs[signature_key]


def _frozen_graph_def(func, root: Any = None
                      ) -> tuple[graph_pb2.GraphDef, list[tf.Tensor], list[tf.Tensor],
                                 dict[str, Any], dict[str, np.ndarray]]:
    """Variables -> constants without rebuilding a ConcreteFunction (that costs seconds).

    Uses convert_to_constants' internals, pinned to the TF versions we test;
    falls back to the public API if they change. Also returns the captured
    resources that are not variables (resource Placeholder name -> resource), and
    the large Consts' values as read-only views of their variables.
    """
    n_user = len(func.inputs) - len(func.captured_inputs)
    try:
        from tensorflow.python.framework import convert_to_constants as c2c

        data = varconsts.converter_data(c2c, func)
        graph_def, converted, weights = varconsts.replace_variables(c2c, data)
    except (ImportError, AttributeError, TypeError):
        frozen = convert_variables_to_constants_v2(func)
        return (frozen.graph.as_graph_def(), list(frozen.inputs), list(frozen.outputs), {},
                {})
    resources = _unfreezable_captures(func, set(converted), root)
    return graph_def, list(func.inputs[:n_user]), list(func.outputs), resources, weights


def _unfreezable_captures(func, converted: set[int], root: Any) -> dict[str, Any]:
    """Captured resources that freezing left alone: Placeholder name -> the resource.

    ``converted`` holds the indices (among the captures) that became constants.
    """
    by_handle = {}
    if root is not None:
        for obj in tf.train.TrackableView(root).descendants():
            handle = getattr(obj, "resource_handle", None) if _is_resource(obj) else None
            if handle is not None:
                by_handle[id(handle)] = obj
    out = {}
    for k, (ext, internal) in enumerate(func.graph.captures):
        if k in converted:
            continue
        if ext.dtype != tf.resource:
            raise SavedModelError(f"the signature captures {internal.op.name!r} "
                                  f"({ext.dtype.name}), which could not be frozen")
        out[internal.op.name] = by_handle.get(id(ext), ext)
    return out


def _is_resource(obj: Any) -> bool:
    from tensorflow.python.trackable.resource import CapturableResource

    return isinstance(obj, CapturableResource)


def freeze_function(func, signature_key: str, freeze: bool = True,
                    root: Any = None) -> FrozenModel:
    """Variables -> constants (unless ``freeze`` is False), then Grappler; names kept.

    ``root`` is the object the function was loaded with: the resources it
    captures are looked up there (so that a converted model can save them).
    """
    graph_def, in_tensors, out_tensors, resources, weights = _frozen_graph_def(func, root)
    variables: dict[str, Any] = {}
    values: dict[str, np.ndarray] = {}
    if not freeze:
        graph_def, variables, values = _unfrozen_graph_def(func, graph_def)
        weights = {}
    variables.update(resources)
    in_specs = func.structured_input_signature[1]
    in_names = sorted(in_specs) if in_specs else [
        t.name.split(":")[0] for t in in_tensors]
    out_struct = func.structured_outputs
    out_names = sorted(out_struct) if isinstance(out_struct, dict) else [
        f"output_{k}" for k in range(len(out_tensors))]
    if len(in_names) != len(in_tensors) or len(out_names) != len(out_tensors):
        raise SavedModelError("the signature's inputs/outputs do not match its graph")
    for node in graph_def.node:
        node.device = ""
    inputs = tuple(_tensor(n, t) for n, t in zip(in_names, in_tensors, strict=True))
    outputs = tuple(_tensor(n, t) for n, t in zip(out_names, out_tensors, strict=True))
    # graph_def is this function's own: marked in place
    graph_def = functions.mark_lowering(functions.allow_inlining(graph_def), lower=False)
    optimized = inline_calls(graph_def, [t.ref for t in inputs + outputs])
    keep = {t.ref.split(":")[0] for t in inputs + outputs}
    pruned = prune_dead_nodes(_drop_controls_on(functions.drop_colocation(optimized),
                                                set(variables)), keep)
    live = {n.name for n in pruned.node}
    consts = {n.name for n in pruned.node if n.op == "Const"}
    return FrozenModel(pruned, inputs, outputs, signature_key,
                       {k: v for k, v in variables.items() if k in live},
                       {k: v for k, v in values.items() if k in live},
                       _table_ranges(pruned, {k: v for k, v in resources.items() if k in live}),
                       {k: v for k, v in weights.items() if k in consts})


_STATIC_TABLES = ("StaticHashTable", "_RestoredStaticHashTable")
_LOOKUPS = ("LookupTableFindV2", "LookupTableFind")


def _table_ranges(graph_def: graph_pb2.GraphDef, resources: Mapping[str, Any]
                  ) -> dict[str, tuple[float, float]]:
    """Resource Placeholder of a static table with numeric values -> (min, max) of them.

    A static table's contents are fixed when it is created, so its value range is a
    fact of the model (mutable tables get none).
    """
    out: dict[str, tuple[float, float]] = {}
    for node in graph_def.node:
        table = node.input[0].split(":")[0] if node.op in _LOOKUPS and node.input else None
        obj = resources.get(table)
        if obj is None or type(obj).__name__ not in _STATIC_TABLES or table in out:
            continue
        try:
            _, values = tf.raw_ops.LookupTableExportV2(
                table_handle=obj.resource_handle, Tkeys=tf.as_dtype(node.attr["Tin"].type),
                Tvalues=tf.as_dtype(node.attr["Tout"].type))
            arr = values.numpy()
        except Exception:  # not exportable: no range known
            continue
        if arr.size and arr.dtype.kind in "biuf":
            out[table] = (float(arr.min()), float(arr.max()))
    return out


def _drop_controls_on(graph_def: graph_pb2.GraphDef, names: set[str]) -> graph_pb2.GraphDef:
    """Remove control inputs from the nodes ``names`` (captured-variable Placeholders).

    Inlining leaves control edges from the signature's captures, which order
    nothing (a Placeholder does no work) but would tie the graph to them.
    """
    if names:
        for node in graph_def.node:
            kept = [i for i in node.input if not (i.startswith("^") and i[1:] in names)]
            if len(kept) != len(node.input):
                del node.input[:]
                node.input.extend(kept)
    return graph_def


VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})


def _unfrozen_graph_def(func, frozen: graph_pb2.GraphDef
                        ) -> tuple[graph_pb2.GraphDef, dict[str, Any], dict[str, np.ndarray]]:
    """The signature's graph with its variables, and each variable node's current value.

    Values come from the frozen graph, where freezing turned every captured
    resource Placeholder and every ``VariableV2`` into a Const of the same name.
    """
    graph_def = func.graph.as_graph_def()
    for fn in graph_def.library.function:  # TF-TRT does the same so Grappler inlines them
        fn.attr.pop("api_implements", None)
    by_handle = {id(v.handle): v for v in func.graph.variables}
    variables = {internal.op.name: by_handle[id(ext)]
                 for ext, internal in func.graph.captures if id(ext) in by_handle}
    consts = {n.name: n for n in frozen.node if n.op == "Const"}
    wanted = set(variables) | {n.name for n in graph_def.node if n.op in VARIABLE_OPS}
    values = {name: tf.make_ndarray(consts[name].attr["value"].tensor)
              for name in wanted if name in consts}
    return graph_def, variables, values


def prune_dead_nodes(graph_def: graph_pb2.GraphDef, keep: set[str]) -> graph_pb2.GraphDef:
    """Drop nodes that nothing in ``keep`` depends on (Grappler can leave rewritten ones),
    in place (a new graph would copy every weight)."""
    nodes = {n.name: n for n in graph_def.node}
    live: set[str] = set()
    stack = [n for n in keep if n in nodes]
    while stack:
        name = stack.pop()
        if name in live:
            continue
        live.add(name)
        for ref in nodes[name].input:
            src = ref.lstrip("^").split(":")[0]
            if src in nodes and src not in live:
                stack.append(src)
    if len(live) == len(nodes):
        return graph_def
    for k in reversed(range(len(graph_def.node))):
        if graph_def.node[k].name not in live:
            del graph_def.node[k]
    return graph_def


def _tensor(name: str, t: tf.Tensor) -> SignatureTensor:
    shape = None if t.shape.rank is None else tuple(t.shape.as_list())
    return SignatureTensor(name, _ref(t.name), np.dtype(t.dtype.as_numpy_dtype), shape)


def run_grappler(graph_def: graph_pb2.GraphDef, fetches: Sequence[str],
                 optimizers: Sequence[str] = GRAPPLER_OPTIMIZERS,
                 aggressive_inlining: bool = False) -> graph_pb2.GraphDef:
    """Constant folding, function inlining, pruning and arithmetic (or ``optimizers``),
    keeping ``fetches``."""
    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(graph_def)
    fetch = meta.collection_def["train_op"]
    for ref in fetches:
        fetch.node_list.value.append(ref)
    config = config_pb2.ConfigProto()
    rw = config.graph_options.rewrite_options
    rw.optimizers.extend(optimizers)
    rw.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    rw.remapping = rewriter_config_pb2.RewriterConfig.OFF
    if aggressive_inlining:  # also calls whose stateful ops are not control outputs
        rw.function_optimization = rewriter_config_pb2.RewriterConfig.AGGRESSIVE
    return tf_optimizer.OptimizeGraph(config, meta, graph_id=b"tf_graph")


def optimize(graph_def: graph_pb2.GraphDef, fetches: Sequence[str],
             aggressive_inlining: bool = False) -> graph_pb2.GraphDef:
    """``run_grappler`` with large weights stood in (``compiler/standins.py``): ops computed
    from constants alone are folded first, on a graph of just them; then the graph
    without its large weights is optimized and the weights are put back. Edits
    ``graph_def`` in place."""
    large = {n.name for n in graph_def.node if standins.is_large(n)}
    if not large:
        return run_grappler(graph_def, fetches, aggressive_inlining=aggressive_inlining)
    graph_def = standins.fold_constant_closure(
        graph_def, large, lambda sub, fetch: run_grappler(sub, fetch, ("constfold",)))
    small, consts = standins.stand_in(graph_def, exact_shapes=False)
    optimized = standins.put_back(
        graph_def, run_grappler(small, fetches, aggressive_inlining=aggressive_inlining),
        consts)
    # Grappler keeps Placeholders that nothing reads: drop those that stood in
    return prune_dead_nodes(optimized, {f.split(":")[0] for f in fetches})


def inline_calls(graph_def: graph_pb2.GraphDef, fetches: Sequence[str]) -> graph_pb2.GraphDef:
    """Grappler (``optimize``), then, for calls it kept (other than tftrt's own), Grappler
    inlining aggressively; calls left after that stay native (logged)."""
    optimized = optimize(graph_def, fetches)
    calls = functions.remaining_calls(optimized)
    if calls:
        optimized = optimize(optimized, fetches, aggressive_inlining=True)
        calls = functions.remaining_calls(optimized)
        if calls:
            log.info("function calls that stay calls (their ops run natively): %s", calls[:5])
    return optimized


def load_and_freeze(saved_model_dir: str, tags: Sequence[str], signature_key: str,
                    freeze: bool = True) -> FrozenModel:
    """SavedModel + tags + signature key -> frozen (unless told not to), optimized model."""
    loaded, func = load_signature(saved_model_dir, tags, signature_key)
    return freeze_function(func, signature_key, freeze, root=loaded)
