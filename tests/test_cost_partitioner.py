"""The cost-aware partitioner: keeps, merges or drops segments by a pluggable cost model."""

from __future__ import annotations

import gc
import logging

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import export_module
from tests.test_partitioners import RNG, WIDTH, _check_outputs, _convert, engines
from tests.test_partitioners import chain_dir as chain_dir  # noqa: F401 - the fixture
from tftrt.compiler import cost_partitioner, costs, segment
from tftrt.plugins import hookimpl, reset_registry
from tftrt.plugins.partitioning import CostModel, SegmentCost

W1, W2 = (RNG.standard_normal((WIDTH, WIDTH)).astype(np.float32) / 4 for _ in range(2))


def two_branches(x):
    """Two supported branches between ops without converters: union-find keeps them apart."""
    h = tf.math.bessel_i0e(x)
    a = tf.nn.relu(tf.matmul(h, W1))
    b = tf.nn.tanh(tf.matmul(h, W2))
    return {"y": tf.math.atan2(a, b + 2.0)}


@pytest.fixture(scope="module")
def branches_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("models") / "two_branches")
    return export_module(path, two_branches, [tf.TensorSpec([2, WIDTH], tf.float32)])


@pytest.fixture(autouse=True)
def _restore_registry():
    yield
    reset_registry()


def _cost(path: str, **options):
    return _convert(path, minimum_segment_size=1, partitioner="cost",
                    partitioner_options=options)


def test_the_analytic_model_drops_segments_that_do_not_pay(chain_dir: str) -> None:
    conv, fn = _cost(chain_dir, cost_model="analytic", cost_constants={"call_ms": 100.0})
    assert engines(conv) == []
    conv, fn = _cost(chain_dir, cost_model="analytic", cost_constants={"call_ms": 0.0})
    assert len(engines(conv)) == 3
    _check_outputs(fn)


def test_independent_segments_merge_when_one_call_pays(branches_dir: str) -> None:
    union_find, _ = _convert(branches_dir, minimum_segment_size=1)
    assert len(engines(union_find)) == 2
    # with a cheap engine call the two merge: one call instead of two
    conv, fn = _cost(branches_dir, cost_model="analytic",
                     cost_constants={"call_ms": 0.05, "native_op_ms": 0.03,
                                     "engine_op_ms": 0.0, "copy_bytes_per_ms": 1e12})
    (name,) = engines(conv)
    (fdef,) = conv.converted_graph_def.library.function
    assert sorted(n.op for n in fdef.node_def if n.op in ("MatMul", "Relu", "Tanh")) == [
        "MatMul", "MatMul", "Relu", "Tanh"]
    x = RNG.standard_normal((2, WIDTH)).astype(np.float32)
    np.testing.assert_allclose(fn(x)["y"].numpy(), two_branches(x)["y"].numpy(), rtol=1e-5,
                               atol=1e-6)


def test_merge_candidates_are_independent_and_share_a_neighbour() -> None:
    from tests.test_segment import make_ir

    # x -> n -> {a1 -> a2, b1 -> b2} -> m ; c hangs off a2 (a path a -> c: not independent)
    edges = [("x", "n"), ("n", "a1"), ("a1", "a2"), ("n", "b1"), ("b1", "b2"), ("a2", "m"),
             ("b2", "m"), ("a2", "k"), ("k", "c")]
    g = make_ir(edges, {"a1", "a2", "b1", "b2", "c"})
    groups = [frozenset({"a1", "a2"}), frozenset({"b1", "b2"}), frozenset({"c"})]
    assert cost_partitioner.merge_candidates(g, groups) == [(0, 1)]


def test_measured_model_times_the_candidates(chain_dir: str, caplog) -> None:
    x = RNG.standard_normal((2, WIDTH)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="tftrt"):
        conv, fn = _cost(chain_dir, inputs=lambda: iter([[x]]))
    assert any("cost partitioner (measured model): 3 candidate segments" in r.getMessage()
               for r in caplog.records)
    assert conv._conversion.partitioner == "cost"
    _check_outputs(fn)
    from tftrt.compiler import measure

    gc.collect()
    assert measure._BUILT == {}  # the candidates' engines went with the partitioning


def test_measured_costs_are_sane(chain_dir: str) -> None:
    from tftrt.compiler import measure
    from tftrt.compiler.freeze import load_and_freeze
    from tftrt.compiler.pipeline import CompileOptions, compile_model
    from tftrt.plugins.manager import get_registry
    from tftrt.plugins.partitioning import PartitionRequest

    frozen = load_and_freeze(chain_dir, ["serve"], "serving_default")
    marked = compile_model(frozen, CompileOptions(minimum_segment_size=-1), get_registry(),
                           get_registry().backend("onnxruntime")).ir
    x = RNG.standard_normal((2, WIDTH)).astype(np.float32)
    request = PartitionRequest(marked, 1, 0, get_registry().backend("onnxruntime"),
                               get_registry(), sample_inputs=[{frozen.inputs[0].ref: x}])
    groups = segment.cluster(marked)
    result = measure.estimate(request, [s.nodes for s in groups], costs.DEFAULT_CONSTANTS)
    assert len(result) == 3
    for cost in result:
        assert 0.0 <= cost.native_ms < 50 and 0.0 < cost.engine_ms < 50
        assert cost.boundary_ms > 0.0


def test_without_inputs_measured_falls_back_to_analytic(chain_dir: str, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tftrt"):
        _cost(chain_dir, cost_model="measured")
    assert any("cost model 'measured' cannot be used: it needs sample inputs" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(ValueError, match="unknown cost model 'guess'"):
        _cost(chain_dir, cost_model="guess")
    with pytest.raises(ValueError, match="unknown cost_constants \\['speed'\\]"):
        _cost(chain_dir, cost_model="analytic", cost_constants={"speed": 1})


def test_a_plugin_cost_model_drives_the_partitioner(chain_dir: str) -> None:
    """A cost model that says only segments holding a MatMul pay."""
    def estimate(request, segments):
        return [SegmentCost(1.0 if any(request.graph.nodes[n]["op"] == "MatMul" for n in s)
                            else 0.0, 0.1, 0.1) for s in segments]

    class Plugin:
        @hookimpl
        def tftrt_cost_models(self):
            return [CostModel("matmuls-only", estimate)]

    reset_registry(Plugin())
    conv, fn = _cost(chain_dir, cost_model="matmuls-only")
    assert len(engines(conv)) == 3
    conv, fn = _cost(chain_dir, cost_model="matmuls-only", min_gain_ms=5.0)
    assert engines(conv) == []


def test_a_model_that_times_whole_partitions_has_the_last_word(chain_dir: str, caplog) -> None:
    """Segments that lose one by one may win together (boundaries do not add up): the
    partitioner keeps the partition the model's ``compare`` times fastest."""
    seen: list[list[int]] = []

    def estimate(request, segments):
        return [SegmentCost(1.0, 0.5, 1.0) for _ in segments]  # each loses 0.5 ms alone

    def compare(request, partitions):
        seen.append([len(p) for p in partitions])
        return [10.0 - len(p) for p in partitions]  # the more engines, the faster

    class Plugin:
        @hookimpl
        def tftrt_cost_models(self):
            return [CostModel("together", estimate, compare=compare),
                    CostModel("barely", estimate,  # all engines 1% faster: a tie
                              compare=lambda request, parts: [10.0 - 0.033 * len(p)
                                                              for p in parts]),
                    CostModel("cannot-tell", estimate, compare=lambda request, parts: None)]

    reset_registry(Plugin())
    with caplog.at_level(logging.INFO, logger="tftrt"):
        conv, fn = _cost(chain_dir, cost_model="together")
    assert len(engines(conv)) == 3
    assert seen == [[0, 3]]  # kept (= none), faster as engines (= all candidates)
    assert any("keeping faster as engines" in r.getMessage() for r in caplog.records)
    _check_outputs(fn)
    for tie in ("barely", "cannot-tell"):
        conv, _ = _cost(chain_dir, cost_model=tie)
        assert engines(conv) == [], tie


def test_measured_compare_times_whole_partitions(chain_dir: str) -> None:
    from tftrt.compiler import measure
    from tftrt.compiler.freeze import load_and_freeze
    from tftrt.compiler.pipeline import CompileOptions, compile_model
    from tftrt.plugins.manager import get_registry
    from tftrt.plugins.partitioning import PartitionRequest

    frozen = load_and_freeze(chain_dir, ["serve"], "serving_default")
    marked = compile_model(frozen, CompileOptions(minimum_segment_size=-1), get_registry(),
                           get_registry().backend("onnxruntime")).ir
    x = RNG.standard_normal((2, WIDTH)).astype(np.float32)
    backend = get_registry().backend("onnxruntime")
    fed = PartitionRequest(marked, 1, 0, backend, get_registry(),
                           sample_inputs=[{frozen.inputs[0].ref: x}],
                           inputs=tuple(t.ref for t in frozen.inputs),
                           outputs=tuple(t.ref for t in frozen.outputs))
    groups = [s.nodes for s in segment.cluster(marked)]
    times = measure.compare(fed, [[], groups[:1], groups])
    assert times is not None and len(times) == 3
    assert all(0.0 < t < 1000.0 for t in times)
    unfed = PartitionRequest(marked, 1, 0, backend, get_registry(),
                             sample_inputs=[{frozen.inputs[0].ref: x}])
    assert measure.compare(unfed, [[], groups]) is None  # no signature tensors to time
