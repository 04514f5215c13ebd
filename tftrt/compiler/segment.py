"""Segmentation passes: candidate nodes -> engine segments.

``cluster`` is TF-TRT's union-find contraction (never creating a cycle through
native nodes); the other passes refine its result. Each takes the IR and
segments and returns segments.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

from tftrt.compiler import ir as irmod
from tftrt.compiler.ir import IR

log = logging.getLogger("tftrt")

PASS_THROUGH_OPS = frozenset({"Identity", "Snapshot", "StopGradient"})
DEFAULT_MAX_ENGINES = 20


@dataclass(frozen=True)
class Segment:
    nodes: frozenset[str]

    def effective_size(self, g: IR) -> int:
        return sum(1 for n in self.nodes if g.nodes[n]["op"] not in PASS_THROUGH_OPS)

    def first_index(self, g: IR) -> int:
        return min(g.nodes[n]["index"] for n in self.nodes)


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root


def _post_order(g: IR) -> list[str]:
    """TF-TRT's visiting order: DFS post-order from the roots, children by name."""
    order: list[str] = []
    seen: set[str] = set()
    roots = sorted(n for n in g.nodes if g.in_degree(n) == 0)
    for root in roots:
        stack = [(root, iter(sorted(set(g.successors(root)))))]
        seen.add(root)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                order.append(node)
                stack.pop()
            elif child not in seen:
                seen.add(child)
                stack.append((child, iter(sorted(set(g.successors(child))))))
    return order


def cluster(g: IR) -> list[Segment]:
    """Union-find contraction of supported nodes; a merge never closes a cycle.

    Visiting nodes from the outputs toward the inputs, each supported node
    absorbs the supported consumers it can reach by an edge, unless another
    path leads from it to that consumer (merging would then create a cycle).
    """
    candidates = {n for n, d in g.nodes(data=True) if d.get("supported")}
    # Contracted graph over cluster roots; data and control edges both count.
    cg = nx.DiGraph()
    cg.add_nodes_from(g.nodes)
    cg.add_edges_from((u, v) for u, v in g.edges() if u != v)
    uf = _UnionFind(g.nodes)

    def creates_cycle(src: str, dst: str) -> bool:
        # Another path src -> ... -> dst exists iff src is reachable backwards from
        # a predecessor of dst other than src.
        stack = [p for p in cg.predecessors(dst) if p != src]
        seen = set(stack)
        while stack:
            n = stack.pop()
            if n == src:
                return True
            for p in cg.predecessors(n):
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return False

    for node in _post_order(g):
        if node not in candidates:
            continue
        src = uf.find(node)
        changed = True
        while changed:
            changed = False
            for dst in sorted(cg.successors(src)):
                if dst not in candidates or creates_cycle(src, dst):
                    continue
                _contract(cg, src, dst)
                uf.parent[dst] = src
                changed = True
                break
    groups: dict[str, set[str]] = {}
    for n in candidates:
        groups.setdefault(uf.find(n), set()).add(n)
    return [Segment(frozenset(m)) for m in groups.values()]


def _contract(cg: nx.DiGraph, src: str, dst: str) -> None:
    for p in list(cg.predecessors(dst)):
        if p != src:
            cg.add_edge(p, src)
    for s in list(cg.successors(dst)):
        if s != src:
            cg.add_edge(src, s)
    cg.remove_node(dst)


def drop_const_outputs(g: IR, segments: Iterable[Segment]) -> list[Segment]:
    """Remove constant-like nodes whose value leaves the segment: never an engine output."""
    out = []
    for seg in segments:
        nodes = set(seg.nodes)
        for n in list(nodes):
            if irmod.is_const_like(g, n) and any(
                    not d["control"] and dst not in nodes
                    for _, dst, d in g.out_edges(n, data=True)):
                nodes.discard(n)
        if nodes:
            out.append(Segment(frozenset(nodes)))
    return out


def drop_inputless(g: IR, segments: Iterable[Segment]) -> list[Segment]:
    """Drop segments with no data input from outside (all-constant subgraphs)."""
    out = []
    for seg in segments:
        has_input = any(
            not d["control"] and src not in seg.nodes and not irmod.is_const_like(g, src)
            for n in seg.nodes if not irmod.is_const_like(g, n)
            for src, _, d in g.in_edges(n, data=True))
        if has_input:
            out.append(seg)
        else:
            log.warning("Segment has no inputs (possible constfold failure); kept native: %s",
                        sorted(seg.nodes)[:3])
    return out


def filter_small(g: IR, segments: Iterable[Segment], minimum_segment_size: int) -> list[Segment]:
    """Keep segments with at least ``minimum_segment_size`` effective (non pass-through) nodes."""
    return [s for s in segments
            if s.effective_size(g) > 0 and s.effective_size(g) >= minimum_segment_size]


def max_engines_from_env(env: Mapping[str, str] | None = None) -> int:
    value = (os.environ if env is None else env).get("TF_TRT_MAX_ALLOWED_ENGINES", "")
    if not value.strip():
        return DEFAULT_MAX_ENGINES
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"TF_TRT_MAX_ALLOWED_ENGINES must be an integer, got {value!r}") from None


def cap_engines(g: IR, segments: list[Segment], max_engines: int) -> list[Segment]:
    """Keep the ``max_engines`` largest segments (by effective size), in their original order."""
    if max_engines <= 0:
        log.warning("TF_TRT_MAX_ALLOWED_ENGINES=%d: no limit on the number of engines",
                    max_engines)
        return segments
    if len(segments) <= max_engines:
        return segments
    ranked = sorted(range(len(segments)), key=lambda i: -segments[i].effective_size(g))
    keep = sorted(ranked[:max_engines])
    log.warning("%d segments found; only the %d largest are converted "
                "(TF_TRT_MAX_ALLOWED_ENGINES)", len(segments), max_engines)
    return [segments[i] for i in keep]


def order(g: IR, segments: Iterable[Segment]) -> list[Segment]:
    """Segments in the order of their first node in the GraphDef."""
    return sorted(segments, key=lambda s: s.first_index(g))


def segment_graph(g: IR, minimum_segment_size: int = 3, max_engines: int | None = None
                  ) -> list[Segment]:
    """All segmentation passes, in TF-TRT's order, on a capability-marked IR."""
    segs = cluster(g)
    segs = drop_const_outputs(g, segs)
    segs = drop_inputless(g, segs)
    segs = order(g, filter_small(g, segs, minimum_segment_size))
    return cap_engines(g, segs, max_engines_from_env() if max_engines is None else max_engines)
