"""Graph passes from plugins: each runs at its point, and the summary shows what it did."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_partitioners import RNG, WEIGHTS, WIDTH, _convert, cut_chain, engines
from tests.test_partitioners import chain_dir as chain_dir  # noqa: F401 - the fixture
from tftrt.errors import PartitionError
from tftrt.plugins import PluginConflictError, hookimpl, reset_registry
from tftrt.plugins.passes import (
    AFTER_IMPORT,
    AFTER_SEGMENTATION,
    BEFORE_SEGMENTATION,
    SEGMENT_ATTR,
    GraphPass,
)


@pytest.fixture(autouse=True)
def _restore_registry():
    yield
    reset_registry()


def _plugin(*passes: GraphPass, cls: str = "PassPlugin"):
    def tftrt_graph_passes(self):
        return list(passes)

    return type(cls, (), {"tftrt_graph_passes": hookimpl(tftrt_graph_passes)})()


def bessel_to_abs(g, ctx):
    """Rewrites BesselI0e (no converter) into Abs: the graph becomes one engine."""
    assert ctx.point == AFTER_IMPORT and "supported" not in next(iter(g.nodes.values()))
    for _, d in g.nodes(data=True):
        if d["op"] == "BesselI0e":
            d["op"] = "Abs"
            d["node_def"].op = "Abs"
    return g


def keep_matmuls_native(g, ctx):
    assert ctx.point == BEFORE_SEGMENTATION
    for _, d in g.nodes(data=True):
        if d["op"] == "MatMul":
            d["supported"], d["reason"] = False, "kept native by keep_matmuls_native"
    return g


def drop_last_segment(g, ctx):
    last = max(d[SEGMENT_ATTR] for _, d in g.nodes(data=True) if SEGMENT_ATTR in d)
    out = g.copy()
    for _, d in out.nodes(data=True):
        if d.get(SEGMENT_ATTR) == last:
            del d[SEGMENT_ATTR]
    return out


def _summary(conv) -> str:
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    return lines[0]


def test_an_after_import_pass_rewrites_the_graph(chain_dir: str) -> None:
    reset_registry(_plugin(GraphPass("bessel_to_abs", AFTER_IMPORT, bessel_to_abs)))
    conv, fn = _convert(chain_dir, minimum_segment_size=1)
    assert len(engines(conv)) == 1  # no op without a converter is left
    text = _summary(conv)
    assert "[*] Graph passes run: 1" in text
    assert "\t- after_import: bessel_to_abs (plugin PassPlugin): 18 -> 18 nodes " \
           "(0 added, 0 removed, 3 changed)" in text
    assert "\t- Abs: 3x" in text
    x = RNG.standard_normal((2, WIDTH)).astype(np.float32)
    want = x
    for w in WEIGHTS:
        want = np.abs(np.maximum(want @ w + 0.5, 0))
    np.testing.assert_allclose(fn(x)["y"].numpy(), want, rtol=1e-5, atol=1e-6)


def test_a_before_segmentation_pass_changes_what_is_supported(chain_dir: str) -> None:
    reset_registry(_plugin(GraphPass("keep_matmuls_native", BEFORE_SEGMENTATION,
                                     keep_matmuls_native)))
    conv, fn = _convert(chain_dir, minimum_segment_size=1)
    assert len(engines(conv)) == 3 and all(
        "MatMul" not in f.signature.name and not any(n.op == "MatMul" for n in f.node_def)
        for f in conv.converted_graph_def.library.function)
    assert conv._conversion.nonconversion["MatMul"] == {
        "kept native by keep_matmuls_native": 3}
    assert "before_segmentation: keep_matmuls_native (plugin PassPlugin): 18 -> 18 nodes " \
           "(0 added, 0 removed, 3 changed)" in _summary(conv)
    x = RNG.standard_normal((2, WIDTH)).astype(np.float32)
    np.testing.assert_allclose(fn(x)["y"].numpy(), cut_chain(x)["y"].numpy(), rtol=1e-5)


def test_an_after_segmentation_pass_can_drop_a_segment(chain_dir: str) -> None:
    reset_registry(_plugin(GraphPass("drop_last", AFTER_SEGMENTATION, drop_last_segment)))
    conv, fn = _convert(chain_dir, minimum_segment_size=1)
    assert len(engines(conv)) == 2
    # the last block's MatMul, AddV2, Relu and its weights' Const left their segment
    assert "after_segmentation: drop_last (plugin PassPlugin): 18 -> 18 nodes " \
           "(0 added, 0 removed, 4 changed)" in _summary(conv)
    x = RNG.standard_normal((2, WIDTH)).astype(np.float32)
    np.testing.assert_allclose(fn(x)["y"].numpy(), cut_chain(x)["y"].numpy(), rtol=1e-5)


def test_passes_run_by_order_then_name(chain_dir: str) -> None:
    seen: list[str] = []

    def note(name):
        def run(g, ctx):
            seen.append(f"{ctx.point}:{name}")
            return g
        return run

    reset_registry(_plugin(GraphPass("b", AFTER_IMPORT, note("b")),
                           GraphPass("a", AFTER_IMPORT, note("a")),
                           GraphPass("first", AFTER_IMPORT, note("first"), order=-10),
                           GraphPass("late", AFTER_SEGMENTATION, note("late")),
                           GraphPass("mid", BEFORE_SEGMENTATION, note("mid"))))
    conv, _ = _convert(chain_dir, minimum_segment_size=1)
    assert seen == ["after_import:first", "after_import:a", "after_import:b",
                    "before_segmentation:mid", "after_segmentation:late"]
    assert [r.name for r in conv._conversion.passes] == ["first", "a", "b", "mid", "late"]


def test_an_after_segmentation_pass_that_closes_a_cycle_is_refused(chain_dir: str) -> None:
    def join_first_and_last(g, ctx):
        segs = sorted({d[SEGMENT_ATTR] for _, d in g.nodes(data=True) if SEGMENT_ATTR in d})
        for _, d in g.nodes(data=True):
            if d.get(SEGMENT_ATTR) == segs[-1]:
                d[SEGMENT_ATTR] = segs[0]
        return g

    reset_registry(_plugin(GraphPass("join", AFTER_SEGMENTATION, join_first_and_last)))
    with pytest.raises(PartitionError, match="after_segmentation passes 'join'.*cycle"):
        _convert(chain_dir, minimum_segment_size=1)


def test_a_failing_or_misbehaving_pass_is_named(chain_dir: str) -> None:
    reset_registry(_plugin(GraphPass("boom", AFTER_IMPORT, lambda g, ctx: 1 / 0)))
    with pytest.raises(PartitionError, match="graph pass 'boom' of plugin 'PassPlugin' at "
                                             "after_import failed: ZeroDivisionError"):
        _convert(chain_dir)
    reset_registry(_plugin(GraphPass("none", AFTER_IMPORT, lambda g, ctx: None)))
    with pytest.raises(PartitionError, match="'none'.*returned NoneType, not the IR"):
        _convert(chain_dir)


def test_registration_errors() -> None:
    with pytest.raises(ValueError, match="names the point 'sometime'"):
        reset_registry(_plugin(GraphPass("p", "sometime", lambda g, ctx: g)))
    twice = GraphPass("p", AFTER_IMPORT, lambda g, ctx: g)
    with pytest.raises(PluginConflictError, match="graph pass .*'p'.* is registered by"):
        reset_registry(_plugin(twice, cls="One"), _plugin(twice, cls="Two"))


def test_without_passes_the_summary_is_tf_trt_s(chain_dir: str) -> None:
    conv, _ = _convert(chain_dir, minimum_segment_size=1)
    text = _summary(conv)
    assert "Graph passes" not in text and "Partitioner" not in text
    assert text.rstrip().splitlines()[-1].startswith("[*] % of OPs Converted: ")
