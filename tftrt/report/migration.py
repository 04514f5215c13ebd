"""What a TF-TRT model became: one block per engine (ops, precision, shape mode, what
runs, TF-TRT's serialized engines), from ``compiler.legacy_convert``'s records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _ops(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(counts.items()))


def _engine_lines(record: Any, op: Any) -> list[str]:
    n_ops = sum(record.ops.values())
    head = f"{record.name} (TF-TRT's {record.source.name}): {n_ops} ops ({_ops(record.ops)})"
    if op is None:
        return [head, f"\t- runs natively: {record.reason}"]
    opts = record.options
    if op.precision:
        runs = f"runs {op.precision} on {op.backend.name}"
    else:
        runs = f"not built yet ({op.backend.name})"
    lines = [head, f"\t- precision: {opts.precision_mode} (TF-TRT: "
                   f"{record.source.precision_mode}); {runs}",
             f"\t- shapes: {record.shape_mode} (TF-TRT: "
             f"{'implicit batch' if record.source.use_implicit_batch else 'dynamic shape'})",
             f"\t- engine cache: {opts.maximum_cached_engines}; builds at run time: "
             f"{'yes' if op.allow_build_at_runtime else 'no'}"]
    if record.calibration:
        lines.append(f"\t- INT8 scales: {record.calibration}")
    st = op.stats
    if st.engine_calls or st.native_calls or st.builds:
        lines.append(f"\t- calls: {st.engine_calls} engine, {st.native_calls} native; "
                     f"{st.builds} builds")
    if not op.allow_build_at_runtime and not op.engines():
        lines.append("\t- no engine was built and runtime builds are off: it runs natively "
                     "(migrate with build data to build its engines)")
    return lines


def format_migration(conv: Any, engines: Mapping[str, Any]) -> str:
    """The migration summary of ``conv`` (a ``LegacyConversion``) with its engine ops."""
    records = conv.records
    converted = sum(1 for r in records if r.name in engines)
    lines = [f"TF-TRT model {conv.source}: {len(records)} engines -> {converted} tftrt "
             f"engines, {len(records) - converted} native"]
    for record in records:
        lines.extend(_engine_lines(record, engines.get(record.name)))
        lines.extend(f"\t- serialized TensorRT engine {note}" for note in record.serialized)
    if conv.serialized_unused:
        lines.append(f"{conv.serialized_unused} serialized TensorRT engine(s) could not be "
                     "reused: the engines are rebuilt from their segments")
    return "\n".join(lines)
