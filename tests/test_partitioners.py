"""Partitioners as plugins: choosing one, the shared validator, and the engine cap's report."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import export_module
from tests.test_segment import contracted_is_acyclic, make_ir, random_dags
from tftrt import trt_convert as trt
from tftrt.compiler import partition, segment
from tftrt.errors import PartitionError
from tftrt.plugins import hookimpl, reset_registry
from tftrt.plugins.partitioning import Partitioner
from tftrt.report.nonconversion import format_nonconversion_report
from tftrt.specs import ENGINE_OP

RNG = np.random.default_rng(0)
WIDTH = 16
WEIGHTS = [RNG.standard_normal((WIDTH, WIDTH)).astype(np.float32) / 4 for _ in range(3)]


def cut_chain(x):
    """Three MatMul+Relu blocks, each followed by BesselI0e (which has no converter)."""
    h = x
    for w in WEIGHTS:
        h = tf.math.bessel_i0e(tf.nn.relu(tf.matmul(h, w) + 0.5))
    return {"y": h}


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("models") / "cut_chain")
    return export_module(path, cut_chain, [tf.TensorSpec([2, WIDTH], tf.float32)])


@pytest.fixture(autouse=True)
def _restore_registry():
    yield
    reset_registry()


def _plugin(name: str, fn, cls: str = "TestPartitionerPlugin"):
    """A plugin object providing one partitioner called ``name``."""
    def tftrt_partitioners(self):
        return [Partitioner(name, fn)]

    return type(cls, (), {"tftrt_partitioners": hookimpl(tftrt_partitioners)})()


def singletons(request):
    """Every supported node alone: always acyclic, many more segments than union-find."""
    return [{n} for n, d in request.graph.nodes(data=True) if d.get("supported")]


def engines(conv: trt.TrtGraphConverterV2) -> list[str]:
    return [n.name for n in conv.converted_graph_def.node if n.op == ENGINE_OP]


def _convert(path: str, **kwargs) -> tuple[trt.TrtGraphConverterV2, object]:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, backend="onnxruntime", **kwargs)
    return conv, conv.convert()


def _check_outputs(fn) -> None:
    x = RNG.standard_normal((2, WIDTH)).astype(np.float32)
    np.testing.assert_allclose(fn(x)["y"].numpy(), cut_chain(x)["y"].numpy(), rtol=1e-5,
                               atol=1e-6)


def test_default_is_union_find(chain_dir: str) -> None:
    conv, fn = _convert(chain_dir, minimum_segment_size=1)
    assert conv._conversion.partitioner == "union-find"
    assert conv._conversion.partitioner_plugin in ("partitioners",
                                                   "tftrt.compiler.partitioners")
    g = conv._conversion.ir
    assert len(engines(conv)) == len(segment.segment_graph(g, 1)) == 3
    _check_outputs(fn)


def test_a_plugin_partitioner_changes_the_segments(chain_dir: str) -> None:
    reset_registry(_plugin("singletons", singletons))
    union_find, _ = _convert(chain_dir, minimum_segment_size=1)
    conv, fn = _convert(chain_dir, minimum_segment_size=1, partitioner="singletons")
    # MatMul, AddV2, Relu per block: one engine each instead of one per block
    assert len(engines(union_find)) == 3 and len(engines(conv)) == 9
    assert conv._conversion.partitioner == "singletons"
    _check_outputs(fn)
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    assert "[*] Partitioner: singletons (plugin TestPartitionerPlugin)" in lines[0]


def test_the_environment_chooses_the_partitioner(chain_dir: str, monkeypatch) -> None:
    reset_registry(_plugin("singletons", singletons))
    monkeypatch.setenv("TFTRT_PARTITIONER", "singletons")
    conv, _ = _convert(chain_dir, minimum_segment_size=1)
    assert len(engines(conv)) == 9
    conv, _ = _convert(chain_dir, minimum_segment_size=1, partitioner="union-find")
    assert len(engines(conv)) == 3


def test_an_unknown_partitioner_is_refused(chain_dir: str) -> None:
    with pytest.raises(ValueError, match=r"unknown partitioner 'nope'.*'cost'.*'union-find'"):
        trt.TrtGraphConverterV2(input_saved_model_dir=chain_dir, partitioner="nope")


def _blocks(request) -> list[set[str]]:
    """The union-find clusters, largest first."""
    return sorted((set(s.nodes) for s in segment.cluster(request.graph)), key=len,
                  reverse=True)


def test_a_partition_with_a_cycle_is_refused_naming_the_plugin(chain_dir: str) -> None:
    def across_the_native_op(request):
        first, second, *rest = sorted(_blocks(request), key=lambda s: min(
            request.graph.nodes[n]["index"] for n in s))
        return [first | second, *rest]  # BesselI0e runs between them: a cycle

    reset_registry(_plugin("cyclic", across_the_native_op, "CyclicPlugin"))
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=chain_dir, partitioner="cyclic",
                                   backend="onnxruntime")
    with pytest.raises(PartitionError, match=r"partitioner 'cyclic' of plugin 'CyclicPlugin'"
                                             r".*cycle through native nodes.*BesselI0e"):
        conv.convert()


@pytest.mark.parametrize(("make", "message"), [
    (lambda r: [{n for n, d in r.graph.nodes(data=True) if d["op"] == "BesselI0e"}],
     "cannot go into an engine: Op type BesselI0e is not supported"),
    (lambda r: [_blocks(r)[0], _blocks(r)[0]], "is in segments 0 and 1"),
    (lambda r: [{"no_such_node"}], "'no_such_node', which is not a node of the graph"),
    (lambda r: 42, "returned int, not groups of node names"),
    (lambda r: ["MatMul"], "segment 0 is 'MatMul', not a collection of node names"),
    (lambda r: 1 / 0, "failed: ZeroDivisionError"),
])
def test_bad_partitions_are_refused(chain_dir: str, make, message: str) -> None:
    reset_registry(_plugin("bad", make, "BadPlugin"))
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=chain_dir, partitioner="bad",
                                   backend="onnxruntime")
    with pytest.raises(PartitionError, match="partitioner 'bad' of plugin 'BadPlugin'") as err:
        conv.convert()
    assert message in str(err.value)


def test_minimum_segment_size_and_the_cap_apply_to_every_partitioner(chain_dir: str,
                                                                     monkeypatch) -> None:
    reset_registry(_plugin("singletons", singletons))
    conv, _ = _convert(chain_dir, minimum_segment_size=2, partitioner="singletons")
    assert engines(conv) == []
    monkeypatch.setenv("TF_TRT_MAX_ALLOWED_ENGINES", "4")
    conv, fn = _convert(chain_dir, minimum_segment_size=1, partitioner="singletons")
    assert len(engines(conv)) == 4
    _check_outputs(fn)


def test_the_engine_cap_counts_its_nodes_in_the_report(chain_dir: str, monkeypatch) -> None:
    monkeypatch.setenv("TF_TRT_MAX_ALLOWED_ENGINES", "1")
    conv, fn = _convert(chain_dir, minimum_segment_size=1)
    assert len(engines(conv)) == 1
    counts = conv._conversion.nonconversion
    reason = segment.cap_reason(1)
    # two blocks (MatMul, AddV2, Relu each) stayed native because of the cap
    assert {op: c[reason] for op, c in counts.items() if reason in c} == {
        "MatMul": 2, "AddV2": 2, "Relu": 2}
    assert counts["BesselI0e"] == {"Op type BesselI0e is not supported.": 3}
    text = format_nonconversion_report(counts, detailed=True)
    assert f"[Count: 2x] {reason}" in text
    _check_outputs(fn)


# -- the validator on random graphs ------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(random_dags())
def test_union_find_always_passes_the_validator(g) -> None:
    segs = partition.validate(g, [s.nodes for s in segment.cluster(g)], "union-find")
    assert contracted_is_acyclic(g, segs)


@settings(max_examples=300, deadline=None)
@given(random_dags(), st.randoms(use_true_random=False))
def test_the_validator_refuses_exactly_the_cyclic_partitions(g, rnd) -> None:
    supported = sorted(n for n, d in g.nodes(data=True) if d["supported"])
    groups: dict[int, set[str]] = {}
    for n in supported:
        if rnd.random() < 0.8:
            groups.setdefault(rnd.randrange(3), set()).add(n)
    candidate = [segment.Segment(frozenset(s)) for s in groups.values()]
    if contracted_is_acyclic(g, candidate):
        assert len(partition.validate(g, groups.values(), "random")) == len(groups)
    else:
        with pytest.raises(PartitionError, match="random: segment .* cycle"):
            partition.validate(g, groups.values(), "random")


def test_loop_back_edges_are_the_graph_own_cycle() -> None:
    """v1 control flow: the cycle through NextIteration existed before any partition."""
    edges = [("in", "merge"), ("merge", "a"), ("a", "b"), ("b", "next"), ("next", "merge"),
             ("b", "out")]
    ops = {"merge": "Merge", "next": "NextIteration"}
    g = make_ir(edges, {"a", "b"}, ops)
    assert not nx.is_directed_acyclic_graph(g)
    assert len(partition.validate(g, [{"a", "b"}], "loop")) == 1
