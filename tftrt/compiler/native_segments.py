"""``TF_TRT_EXPERIMENTAL_FEATURES=remove_native_segments``: a converted graph without the
native segments of its engines, and the SavedModel signature that stands in for them.

Each engine's native segment holds a copy of its weights, so dropping them makes
the saved model much smaller; the price is that plain TensorFlow cannot run it
(its signature raises, naming the reason) and engines have no native fallback.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tftrt.specs import ENGINE_OP, SignatureTensor, segment_op_counts

PLAIN_TF_MESSAGE = ("this model was saved by tftrt without native segments "
                    "(TF_TRT_EXPERIMENTAL_FEATURES=remove_native_segments): plain TensorFlow "
                    "cannot run its engines; load it with tftrt.load")


def segment_ops(graph_def: graph_pb2.GraphDef) -> dict[str, dict[str, int]]:
    """Engine name -> op type -> count in its native segment (reports read it once the
    segments are gone)."""
    return {node.name: dict(sorted(segment_op_counts(graph_def, node)[1].items()))
            for node in graph_def.node if node.op == ENGINE_OP}


def without_native_segments(graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """A copy of ``graph_def`` whose engine nodes have no ``segment_func`` and whose library
    keeps only the functions something else still calls."""
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph_def)
    for node in out.node:
        if node.op == ENGINE_OP:
            node.attr["segment_func"].func.name = ""
    library = {f.signature.name: f for f in out.library.function}
    used: set[str] = set()
    todo = [n for n in out.node]
    while todo:
        node = todo.pop()
        for name in _called(node):
            if name in library and name not in used:
                used.add(name)
                todo.extend(library[name].node_def)
    kept = [f for f in out.library.function if f.signature.name in used]
    del out.library.function[:]
    out.library.function.extend(kept)
    grads = [g for g in out.library.gradient if g.function_name in used]
    del out.library.gradient[:]
    out.library.gradient.extend(grads)
    return out


def _called(node) -> list[str]:
    names = [node.op]
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        elif value.HasField("list"):
            names.extend(f.name for f in value.list.func)
    return names


def refusing_signature(inputs: Sequence[SignatureTensor], outputs: Sequence[SignatureTensor]):
    """A tf.function with the model's signature that raises ``PLAIN_TF_MESSAGE`` when run."""
    specs = [tf.TensorSpec(t.shape, tf.as_dtype(t.dtype), name=t.name) for t in inputs]

    @tf.function(input_signature=specs)
    def serve(*args):
        never = tf.equal(tf.size(args[0]), -1) if args else tf.constant(False)
        with tf.control_dependencies([tf.debugging.Assert(never, [PLAIN_TF_MESSAGE])]):
            return {t.name: tf.zeros([0 if d is None else d for d in (t.shape or [0])],
                                     tf.as_dtype(t.dtype)) for t in outputs}

    return serve
