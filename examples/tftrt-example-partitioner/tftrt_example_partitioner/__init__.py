"""An example tftrt research plugin: the ``chains`` partitioner and an ``Atan2`` layer.

tftrt finds this module through the ``tftrt`` entry point declared in
``pyproject.toml`` and calls its ``tftrt_partitioners``, ``tftrt_op_converters``
and ``tftrt_plugin_layers`` hooks.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from tftrt.converters import LoweringContext, NodeInfo, converter
from tftrt.plugins import hookimpl
from tftrt.plugins.layers import DOMAIN, LayerNode, PluginLayer
from tftrt.plugins.partitioning import Partitioner, PartitionRequest
from tftrt.plugins.types import OpConverter

__version__ = "0.1.0"


# -- the partitioner ---------------------------------------------------------------

def chains(request: PartitionRequest) -> list[set[str]]:
    """Linear chains of supported nodes, in topological order.

    A node joins the segment whose last node is one of its producers when that
    producer has no other consumer (the longest such segment if several). A
    chain's only edges out leave its last node, so a node joining through the
    last node's only edge can never close a cycle: tftrt's validator agrees.
    """
    g = request.graph
    segment_of: dict[str, int] = {}
    segments: list[list[str]] = []
    for v in nx.topological_sort(g):
        if not g.nodes[v].get("supported"):
            continue
        joinable = [segment_of[u] for u in set(g.predecessors(v))
                    if u in segment_of and segments[segment_of[u]][-1] == u
                    and set(g.successors(u)) == {v}]
        if joinable:
            k = max(joinable, key=lambda i: (len(segments[i]), -i))
            segments[k].append(v)
        else:
            k = len(segments)
            segments.append([v])
        segment_of[v] = k
    return [set(s) for s in segments]


# -- the plugin layer ------------------------------------------------------------------

@converter("Atan2", dtypes=(np.float32,), restrictions="float32")
def convert_atan2(ctx: LoweringContext, node: NodeInfo) -> None:
    """TensorFlow's Atan2 as one ``tftrt.Atan2`` node (y, x) -> angle."""
    out = ctx.node("Atan2", [ctx.input(node, 0), ctx.input(node, 1)], domain=DOMAIN,
                   hint=node.name)
    ctx.set_output(node, 0, out)


def decompose_atan2(ctx: LoweringContext, node: LayerNode) -> list[str]:
    """atan2(y, x) = atan(y / x), plus or minus pi for x < 0, and 0 at (0, 0)."""
    y, x = node.inputs

    def c(value: float) -> str:
        return ctx.const(np.float32(value), "c")

    base = ctx.node("Atan", [ctx.node("Div", [y, x])])
    shift = ctx.node("Where", [ctx.node("GreaterOrEqual", [y, c(0.0)]), c(math.pi),
                               c(-math.pi)])
    angle = ctx.node("Where", [ctx.node("Less", [x, c(0.0)]),
                               ctx.node("Add", [base, shift]), base])
    origin = ctx.node("And", [ctx.node("Equal", [x, c(0.0)]), ctx.node("Equal", [y, c(0.0)])])
    return [ctx.node("Where", [origin, c(0.0), angle], hint=node.name)]


ATAN2 = PluginLayer("Atan2", decompose_atan2,
                    description="TensorFlow's Atan2 (no ONNX operator computes it)")


# -- the hooks ---------------------------------------------------------------------------

@hookimpl
def tftrt_partitioners() -> list[Partitioner]:
    """The partitioners this plugin provides."""
    return [Partitioner("chains", chains, "linear chains of supported ops")]


@hookimpl
def tftrt_op_converters() -> list[OpConverter]:
    """The converters this plugin provides."""
    return [convert_atan2]


@hookimpl
def tftrt_plugin_layers() -> list[PluginLayer]:
    """The plugin layers this plugin provides."""
    return [ATAN2]
