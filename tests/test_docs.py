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
