"""The summary's lines beyond TF-TRT's engine table: per engine, its backend, precision,
shapes and fallbacks; per conversion, the partitioner and the graph passes."""

from __future__ import annotations

from typing import Any

from tftrt.compiler import precision
from tftrt.compiler.pipeline import Conversion
from tftrt.report.summary import calibration_note


def engine_notes(op: Any) -> list[str]:
    """The summary's lines for one engine: backend, the precision that runs, and why."""
    runs = op.precision
    why = precision.explain(op.backend.name, op.precision_mode, runs)
    shown = runs or f"{op.precision_mode} (not built yet)"
    where = sorted({e.runs_on for _, e in op.engines() if getattr(e, "runs_on", None)})
    on = f" on {' / '.join(where)}" if where else ""
    notes = [f"Backend: {op.backend.name}{on}, precision: {shown}" + (f" ({why})" if why else "")]
    cal = calibration_note(op.calibration)
    if cal:
        notes.append(cal)
    if op.precision_mode == "INT8" and op.calibration:
        int8, kept = precision.int8_layers(op.onnx_model)
        notes.append("INT8 layers: " + (", ".join(f"{k} x{v}" for k, v in sorted(int8.items()))
                                        or "none"))
        if kept:
            notes.append("Kept float (no Q/DQ pair: the quantizer has no int8 form for them "
                         "here, so they run on dequantized values, fused into the int8 "
                         "layers where the backend can): "
                         + ", ".join(f"{k} x{v}" for k, v in sorted(kept.items())))
    notes.extend(shape_notes(op))
    st = op.stats
    if st.build_failures or st.run_failures or st.load_failures or st.native_calls:
        notes.append(f"Native fallback: {st.native_calls} native calls, {st.engine_calls} engine "
                     f"calls; failures: {st.build_failures} build, {st.run_failures} run, "
                     f"{st.load_failures} load; last error: {st.last_error}")
    return notes


def shape_notes(op: Any) -> list[str]:
    """The summary's lines on which shapes an engine serves, and how its backend does it."""
    if op.dynamic_shape:
        profiles = "; ".join(str(p) for p in op.profiles) if op.profiles else \
            "none yet (build() makes them; without it, the first call's shapes)"
        lines = [f"Profiles ({op.profile_strategy}): {profiles}"]
    else:
        keys = [k for k, _ in op.engines()]
        served = ", ".join(str(k[0]) for k in keys) if keys else "none built yet"
        lines = [f"Implicit batch engines (each serves batch 1 up to its own): {served}"]
    if op.realization:
        lines.append(f"Runs as: {op.realization}")
    return lines


def plan_lines(conversion: Conversion) -> str:
    """The summary's lines on how the graph was cut: a partitioner other than union-find,
    and every graph pass that ran, with its effect (nothing when neither applies)."""
    lines = []
    if conversion.partitioner != "union-find":
        lines.append(f"[*] Partitioner: {conversion.partitioner} "
                     f"(plugin {conversion.partitioner_plugin})")
    if conversion.passes:
        lines.append(f"[*] Graph passes run: {len(conversion.passes)}")
        lines.extend(f"\t- {record.describe()}" for record in conversion.passes)
    return "".join(line + "\n" for line in lines)
