"""Examples in docs/ run."""

from __future__ import annotations

import pathlib
import types

import numpy as np
import tensorflow as tf

from tests.test_quickstart import run_doc_blocks
from tftrt.plugins import reset_registry
from tftrt.testing import check_function

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def test_architecture_plugin_example_registers_a_converter() -> None:
    ns = run_doc_blocks(DOCS / "architecture.md")
    plugin = types.SimpleNamespace(tftrt_op_converters=ns["tftrt_op_converters"])
    try:
        registry = reset_registry(plugin)
        assert registry.converter("MyOp") is ns["convert_my_op"]
    finally:
        reset_registry()


def test_shapes_example_builds_one_engine(capsys) -> None:
    ns = run_doc_blocks(DOCS / "shapes.md")
    (op,) = ns["converter"].engines.values()
    assert op.stats.builds == 1 and op.stats.engine_calls == 17 and op.stats.native_calls == 0
    assert op.stats.engine_shapes[((40, 8, 8),)] == 1
    assert capsys.readouterr().out.strip().endswith("1")


def test_precision_int8_example_calibrates(capsys) -> None:
    ns = run_doc_blocks(DOCS / "precision.md")
    (op,) = ns["converter"].engines.values()
    assert op.precision == "INT8" and op.calibration["batches"] == 4
    assert "precision: INT8" in capsys.readouterr().out
    assert next(iter(ns["logits"].values())).shape == (16, 10)


def test_migrating_example_loads_migrates_and_runs(capsys) -> None:
    from tests.conftest import max_rel_err

    ns = run_doc_blocks(DOCS / "migrating.md")
    y = ns["y"].numpy()
    assert max_rel_err(ns["y_native"].numpy(), y) < 2e-2  # FP16 engines vs FP32 native
    assert max_rel_err(ns["y_fast"].numpy(), y) < 1e-6  # the same engines, saved
    assert all(op.stats.builds == 0 and op.stats.engine_calls == 1
               for op in ns["fast"].engines.values())
    out = capsys.readouterr().out
    assert "2 engines -> 2 tftrt engines" in out and "precision: FP16" in out
def test_plugins_examples_register_and_work() -> None:
    ns = run_doc_blocks(DOCS / "plugins.md")
    plugin = types.SimpleNamespace(**{k: ns[k] for k in (
        "tftrt_partitioners", "tftrt_cost_models", "tftrt_graph_passes",
        "tftrt_op_converters", "tftrt_plugin_layers")})
    try:
        registry = reset_registry(plugin)
        assert registry.partitioner("singletons")[0].partition is ns["singletons"]
        assert registry.cost_model("flop-hungry")[0].estimate is ns["flop_hungry"]
        assert [p.name for p, _ in registry.graph_passes("before_segmentation")] == [
            "keep_matmuls_native"]
        assert registry.plugin_layer("Atan2").decompose is ns["decompose_atan2"]
        y = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
        x = np.array([[-1.0, 0.0, 1.0, 2.0]] * 3, np.float32)
        model = check_function(tf.math.atan2, [y, x], rtol=1e-5, atol=1e-6,
                               registry=registry)
        assert "Atan" in {n.op_type for n in model.graph.node}
    finally:
        reset_registry()


def test_gpu_example_serves_without_tensorflow_in_the_call_path(capsys) -> None:
    ns = run_doc_blocks(DOCS / "gpu.md")
    served, images = ns["served"], ns["images"]
    want = ns["model"](images).numpy()
    (got,) = ns["logits"].values()
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert served.engine.stats.engine_calls == 1
    assert "onnxruntime on CPUExecutionProvider, precision FP32" in capsys.readouterr().out
