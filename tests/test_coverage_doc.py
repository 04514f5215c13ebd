"""docs/converters.md is what the converter registry generates, and the tables say the truth."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from tftrt.converters import converter
from tftrt.plugins import hookimpl, reset_registry
from tftrt.report.coverage import (
    REGENERATE,
    TFTRT_OP_FAMILY,
    builtin_registry,
    coverage_document,
    coverage_table,
    missing_table,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "converters.md"


def test_converters_doc_is_up_to_date() -> None:
    want = coverage_document(builtin_registry())
    have = DOC.read_text() if DOC.exists() else ""
    assert have == want, f"docs/converters.md is stale; regenerate it with `{REGENERATE}`"


def test_table_rows_follow_the_registry() -> None:
    registry = builtin_registry()
    table = coverage_table(registry)
    rows = table.splitlines()[2:]
    assert len(rows) == len(registry.supported_ops())
    relu = next(r for r in rows if r.startswith("| `Relu` |"))
    assert "`tftrt.converters.activations`" in relu and "| yes |" in relu
    gaps = missing_table(registry)
    for op in TFTRT_OP_FAMILY:
        assert (f"| `{op}` |" in gaps) != (op in registry.supported_ops()), op


@converter("TftrtTestOnlyOp", restrictions="x > 0 | float32 only")
def _convert_made_up(ctx, node):  # never run: only listed
    raise NotImplementedError


@converter("Relu", priority=3)
def _convert_relu(ctx, node):  # never run: only listed
    raise NotImplementedError


class _Plugin:
    @hookimpl
    def tftrt_op_converters(self):
        return [_convert_made_up, _convert_relu]


def test_plugins_show_up_with_module_priority_and_escaped_restrictions() -> None:
    try:
        table = coverage_table(reset_registry(_Plugin()))
    finally:
        reset_registry()
    assert f"| `TftrtTestOnlyOp` | `{__name__}` | — | x > 0 \\| float32 only |" in table
    assert f"| `Relu` | `{__name__}` (priority 3) | yes | — |" in table
    assert "| `Relu6` | `tftrt.converters.activations` | yes | — |" in table


def test_command_prints_and_writes(tmp_path) -> None:
    out = tmp_path / "converters.md"
    cmd = [sys.executable, "-m", "tftrt.report.coverage"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([*cmd, "--write", str(out)], check=True, cwd=ROOT, env=env,
                   capture_output=True)
    assert out.read_text() == coverage_document(builtin_registry())
    printed = subprocess.run([*cmd, "--builtin"], check=True, cwd=ROOT, env=env,
                             capture_output=True, text=True).stdout
    assert printed == out.read_text()


def test_every_tftrt_op_type_is_supported() -> None:
    import tftrt

    missing = sorted(set(TFTRT_OP_FAMILY) - set(tftrt.supported_ops()))
    assert missing == []
    assert "None: every op type TF-TRT converts is supported." in missing_table()
