"""Examples in docs/ run."""

from __future__ import annotations

import pathlib
import types

from tests.test_quickstart import run_doc_blocks
from tftrt.plugins import reset_registry

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def test_architecture_plugin_example_registers_a_converter() -> None:
    ns = run_doc_blocks(DOCS / "architecture.md")
    plugin = types.SimpleNamespace(tftrt_op_converters=ns["tftrt_op_converters"])
    try:
        registry = reset_registry(plugin)
        assert registry.converter("MyOp") is ns["convert_my_op"]
    finally:
        reset_registry()


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
