"""Control flow whose functions do not convert entirely: lowered to Switch/Merge
(Enter/Exit/NextIteration for loops), so that the ops of its body or branches are
candidates for engines like any other node while the control flow stays native.

A ``While``/``If`` whose functions convert entirely stays functional: its converter
makes it an ONNX ``Loop``/``If`` inside an engine (``converters/control_flow.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
from tensorflow.python.grappler import tf_optimizer

from tftrt.compiler import functions
from tftrt.compiler import ir as irmod
from tftrt.compiler.ir import IR

log = logging.getLogger("tftrt")


def _lower(graph_def, names: Iterable[str], fetches: Iterable[str]):
    """``graph_def`` with the control-flow nodes ``names`` lowered by Grappler."""
    marked = functions.set_control_flow_lowering(graph_def, True, names)
    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(marked)
    for ref in fetches:
        meta.collection_def["train_op"].node_list.value.append(ref)
    config = config_pb2.ConfigProto()
    rw = config.graph_options.rewrite_options
    rw.optimizers.append("function")
    rw.min_graph_nodes = -1
    rw.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    return tf_optimizer.OptimizeGraph(config, meta, graph_id=b"tf_graph")


def lower_unconvertible(g: IR, reasons: Mapping[str, str | None], fetches: Iterable[str],
                        variable_values: Mapping[str, np.ndarray] | None = None) -> IR:
    """``g`` with each functional control-flow node whose reason is not None lowered.

    ``reasons`` maps control-flow nodes to why they do not convert (None: they do);
    ``fetches`` are the tensors the graph must keep computing.
    """
    names = [n for n, why in reasons.items() if why is not None]
    if not names:
        return g
    for n in names:
        log.info("%s (%s) stays native with its body lowered into the graph: %s", n,
                 g.nodes[n]["op"], reasons[n])
    lowered = functions.drop_colocation(_lower(irmod.to_graph_def(g), names, fetches))
    out = irmod.from_graph_def(lowered, variable_values=variable_values)
    for key in ("functions",):
        if key in g.graph:
            out.graph[key] = g.graph[key]
    for n, d in g.nodes(data=True):  # facts earlier passes attached to nodes
        if n in out and "table_range" in d:
            out.nodes[n]["table_range"] = d["table_range"]
    return out


def control_flow_nodes(g: IR) -> list[str]:
    return [n for n, d in g.nodes(data=True) if d["op"] in functions.CONTROL_FLOW_OPS]
