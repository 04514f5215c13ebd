"""Segmentation passes on hand-made IRs: union-find clustering, cycles, size and cap."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tftrt.compiler import segment
from tftrt.compiler.ir import IR


def make_ir(edges: list[tuple[str, str]], supported: set[str], ops: dict[str, str] | None = None,
            control: set[tuple[str, str]] = frozenset()) -> IR:
    g = nx.MultiDiGraph()
    names = sorted({n for e in edges for n in e})
    for i, n in enumerate(names):
        g.add_node(n, op=(ops or {}).get(n, "Relu"), index=i, supported=n in supported)
    pos: dict[str, int] = {}
    for u, v in edges:
        k = pos.get(v, 0)
        pos[v] = k + 1
        is_ctrl = (u, v) in control
        g.add_edge(u, v, src_slot=-1 if is_ctrl else 0, dst_slot=-1 if is_ctrl else k,
                   control=is_ctrl, pos=k)
    return g


def contracted_is_acyclic(g: IR, segments: list[segment.Segment]) -> bool:
    owner = {n: f"seg{i}" for i, s in enumerate(segments) for n in s.nodes}
    cg = nx.DiGraph()
    for u, v in g.edges():
        a, b = owner.get(u, u), owner.get(v, v)
        if a != b:
            cg.add_edge(a, b)
    return nx.is_directed_acyclic_graph(cg)


def test_chain_becomes_one_segment() -> None:
    g = make_ir([("in", "a"), ("a", "b"), ("b", "c"), ("c", "out")], {"a", "b", "c"})
    segs = segment.cluster(g)
    assert [set(s.nodes) for s in segs] == [{"a", "b", "c"}]


def test_merge_that_would_close_a_cycle_is_refused() -> None:
    # a -> b -> c and a -> n -> c with n native: {a, b, c} would need n both after a
    # and before c, i.e. a cycle a-segment -> n -> a-segment.
    edges = [("in", "a"), ("a", "b"), ("b", "c"), ("a", "n"), ("n", "c"), ("c", "out")]
    g = make_ir(edges, {"a", "b", "c"})
    segs = segment.cluster(g)
    assert not any({"a", "c"} <= set(s.nodes) for s in segs)
    assert contracted_is_acyclic(g, segs)
    assert sorted(sorted(s.nodes) for s in segs) == [["a"], ["b", "c"]]


def test_control_edges_count_for_cycles() -> None:
    edges = [("in", "a"), ("a", "c"), ("a", "n"), ("n", "c")]
    g = make_ir(edges, {"a", "c"}, control={("n", "c")})
    segs = segment.cluster(g)
    assert contracted_is_acyclic(g, segs)
    assert all(len(s.nodes) == 1 for s in segs)


def test_diamond_of_supported_nodes_merges() -> None:
    edges = [("in", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "out")]
    g = make_ir(edges, {"a", "b", "c", "d"})
    assert [set(s.nodes) for s in segment.cluster(g)] == [{"a", "b", "c", "d"}]


def test_minimum_segment_size_counts_effective_nodes() -> None:
    ops = {"a": "Identity", "b": "Relu", "c": "Snapshot"}
    g = make_ir([("in", "a"), ("a", "b"), ("b", "c"), ("c", "out")], {"a", "b", "c"}, ops)
    segs = segment.cluster(g)
    assert segs[0].effective_size(g) == 1
    assert segment.filter_small(g, segs, 2) == []
    assert segment.filter_small(g, segs, 1) == segs


def test_max_engines_keeps_the_largest_in_order() -> None:
    # three chains separated by native nodes: sizes 1, 3, 2
    edges = [("in", "a1"), ("a1", "x1"), ("x1", "b1"), ("b1", "b2"), ("b2", "b3"),
             ("b3", "x2"), ("x2", "c1"), ("c1", "c2")]
    g = make_ir(edges, {"a1", "b1", "b2", "b3", "c1", "c2"})
    segs = segment.order(g, segment.cluster(g))
    assert [len(s.nodes) for s in segs] == [1, 3, 2]
    kept = segment.cap_engines(g, segs, 2)
    assert [len(s.nodes) for s in kept] == [3, 2]
    assert segment.cap_engines(g, segs, 0) == segs


def test_max_engines_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_TRT_MAX_ALLOWED_ENGINES", "7")
    assert segment.max_engines_from_env() == 7
    monkeypatch.setenv("TF_TRT_MAX_ALLOWED_ENGINES", "seven")
    with pytest.raises(ValueError, match="TF_TRT_MAX_ALLOWED_ENGINES"):
        segment.max_engines_from_env()
    monkeypatch.delenv("TF_TRT_MAX_ALLOWED_ENGINES")
    assert segment.max_engines_from_env() == 20


def test_const_is_never_a_segment_output() -> None:
    ops = {"k": "Const"}
    g = make_ir([("in", "a"), ("k", "a"), ("k", "out")], {"a", "k"}, ops)
    segs = segment.drop_const_outputs(g, segment.cluster(g))
    assert [set(s.nodes) for s in segs] == [{"a"}]


def test_segment_without_inputs_is_dropped() -> None:
    ops = {"k": "Const"}
    g = make_ir([("k", "a"), ("a", "out")], {"k", "a"}, ops)
    assert segment.drop_inputless(g, segment.cluster(g)) == []


class _PlainSearch:
    """The plain contraction: a full path search per merge, as an oracle."""

    def __init__(self, cg: nx.DiGraph) -> None:
        self.cg = cg

    def other_path(self, src: str, dst: str) -> bool:
        return any(nx.has_path(self.cg, src, p) for p in self.cg.predecessors(dst) if p != src)

    def contract(self, src: str, dst: str) -> None:
        self.cg.add_edges_from((p, src) for p in self.cg.predecessors(dst) if p != src)
        self.cg.add_edges_from((src, s) for s in self.cg.successors(dst) if s != src)
        self.cg.remove_node(dst)


@st.composite
def random_dags(draw) -> IR:
    n = draw(st.integers(2, 24))
    names = [f"n{i:02d}" for i in range(n)]
    pairs = [(names[i], names[j]) for i in range(n) for j in range(i + 1, n)]
    edges = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=60, unique=True))
    supported = set(draw(st.lists(st.sampled_from(names), max_size=n)))
    control = set(draw(st.lists(st.sampled_from(edges), max_size=4)))
    return make_ir(edges, supported, control=control)


@settings(max_examples=300, deadline=None)
@given(random_dags())
def test_pruned_cycle_check_matches_the_plain_search(g: IR) -> None:
    segs = segment.cluster(g)
    assert sorted(map(sorted, (s.nodes for s in segs))) == \
        sorted(map(sorted, (s.nodes for s in segment.cluster(g, _PlainSearch))))
    assert contracted_is_acyclic(g, segs)
