"""The cost-aware partitioner (``partitioner="cost"``): every engine must pay for itself.

It starts from union-find's clusters (with constant outputs and inputless
clusters already removed, as the shared refinements would), costs each with the
chosen cost model, merges independent clusters that share a neighbour when one
engine call instead of two pays (a merge of clusters with no path between them
cannot close a cycle), and keeps the clusters whose engine time plus boundary
time beats their native time. With an engine cap it keeps the largest gains. A
cost model that can time whole partitions (``measured``) then checks that choice
against every candidate faster as an engine, every candidate and none, and the
fastest whole graph wins (within 3%, the one with fewer engines).

Options (``partitioner_options=``): ``cost_model`` (a registered name; default
``measured`` when sample ``inputs`` are given, else ``analytic``), ``inputs``
(a callable yielding inputs, as ``build()``'s ``input_fn``), ``cost_constants``
(overrides of the analytic model's constants), ``min_gain_ms`` (default 0).
"""

from __future__ import annotations

import itertools
import logging
import math

import networkx as nx

from tftrt.compiler import segment
from tftrt.compiler.ir import IR
from tftrt.plugins.partitioning import CostModel, PartitionRequest, SegmentCost

log = logging.getLogger("tftrt.segment")

MAX_MERGE_ROUNDS = 3
MAX_PAIRS = 64  # merge candidates costed per round
TIE = 0.03  # whole-graph times this close to the fastest count as ties (timing noise)


def cost_model(request: PartitionRequest) -> CostModel:
    """The cost model the options ask for, or the analytic one when it cannot serve."""
    name = request.options.get("cost_model") or \
        ("measured" if request.sample_inputs else "analytic")
    model, _ = request.registry.cost_model(name)
    why = model.unusable(request)
    if why is not None:
        log.warning("cost model %r cannot be used: %s; using 'analytic'", name, why)
        model, _ = request.registry.cost_model("analytic")
    return model


def _contracted(g: IR, groups: list[frozenset[str]]) -> nx.DiGraph:
    owner = {n: ("seg", k) for k, s in enumerate(groups) for n in s}
    cg = nx.DiGraph()
    cg.add_nodes_from(owner.get(n, n) for n in g.nodes)
    for u, v in g.edges():
        a, b = owner.get(u, u), owner.get(v, v)
        if a != b:
            cg.add_edge(a, b)
    return cg


def merge_candidates(g: IR, groups: list[frozenset[str]]) -> list[tuple[int, int]]:
    """Pairs of groups with a common neighbour outside both and no path between them."""
    cg = _contracted(g, groups)
    pairs = []
    for a, b in itertools.combinations(range(len(groups)), 2):
        na, nb = ("seg", a), ("seg", b)
        shared = (set(cg.predecessors(na)) & set(cg.predecessors(nb))) | \
            (set(cg.successors(na)) & set(cg.successors(nb)))
        if shared and not nx.has_path(cg, na, nb) and not nx.has_path(cg, nb, na):
            pairs.append((a, b))
    return pairs


def _merge(request: PartitionRequest, model: CostModel, groups: list[frozenset[str]],
           costs: dict[frozenset[str], SegmentCost]) -> list[frozenset[str]]:
    """Greedily merge pairs whose one engine gains more than the two apart."""
    def worth(s: frozenset[str]) -> float:
        return max(costs[s].gain_ms, 0.0)

    for _ in range(MAX_MERGE_ROUNDS):
        pairs = merge_candidates(request.graph, groups)[:MAX_PAIRS]
        if not pairs:
            break
        unions = [groups[a] | groups[b] for a, b in pairs]
        fresh = [u for u in unions if u not in costs]
        costs.update(zip(fresh, model.estimate(request, fresh), strict=True))
        scored = sorted(((costs[u].gain_ms - worth(groups[a]) - worth(groups[b]), a, b, u)
                         for (a, b), u in zip(pairs, unions, strict=True)),
                        key=lambda t: -t[0])
        used: set[int] = set()
        merged = []
        for better, a, b, union in scored:
            if better > 0 and a not in used and b not in used:
                used.update((a, b))
                merged.append(union)
        if not merged:
            break
        groups = [s for k, s in enumerate(groups) if k not in used] + merged
        log.info("cost partitioner: merged %d pairs of segments", len(merged))
    return groups


def partition(request: PartitionRequest) -> list[frozenset[str]]:
    """The segments that pay for themselves by the chosen cost model."""
    g = request.graph
    model = cost_model(request)
    clusters = segment.drop_inputless(g, segment.drop_const_outputs(g, segment.cluster(g)))
    groups = [s.nodes for s in clusters]
    costs = dict(zip(groups, model.estimate(request, groups), strict=True))
    groups = _merge(request, model, groups, costs)
    threshold = float(request.options.get("min_gain_ms", 0.0))
    kept = sorted((s for s in groups if costs[s].gain_ms > threshold),
                  key=lambda s: -costs[s].gain_ms)
    if request.max_engines > 0:
        kept = kept[:request.max_engines]
    log.info("cost partitioner (%s model): %d candidate segments, %d kept; estimated gain "
             "%.3f ms per call", model.name, len(groups), len(kept),
             sum(costs[s].gain_ms for s in kept))
    return _checked(request, model, groups, costs, kept)


def _checked(request: PartitionRequest, model: CostModel, groups: list[frozenset[str]],
             costs: dict[frozenset[str], SegmentCost], kept: list[frozenset[str]]
             ) -> list[frozenset[str]]:
    """The fastest, timed whole by the model, of the kept segments and the alternatives:
    every candidate faster as an engine than natively (boundaries aside), every
    candidate that builds, and none; of those within ``TIE`` of the fastest, the one
    with the fewest engines. Per-segment gains assume that boundary costs add up; on a
    small CPU they do not, so the choice is checked whole."""
    if model.compare is None:
        return kept

    def ranked(segments) -> list[frozenset[str]]:
        segments = sorted(segments, key=lambda s: -costs[s].gain_ms)
        return segments[:request.max_engines] if request.max_engines > 0 else segments

    builds = [s for s in groups if math.isfinite(costs[s].engine_ms)]
    options = {"kept": kept,
               "faster as engines": ranked(s for s in builds
                                           if costs[s].engine_ms < costs[s].native_ms),
               "all candidates": ranked(builds), "none": []}
    unique: dict[frozenset[frozenset[str]], str] = {}
    for label, segments in options.items():
        unique.setdefault(frozenset(segments), label)
    if len(unique) < 2:
        return kept
    labels = list(unique.values())
    times = model.compare(request, [options[label] for label in labels])
    if times is None:
        return kept
    # Within timing noise of the fastest, fewer engines win: fewer boundaries, less to build.
    fastest = min(times)
    best = min((k for k, t in enumerate(times) if t <= fastest * (1 + TIE)),
               key=lambda k: (len(options[labels[k]]), times[k]))
    log.info("cost partitioner: whole graph, ms per call: %s; keeping %s",
             ", ".join(f"{label} ({len(options[label])} engines) {t:.3f}"
                       for label, t in zip(labels, times, strict=True)), labels[best])
    return options[labels[best]]
