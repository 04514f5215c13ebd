"""Load a TF2 SavedModel's objects without the functions only its TF1 saver calls.

``tf.saved_model.save`` also writes ``__inference__traced_save``/``_traced_restore``
functions, for TF1 loaders, whose size grows with the number of variables
(ResNet50: 3,900 of the library's 5,400 nodes). ``tf.saved_model.load`` turns every
function of the library into a graph, those too, though no object of the object
graph refers to them: a third of the load. Here the library keeps the functions
the object graph reaches (and every gradient function), and the object graph is
loaded as ``tf.saved_model.load`` loads it.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import function_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2


def _roots(meta: meta_graph_pb2.MetaGraphDef) -> set[str]:
    """The functions the object graph names, and every gradient function."""
    graph = meta.object_graph_def
    names = set(graph.concrete_functions)
    for node in graph.nodes:
        kind = node.WhichOneof("kind")
        if kind == "function":
            names.update(node.function.concrete_functions)
        elif kind == "bare_concrete_function":
            names.add(node.bare_concrete_function.concrete_function_name)
    lib = meta.graph_def.library
    names.update(g.gradient_func for g in lib.gradient)
    names.update(g.gradient_func for g in lib.registered_gradients)
    return names


def _references(fdef: function_pb2.FunctionDef, library: Collection[str]) -> Iterable[str]:
    """Every library function ``fdef`` may call: by op name, by function attribute, or by
    a gradient it names."""
    for node in fdef.node_def:
        if node.op in library:
            yield node.op
        for attr in node.attr.values():
            kind = attr.WhichOneof("value")
            if kind == "func":
                yield attr.func.name
            elif kind == "list":
                yield from (f.name for f in attr.list.func)
    for attr in fdef.attr.values():
        if attr.WhichOneof("value") == "func":
            yield attr.func.name


def drop_unreachable_functions(meta: meta_graph_pb2.MetaGraphDef) -> int:
    """Remove from ``meta``'s library (in place) the functions no object reaches; returns
    how many were removed."""
    lib = meta.graph_def.library
    by_name = {f.signature.name: f for f in lib.function}
    keep: set[str] = set()
    stack = [n for n in _roots(meta) if n in by_name]
    while stack:
        name = stack.pop()
        if name in keep or name not in by_name:
            continue
        keep.add(name)
        stack.extend(n for n in _references(by_name[name], by_name) if n not in keep)
    if len(keep) == len(by_name):
        return 0
    kept = [f for f in lib.function if f.signature.name in keep]
    del lib.function[:]
    for fdef in kept:  # add+CopyFrom: extend copies as slowly, one message at a time
        lib.function.add().CopyFrom(fdef)
    return len(by_name) - len(keep)


def _checkpoint_variables(path: str) -> dict[int, tuple[str, Any]] | None:
    """Object id -> (checkpoint key, dtype) of each variable the SavedModel's checkpoint
    holds, or None when it holds anything else (a table, slots, a registered saver,
    a partitioned variable) or cannot be read."""
    try:
        from tensorflow.core.protobuf import trackable_object_graph_pb2
        from tensorflow.python.saved_model import path_helpers

        reader = tf.train.load_checkpoint(path_helpers.get_variables_path(path))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
        dtypes = reader.get_variable_to_dtype_map()
    except Exception:  # no checkpoint, or one of another layout: TensorFlow restores
        return None
    out = {}
    for node_id, node in enumerate(graph.nodes):
        if node.slot_variables or node.registered_saver.name:
            return None
        for attr in node.attributes:
            if attr.name != "VARIABLE_VALUE" or len(node.attributes) != 1 \
                    or attr.checkpoint_key not in dtypes:
                return None
            out[node_id] = (attr.checkpoint_key, dtypes[attr.checkpoint_key])
    return out


def _restore_read(loader: Any, path: str, signature_key: str,
                  variables: dict[int, tuple[str, Any]]) -> bool:
    """Restore, of the checkpoint's ``variables``, those signature ``signature_key``
    reads; False when it reads a variable not among them (nothing restored) or one
    does not restore."""
    from tensorflow.python.saved_model import path_helpers

    root = loader.get(0)
    func = dict(getattr(root, "signatures", {}) or {}).get(signature_key)
    if func is None:
        return False
    captured = {id(t) for t in func.captured_inputs}
    wanted = []
    for node_id, (key, dtype) in variables.items():
        obj = loader.get(node_id)
        handle = getattr(obj, "handle", None)
        if handle is not None and id(handle) in captured:
            wanted.append((obj, key, dtype))
            captured.discard(id(handle))
    if any(t.dtype == tf.resource and _is_variable_handle(t) for t in func.captured_inputs
           if id(t) in captured):
        return False
    prefix = path_helpers.get_variables_path(path)
    try:
        for var, key, dtype in wanted:  # one at a time: one weight in flight
            (value,) = tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[key],
                                            shape_and_slices=[""], dtypes=[dtype])
            var.assign(value)
            del value
    except (tf.errors.OpError, ValueError, TypeError):  # TensorFlow's restore says why
        return False
    return True


def _is_variable_handle(t: Any) -> bool:
    """Whether resource tensor ``t`` is a variable's (handle data says its dtype)."""
    data = getattr(t, "_handle_data", None)
    return bool(data is not None and data.is_set and data.shape_and_type)


def load(path: str, tags: Sequence[str],
         proto: saved_model_pb2.SavedModel | None = None, debug_info: Any = None,
         signature_key: str | None = None) -> Any:
    """``tf.saved_model.load(path, tags)``, without the functions no object reaches.

    ``proto`` (and its ``debug_info``), when given, is the parsed SavedModel; it is
    edited. SavedModels this does not apply to (TF1, several MetaGraphs) and
    TensorFlow versions whose loader differs load with ``tf.saved_model.load``.

    With ``signature_key``, of a checkpoint that holds variables only, only the
    variables that signature reads are restored (a Keras export saves every weight
    twice, under ``variables`` and ``_all_variables``; restoring both reads twice the
    weights): the others stay uninitialized, and only that signature may be called.
    """
    try:
        from tensorflow.python.checkpoint import checkpoint_options
        from tensorflow.python.framework import ops
        from tensorflow.python.saved_model import load as tf_load
        from tensorflow.python.saved_model import load_options, loader_impl

        loader_class = tf_load.Loader
    except (ImportError, AttributeError):
        return tf.saved_model.load(path, tags=list(tags))
    if proto is None:
        proto, debug_info = loader_impl.parse_saved_model_with_debug_info(path)
    if (len(proto.meta_graphs) != 1 or not proto.meta_graphs[0].HasField("object_graph_def")
            or sys.byteorder == "big"
            or set(tags) != set(proto.meta_graphs[0].meta_info_def.tags)):
        return tf.saved_model.load(path, tags=list(tags))
    meta = proto.meta_graphs[0]
    drop_unreachable_functions(meta)
    variables = _checkpoint_variables(path) if signature_key is not None else None
    with ops.init_scope():
        try:
            loader = loader_class(meta.object_graph_def, proto, path,
                                  checkpoint_options.CheckpointOptions(),
                                  load_options.LoadOptions(
                                      experimental_skip_checkpoint=variables is not None),
                                  None)
        except TypeError:  # a loader of another signature: TensorFlow's own way
            return tf.saved_model.load(path, tags=list(tags))
        if variables is not None and not _restore_read(loader, path, signature_key,
                                                       variables):
            loader._restore_checkpoint()  # noqa: SLF001 - all of it, as TensorFlow does
        root = loader.get(0)
        root.graph_debug_info = loader.adjust_debug_info_func_names(debug_info)
    root.tensorflow_version = meta.meta_info_def.tensorflow_version
    root.tensorflow_git_version = meta.meta_info_def.tensorflow_git_version
    return root
