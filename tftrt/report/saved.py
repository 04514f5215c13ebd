"""The summary of a converted model on disk (``tftrt summary DIR``), from its manifest and
converted graph alone: nothing is loaded, built or run, so it works on any machine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tftrt.plugins.types import ShapeProfile
from tftrt.report.summary import calibration_note, format_summary


def _profiles(items: list[Mapping[str, Any]]) -> str:
    return "; ".join(str(ShapeProfile.from_json(p)) for p in items)


def engine_notes(manifest: Mapping[str, Any], meta: Mapping[str, Any]) -> list[str]:
    """The lines under one engine's row: backend, precision, saved engines, INT8 scales."""
    opts = manifest["options"]
    instances = meta.get("instances", [])
    precisions = sorted({i.get("precision", "?") for i in instances})
    runs = "/".join(precisions) if precisions else f"{opts['precision_mode']} (not built yet)"
    notes = [f"Backend: {manifest['backend']} {manifest['backend_version']}, precision: {runs} "
             f"(precision_mode {opts['precision_mode']})"]
    cal = calibration_note(meta.get("calibration"))
    if cal:
        notes.append(cal)
    if opts["use_dynamic_shape"]:
        profiles = meta.get("profiles") or [p for i in instances for p in i.get("profiles", [])]
        notes.append(f"Profiles ({opts.get('profile_strategy', 'Range')}): "
                     + (_profiles(profiles) if profiles else "none yet (built on first use)"))
    for k, inst in enumerate(instances):
        served = _profiles(inst["profiles"]) if inst.get("profiles") else str(inst["shapes"])
        notes.append(f"Saved engine {k}: {inst['precision']} for {served}, "
                     f"built for {inst.get('machine', 'portable')}")
    if not instances:
        how = "built on first use" if opts["allow_build_at_runtime"] else \
            "runs natively (runtime builds are off)"
        notes.append(f"No saved engine: {how}")
    return notes


def format_saved_summary(manifest: Mapping[str, Any], graph_def: Any, line_length: int = 160,
                         detailed: bool = True) -> str:
    """The summary table of a saved converted model, with its manifest's facts per engine."""
    engines = manifest["engines"]
    notes = {name: engine_notes(manifest, meta) for name, meta in engines.items()}
    ops = {name: meta["segment_ops"] for name, meta in engines.items() if "segment_ops" in meta}
    head = [f"Signature {manifest['signature_key']!r}: inputs "
            + ", ".join(f"{t['name']} {t['dtype']} {t['shape']}" for t in manifest["inputs"])
            + "; outputs " + ", ".join(t["name"] for t in manifest["outputs"]),
            f"Converted by tftrt {manifest['tftrt_version']}"
            + ("" if manifest.get("native_segments", True) else
               "; saved without native segments (remove_native_segments): plain TensorFlow "
               "cannot run it"), ""]
    return "\n".join(head) + format_summary(graph_def, line_length, detailed, notes, ops)
