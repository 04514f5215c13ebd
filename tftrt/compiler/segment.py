"""Segmentation passes: candidate nodes -> engine segments.

``cluster`` is TF-TRT's union-find contraction (never creating a cycle through
native nodes); the other passes refine its result. Each takes the IR and
segments and returns segments.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

import tftrt.env as env
from tftrt.compiler import ir as irmod
from tftrt.compiler.ir import IR

log = logging.getLogger("tftrt.segment")

PASS_THROUGH_OPS = frozenset({"Identity", "Snapshot", "StopGradient"})
DEFAULT_MAX_ENGINES = env.VARIABLES["TF_TRT_MAX_ALLOWED_ENGINES"].default


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


def cluster(g: IR, contraction: type | None = None) -> list[Segment]:
    """Union-find contraction of supported nodes; a merge never closes a cycle.

    Visiting nodes from the outputs toward the inputs, each supported node
    absorbs the supported consumers it can reach by an edge, unless another
    path leads from it to that consumer (merging would then create a cycle).
    ``contraction`` (tests only) replaces the contracted graph's implementation.
    """
    candidates = {n for n, d in g.nodes(data=True) if d.get("supported")}
    # Contracted graph over cluster roots; data and control edges both count.
    cg = nx.DiGraph()
    cg.add_nodes_from(g.nodes)
    cg.add_edges_from((u, v) for u, v in g.edges() if u != v)
    order = (contraction or _TopoOrder)(cg)
    uf = _UnionFind(g.nodes)
    debug = log.isEnabledFor(logging.DEBUG)
    refused: set[tuple[str, str]] = set()
    for node in _post_order(g):
        if node not in candidates:
            continue
        src = uf.find(node)
        changed = True
        while changed:
            changed = False
            for dst in sorted(cg.successors(src)):
                if dst not in candidates:
                    continue
                if order.other_path(src, dst):
                    if debug and (src, dst) not in refused:
                        refused.add((src, dst))
                        log.debug("segment cut: %s stays out of the segment of %s: another "
                                  "path joins them through nodes outside it (merging would "
                                  "close a cycle)", dst, src)
                    continue
                order.contract(src, dst)
                uf.parent[dst] = src
                changed = True
                break
    groups: dict[str, set[str]] = {}
    for n in candidates:
        groups.setdefault(uf.find(n), set()).add(n)
    return [Segment(frozenset(m)) for m in groups.values()]


class _TopoOrder:
    """A contracted graph with a topological rank per node, kept valid as edges are added.

    Ranks prune the path searches to the nodes between the two ends (a node on a
    path ``u -> ... -> v`` ranks between them), so a merge costs the size of the
    region it touches rather than of the graph. An added edge that goes against the
    order reorders just that region (Pearce and Kelly's dynamic topological sort).
    On a graph with cycles (v1 control flow) the searches are not pruned.
    """

    def __init__(self, cg: nx.DiGraph) -> None:
        self.cg = cg
        try:
            self.rank: dict[str, float] | None = {
                n: i for i, n in enumerate(nx.topological_sort(cg))}
        except nx.NetworkXUnfeasible:
            self.rank = None

    def _r(self, n: str) -> float:
        return 0 if self.rank is None else self.rank[n]

    def _reach(self, starts: Iterable[str], step, keep) -> set[str]:
        stack = [n for n in starts if keep(n)]
        seen = set(stack)
        while stack:
            for m in step(stack.pop()):
                if m not in seen and keep(m):
                    seen.add(m)
                    stack.append(m)
        return seen

    def other_path(self, src: str, dst: str) -> bool:
        """Whether a path ``src -> ... -> dst`` exists besides the edge ``src -> dst``."""
        limit = math.inf if self.rank is None else self.rank[dst]
        starts = [s for s in self.cg.successors(src) if s != dst]
        reached = self._reach(starts, self.cg.successors, lambda n: self._r(n) < limit)
        return any(self.cg.has_edge(n, dst) for n in reached)

    def contract(self, src: str, dst: str) -> None:
        """Merge ``dst`` into ``src`` (an edge ``src -> dst`` with no other path)."""
        for s in list(self.cg.successors(dst)):
            if s != src:
                self.cg.add_edge(src, s)  # rank src < rank dst < rank s: still ordered
        for p in list(self.cg.predecessors(dst)):
            if p != src:
                self._add_edge(p, src)
        self.cg.remove_node(dst)
        if self.rank is not None:
            del self.rank[dst]

    def _add_edge(self, u: str, v: str) -> None:
        self.cg.add_edge(u, v)
        if self.rank is None or self.rank[u] < self.rank[v]:
            return
        lo, hi = self.rank[v], self.rank[u]
        fwd = self._reach([v], self.cg.successors, lambda n: self.rank[n] < hi)
        bwd = self._reach([u], self.cg.predecessors, lambda n: self.rank[n] > lo)
        assert not fwd & bwd, "contraction closed a cycle"
        moved = sorted(bwd, key=self.rank.__getitem__) + sorted(fwd, key=self.rank.__getitem__)
        for n, r in zip(moved, sorted(self.rank[n] for n in moved), strict=True):
            self.rank[n] = r


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
                log.debug("segment cut: constant %s leaves its segment (an engine never "
                          "outputs a constant)", n)
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
    kept = []
    for s in segments:
        size = s.effective_size(g)
        if size > 0 and size >= minimum_segment_size:
            kept.append(s)
        else:
            log.debug("segment dropped: %d effective nodes (%s) is below "
                      "minimum_segment_size=%d", size, _first(s), minimum_segment_size)
    return kept


def _first(seg: Segment, n: int = 3) -> str:
    names = sorted(seg.nodes)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def max_engines_from_env(environ: Mapping[str, str] | None = None) -> int:
    return env.get("TF_TRT_MAX_ALLOWED_ENGINES", environ)


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
    for i in ranked[max_engines:]:
        log.debug("segment dropped: %d effective nodes (%s) is not among the %d largest "
                  "(TF_TRT_MAX_ALLOWED_ENGINES)", segments[i].effective_size(g),
                  _first(segments[i]), max_engines)
    return [segments[i] for i in keep]


def order(g: IR, segments: Iterable[Segment]) -> list[Segment]:
    """Segments in the order of their first node in the GraphDef."""
    return sorted(segments, key=lambda s: s.first_index(g))


def cap_reason(max_engines: int) -> str:
    """The non-conversion report's reason for the nodes of segments the engine cap dropped."""
    return (f"Dropped by the engine cap: only the {max_engines} largest segments become "
            f"engines (TF_TRT_MAX_ALLOWED_ENGINES={max_engines})")


@dataclass(frozen=True)
class Refined:
    """Segments after the shared refinements, and the nodes the engine cap kept out."""

    segments: list[Segment]
    capped: frozenset[str]  # nodes of the segments the engine cap dropped


def refine(g: IR, segments: Iterable[Segment], minimum_segment_size: int,
           max_engines: int) -> Refined:
    """What every partitioner's segments go through, in TF-TRT's order: constants leaving
    a segment stay outside, inputless segments go, then the size filter and the cap."""
    segs = drop_const_outputs(g, segments)
    segs = drop_inputless(g, segs)
    segs = order(g, filter_small(g, segs, minimum_segment_size))
    kept = cap_engines(g, segs, max_engines)
    capped = frozenset(n for s in segs if s not in kept for n in s.nodes)
    if log.isEnabledFor(logging.INFO):
        log.info("%d segments, effective sizes %s", len(kept),
                 [s.effective_size(g) for s in kept])
    return Refined(kept, capped)


def segment_graph(g: IR, minimum_segment_size: int = 3, max_engines: int | None = None
                  ) -> list[Segment]:
    """Union-find clustering and the shared refinements, on a capability-marked IR."""
    cap = max_engines_from_env() if max_engines is None else max_engines
    return refine(g, cluster(g), minimum_segment_size, cap).segments
