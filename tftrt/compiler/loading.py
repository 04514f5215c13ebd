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


def load(path: str, tags: Sequence[str],
         proto: saved_model_pb2.SavedModel | None = None, debug_info: Any = None) -> Any:
    """``tf.saved_model.load(path, tags)``, without the functions no object reaches.

    ``proto`` (and its ``debug_info``), when given, is the parsed SavedModel; it is
    edited. SavedModels this does not apply to (TF1, several MetaGraphs) and
    TensorFlow versions whose loader differs load with ``tf.saved_model.load``.
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
    with ops.init_scope():
        try:
            loader = loader_class(meta.object_graph_def, proto, path,
                                  checkpoint_options.CheckpointOptions(),
                                  load_options.LoadOptions(), None)
        except TypeError:  # a loader of another signature: TensorFlow's own way
            return tf.saved_model.load(path, tags=list(tags))
        root = loader.get(0)
        root.graph_debug_info = loader.adjust_debug_info_func_names(debug_info)
    root.tensorflow_version = meta.meta_info_def.tensorflow_version
    root.tensorflow_git_version = meta.meta_info_def.tensorflow_git_version
    return root
