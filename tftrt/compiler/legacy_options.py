"""The settings a TF-TRT engine carries, as tftrt ``CompileOptions``, with the converter
parameters ``migrate()`` takes on top."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tftrt.compiler.legacy_model import LegacyEngine
from tftrt.compiler.pipeline import CompileOptions

log = logging.getLogger("tftrt.migrate")

PROFILE_STRATEGIES = ("Range", "Optimal", "Range+Optimal", "ImplicitBatchModeCompatible")
# migrate()/load() parameters that override what the engines say, with TrtGraphConverterV2's
# names; minimum_segment_size is accepted for symmetry and has nothing to do here
OVERRIDES = ("precision_mode", "use_dynamic_shape", "dynamic_shape_profile_strategy",
             "maximum_cached_engines", "max_workspace_size_bytes", "allow_build_at_runtime",
             "use_calibration", "minimum_segment_size")


def check_overrides(params: Mapping[str, object]) -> dict:
    """``params`` validated against the converter parameters migrate() takes."""
    unknown = sorted(set(params) - set(OVERRIDES))
    if unknown:
        raise TypeError(f"unknown converter parameters {unknown}; migrate() takes "
                        f"{list(OVERRIDES)}")
    out = dict(params)
    if "precision_mode" in out:
        mode = str(out["precision_mode"]).upper()
        if mode not in ("FP32", "FP16", "INT8"):
            raise ValueError(f"precision_mode {out['precision_mode']!r} is not one of "
                             "['FP32', 'FP16', 'INT8']")
        out["precision_mode"] = mode
    if "dynamic_shape_profile_strategy" in out:
        match = [s for s in PROFILE_STRATEGIES
                 if s.lower() == str(out["dynamic_shape_profile_strategy"]).lower()]
        if not match:
            raise ValueError(f"Invalid profile strategy {out['dynamic_shape_profile_strategy']!r}"
                             f"; expected one of {list(PROFILE_STRATEGIES)}")
        out["dynamic_shape_profile_strategy"] = match[0]
    if "maximum_cached_engines" in out and int(out["maximum_cached_engines"]) < 1:
        raise ValueError("maximum_cached_engines must be >= 1")
    return out


def engine_options(engine: LegacyEngine, overrides: Mapping) -> CompileOptions:
    """The engine's own settings, with ``overrides`` (converter parameter names) on top."""
    dynamic = bool(overrides.get("use_dynamic_shape", not engine.use_implicit_batch))
    return CompileOptions(
        precision_mode=overrides.get("precision_mode", engine.precision_mode),
        maximum_cached_engines=int(overrides.get("maximum_cached_engines",
                                                 max(1, engine.max_cached_engines))),
        max_workspace_size_bytes=int(overrides.get("max_workspace_size_bytes",
                                                   engine.workspace_size_bytes)),
        use_dynamic_shape=dynamic,
        allow_build_at_runtime=bool(overrides.get("allow_build_at_runtime",
                                                  engine.allow_build_at_runtime)),
        profile_strategy=overrides.get("dynamic_shape_profile_strategy",
                                       engine.profile_strategy) if dynamic else "Range")


def model_options(records: Sequence[Any], overrides: Mapping) -> CompileOptions:
    """The one set of options a saved model's manifest holds: the engines' own when they
    agree, else the first engine's (with a warning)."""
    if not records:
        return engine_options(_default_engine(), overrides)
    first = records[0].options
    differ = [r.name for r in records[1:] if r.options != first]
    if differ:
        log.warning("the engines of this TF-TRT model have different settings; the migrated "
                    "model uses those of %s for all of them (%s differ)", records[0].name,
                    ", ".join(differ))
    return first


def _default_engine() -> LegacyEngine:
    return LegacyEngine(
        name="", node="", function="", segment_func="", in_dtypes=(), out_dtypes=(),
        input_shapes=(), output_shapes=(), precision_mode="FP32", use_implicit_batch=True,
        profile_strategy="Range", max_cached_engines=1, allow_build_at_runtime=True,
        workspace_size_bytes=1 << 30, use_calibration=False, calibration_data=b"",
        max_batch_size=-1, static_engine=False, has_serialized_segment=False)
