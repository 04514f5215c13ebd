"""End-to-end conversion of small graphs: engines, deny list, cycles, fallback."""

from __future__ import annotations

import logging

import networkx as nx
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import export_module, max_rel_err
from tftrt import trt_convert as trt
from tftrt.compiler import ir
from tftrt.errors import EngineError

RNG = np.random.default_rng(1)
W1 = RNG.standard_normal((16, 32)).astype(np.float32) * 0.3
W2 = RNG.standard_normal((32, 8)).astype(np.float32) * 0.3
B1 = RNG.standard_normal(32).astype(np.float32)


def two_block_mlp(x):
    h = tf.nn.relu(tf.matmul(x, W1) + B1)
    h = tf.tanh(h)  # the op the deny-list test blocks
    return tf.nn.relu(tf.matmul(h, W2)) * 2.0


def side_branch(x):
    a = tf.nn.relu(tf.matmul(x, W1))
    b = tf.sigmoid(a) * 3.0
    n = tf.math.bessel_i0e(a)  # no converter: native
    return b + n


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("m") / "mlp"), two_block_mlp,
                         [tf.TensorSpec([None, 16], tf.float32)])


@pytest.fixture(scope="module")
def branch_dir(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("m") / "branch"), side_branch,
                         [tf.TensorSpec([None, 16], tf.float32)])


def engine_names(conv: trt.TrtGraphConverterV2) -> list[str]:
    return [n.name for n in conv.converted_graph_def.node if n.op == "TRTEngineOp"]


def assert_ir_round_trip(conv: trt.TrtGraphConverterV2) -> None:
    frozen = conv.frozen_graph_def
    assert ir.to_graph_def(ir.from_graph_def(frozen)) == frozen


def assert_acyclic(graph_def) -> None:
    g = ir.from_graph_def(graph_def, infer_shapes=False)
    assert nx.is_directed_acyclic_graph(g)


def run(fn, x: np.ndarray) -> np.ndarray:
    (out,) = fn(x).values()
    return out.numpy()


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_mlp_is_one_engine_on_each_backend(mlp_dir: str, backend: str) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, backend=backend)
    fn = conv.convert()
    assert len(engine_names(conv)) == 1
    assert_ir_round_trip(conv)
    # every frozen node but the signature's Placeholder and output Identity is in the
    # engine's native segment, which holds exactly those nodes (as the summary counts)
    (fdef,) = conv.converted_graph_def.library.function
    assert len(fdef.node_def) == len(conv.frozen_graph_def.node) - 2
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    n = len(fdef.node_def)
    assert f"[*] % of OPs Converted: {100 * n / (n + 2):.2f}% [{n}/{n + 2}]" in lines[0]
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    assert max_rel_err(run(fn, x), two_block_mlp(x).numpy()) < 1e-5
    assert fn.runs_without_tensorflow
    (op,) = conv.engines.values()
    assert op.stats.engine_calls == 1 and op.stats.native_calls == 0
    assert op.backend.name == backend


def test_denylisted_op_splits_into_two_engines(mlp_dir: str, monkeypatch) -> None:
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", "Tanh")
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, minimum_segment_size=2)
    fn = conv.convert()
    gd = conv.converted_graph_def
    names = engine_names(conv)
    seq = names[0].split("_")[1]
    assert names == [f"TRTEngineOp_{seq}_000", f"TRTEngineOp_{seq}_001"]
    tanh = [n for n in gd.node if n.op == "Tanh"]
    assert len(tanh) == 1 and tanh[0].input[0].startswith(names[0])
    assert any(i.startswith(tanh[0].name) for i in
               next(n for n in gd.node if n.name == names[1]).input)
    x = RNG.standard_normal((3, 16)).astype(np.float32)
    assert not fn.runs_without_tensorflow
    assert max_rel_err(run(fn, x), two_block_mlp(x).numpy()) < 1e-6
    assert all(op.stats.engine_calls == 1 for op in conv.engines.values())
    assert_acyclic(gd)


def test_side_branch_does_not_create_a_cycle(branch_dir: str) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=branch_dir, minimum_segment_size=1)
    fn = conv.convert()
    gd = conv.converted_graph_def
    assert_acyclic(gd)
    assert_ir_round_trip(conv)
    engines = engine_names(conv)
    assert len(engines) == 2  # {matmul, relu} and {sigmoid, mul, add}: never one
    x = RNG.standard_normal((5, 16)).astype(np.float32)
    assert max_rel_err(run(fn, x), side_branch(x).numpy()) < 1e-5


def test_native_fallback_when_engine_build_fails(mlp_dir, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TF_TRT_ABORT_CUDA_ENGINE_BUILD", "1")
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir)
    fn = conv.convert()
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="tftrt"):
        for _ in range(3):
            assert max_rel_err(run(fn, x), two_block_mlp(x).numpy()) < 1e-6
    (name,) = engine_names(conv)
    warnings = [r for r in caplog.records if name in r.getMessage()]
    assert len(warnings) == 1 and "TF_TRT_ABORT_CUDA_ENGINE_BUILD" in warnings[0].getMessage()
    stats = conv.engines[name].stats
    assert stats.build_failures == 1 and stats.native_calls == 3 and stats.engine_calls == 0


def test_disallowed_native_fallback_is_an_error(mlp_dir, monkeypatch) -> None:
    monkeypatch.setenv("TF_TRT_ABORT_CUDA_ENGINE_BUILD", "1")
    monkeypatch.setenv("TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION", "0")
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir)
    fn = conv.convert()
    with pytest.raises(EngineError, match="native segment execution is disallowed"):
        fn(np.zeros((1, 16), np.float32))


def test_minimum_segment_size_minus_one_converts_nothing(mlp_dir) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, minimum_segment_size=-1)
    fn = conv.convert()
    assert engine_names(conv) == []
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    assert max_rel_err(run(fn, x), two_block_mlp(x).numpy()) < 1e-6


def test_max_engines_env_keeps_the_largest(mlp_dir, monkeypatch) -> None:
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", "Tanh")
    monkeypatch.setenv("TF_TRT_MAX_ALLOWED_ENGINES", "1")
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, minimum_segment_size=2)
    fn = conv.convert()
    assert len(engine_names(conv)) == 1
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    assert max_rel_err(run(fn, x), two_block_mlp(x).numpy()) < 1e-6


def test_static_shapes_cache_engines_per_shape(mlp_dir) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, maximum_cached_engines=2,
                                   backend="openvino")
    fn = conv.convert()
    for b in (1, 2, 1, 3):
        x = RNG.standard_normal((b, 16)).astype(np.float32)
        assert max_rel_err(run(fn, x), two_block_mlp(x).numpy()) < 1e-5
    (op,) = conv.engines.values()
    assert op.stats.builds == 3  # shapes 1, 2, then 3 evicts 1 (LRU of 2)
    assert sorted(k[0].max[0][0] for k, _ in op.engines()) == [1, 3]


def test_dynamic_shape_builds_one_engine(mlp_dir) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, use_dynamic_shape=True,
                                   backend="openvino")
    fn = conv.convert()
    for b in (1, 5, 2):
        x = RNG.standard_normal((b, 16)).astype(np.float32)
        assert max_rel_err(run(fn, x), two_block_mlp(x).numpy()) < 1e-5
    (op,) = conv.engines.values()
    assert op.stats.builds == 1


def test_graph_viz_export(mlp_dir, monkeypatch, tmp_path) -> None:
    path = tmp_path / "graph.dot"
    monkeypatch.setenv("TF_TRT_EXPORT_GRAPH_VIZ_PATH", str(path))
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir)
    conv.convert()
    text = path.read_text()
    assert text.startswith("digraph") and "TRTEngineOp" in text and "#76b900" in text


def test_fp16_reports_the_precision_that_runs(mlp_dir) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, precision_mode="fp16",
                                   backend="openvino")
    fn = conv.convert()
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    assert "precision: FP16 (not built yet)" in lines[0]
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    assert max_rel_err(run(fn, x), two_block_mlp(x).numpy()) < 2e-2
    (op,) = conv.engines.values()
    assert op.precision in ("FP32", "BF16", "FP16")
    lines.clear()
    conv.summary(print_fn=lines.append)
    assert f"Backend: openvino, precision: {op.precision}" in lines[0]


def test_dead_nodes_left_by_grappler_are_pruned(tmp_path) -> None:
    from tftrt.compiler.freeze import prune_dead_nodes

    def square_twice(x):
        return tf.nn.relu(x * x) * x  # Grappler rewrites x * x into Square

    src = export_module(str(tmp_path / "sq"), square_twice, [tf.TensorSpec([None, 4], tf.float32)])
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, minimum_segment_size=1)
    fn = conv.convert()
    frozen = conv.frozen_graph_def
    outs = {n.name for n in frozen.node if n.op in ("Placeholder", "Identity")}
    assert prune_dead_nodes(frozen, outs) is frozen  # nothing dead remains
    assert fn.runs_without_tensorflow
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    assert max_rel_err(run(fn, x), square_twice(x).numpy()) < 1e-6
