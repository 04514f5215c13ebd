"""Choosing a partitioner, checking what it returns, and the after-segmentation passes.

Whatever partitioner runs, its groups go through one validator (only supported
nodes, each in at most one segment, no cycle through native nodes) and the same
refinements (``segment.refine``: constant outputs, inputless segments,
``minimum_segment_size``, the engine cap). A bad partition is refused, never
repaired, with an error naming the partitioner (or pass) and its plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import networkx as nx

from tftrt.compiler import segment
from tftrt.compiler.ir import IR
from tftrt.compiler.passes import run_passes
from tftrt.compiler.segment import Segment
from tftrt.env import get as env_value
from tftrt.errors import PartitionError
from tftrt.plugins.manager import Registry
from tftrt.plugins.partitioning import DEFAULT_PARTITIONER, ENV_PARTITIONER, PartitionRequest
from tftrt.plugins.passes import AFTER_SEGMENTATION, SEGMENT_ATTR, PassContext, PassRecord

log = logging.getLogger("tftrt.segment")

# v1 control flow's loop back edges leave these nodes; cycles through them are the graph's
# own, not a partition's.
_BACK_EDGE_OPS = frozenset({"NextIteration", "RefNextIteration"})


def partitioner_name(name: str | None, env: Mapping[str, str] | None = None) -> str:
    """The partitioner to use: ``name``, else $TFTRT_PARTITIONER, else union-find."""
    chosen = name if name is not None else env_value(ENV_PARTITIONER, env) or ""
    if not isinstance(chosen, str):
        raise ValueError(f"partitioner must be a string, got {chosen!r}")
    return chosen or DEFAULT_PARTITIONER


def validate(g: IR, groups: Iterable[Iterable[str]], who: str) -> list[Segment]:
    """``groups`` as segments, if they meet the partition contract; else PartitionError.

    ``who`` names the producer in the error (e.g. "partitioner 'x' of plugin 'y'").
    """
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Iterable):
        raise PartitionError(f"{who} returned {type(groups).__name__}, not groups of "
                             f"node names")
    owner: dict[str, int] = {}
    segments = []
    for k, group in enumerate(groups):
        if isinstance(group, (str, bytes)) or not isinstance(group, Iterable):
            raise PartitionError(f"{who}: segment {k} is {group!r}, not a collection of "
                                 f"node names")
        nodes = frozenset(group)
        for n in sorted(nodes, key=str):
            if not isinstance(n, str) or n not in g:
                raise PartitionError(f"{who}: segment {k} holds {n!r}, which is not a node "
                                     f"of the graph")
            if not g.nodes[n].get("supported"):
                raise PartitionError(f"{who}: segment {k} holds node {n!r} "
                                     f"({g.nodes[n]['op']}), which cannot go into an engine: "
                                     f"{g.nodes[n].get('reason')}")
            if n in owner:
                raise PartitionError(f"{who}: node {n!r} is in segments {owner[n]} and {k}")
            owner[n] = k
        if nodes:
            segments.append(Segment(nodes))
    cycle = _cycle_through_segment(g, owner)
    if cycle is not None:
        k, path = cycle
        raise PartitionError(f"{who}: segment {k} would form a cycle through native nodes "
                             f"({' -> '.join(path)}): a path leaves the segment and comes "
                             f"back into it")
    return segments


def _cycle_through_segment(g: IR, owner: Mapping[str, int]) -> tuple[int, list[str]] | None:
    """(segment, a path of nodes) if contracting the segments closes a new cycle."""
    def node(n: str) -> object:
        return ("seg", owner[n]) if n in owner else n

    dag = nx.DiGraph()
    dag.add_nodes_from(node(n) for n in g.nodes)
    for u, v in g.edges():
        if g.nodes[u]["op"] in _BACK_EDGE_OPS:
            continue
        a, b = node(u), node(v)
        if a != b:
            dag.add_edge(a, b)
    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        return None
    segs = [u for u, _ in cycle if isinstance(u, tuple)]
    if not segs:  # the graph's own cycle (not v1 control flow): a partition cannot cure it
        return _new_cycle_in_cyclic_graph(g, dag, owner)

    def label(x: object) -> str:
        return f"segment {x[1]}" if isinstance(x, tuple) else str(x)

    return segs[0][1], [label(u) for u, _ in cycle] + [label(cycle[0][0])]


def _new_cycle_in_cyclic_graph(g: IR, dag: nx.DiGraph, owner: Mapping[str, int]
                               ) -> tuple[int, list[str]] | None:
    """In a graph with cycles of its own: a segment whose members were not mutually
    reachable but sit on one cycle of the contracted graph."""
    plain = nx.DiGraph(g.edges())
    plain.add_nodes_from(g.nodes)
    component = {n: i for i, comp in enumerate(nx.strongly_connected_components(plain))
                 for n in comp}
    for comp in nx.strongly_connected_components(dag):
        for x in comp:
            if isinstance(x, tuple) and len(comp) > 1:
                members = [n for n, k in owner.items() if k == x[1]]
                if len({component[n] for n in members}) > 1:
                    return x[1], sorted(str(c) for c in comp)[:8]
    return None


@dataclass
class PartitionResult:
    """The segments to lower, who made them, and what the refinements and passes did."""

    segments: list[Segment]
    partitioner: str
    plugin: str
    capped: frozenset[str] = frozenset()
    max_engines: int = 0
    passes: list[PassRecord] = field(default_factory=list)


def partition(request: PartitionRequest, name: str, registry: Registry,
              pass_ctx: PassContext) -> tuple[IR, PartitionResult]:
    """Run partitioner ``name`` and the after-segmentation passes on ``request.graph``.

    Returns the IR (as the passes left it) and the checked, refined segments.
    """
    g = request.graph
    part, plugin = registry.partitioner(name)
    who = f"partitioner {name!r} of plugin {plugin!r}"
    try:
        groups = part.partition(request)
        if isinstance(groups, Iterable) and not isinstance(groups, (str, bytes, list)):
            groups = list(groups)  # a generator's own errors surface here, with its name
    except PartitionError:
        raise
    except Exception as exc:
        raise PartitionError(f"{who} failed: {type(exc).__name__}: {exc}") from exc
    refined = segment.refine(g, validate(g, groups, who), request.minimum_segment_size,
                             request.max_engines)
    result = PartitionResult(refined.segments, name, plugin, refined.capped, request.max_engines)
    if not registry.graph_passes(AFTER_SEGMENTATION):
        return g, result
    g = g.copy()
    for k, seg in enumerate(refined.segments):
        for n in seg.nodes:
            g.nodes[n][SEGMENT_ATTR] = k
    g, result.passes = run_passes(g, pass_ctx, registry)
    groups_by_id: dict[object, set[str]] = {}
    for n, d in g.nodes(data=True):
        if d.get(SEGMENT_ATTR) is not None:
            groups_by_id.setdefault(d[SEGMENT_ATTR], set()).add(n)
    passes = ", ".join(repr(r.name) for r in result.passes)
    after = validate(g, groups_by_id.values(), f"after_segmentation passes {passes}")
    again = segment.refine(g, after, request.minimum_segment_size, request.max_engines)
    result.segments, result.capped = again.segments, refined.capped | again.capped
    return g, result
