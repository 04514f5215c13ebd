"""Every environment variable tftrt reads: its one meaning, its parser, its default.

TF-TRT's variables (its guide's chapter 6) keep their names and meanings where
they mean something for tftrt; a few are tftrt's own (``TFTRT_*``). Nothing
else in tftrt reads ``os.environ`` for its settings: callers ask ``get(name)``,
which parses the current value each time (as TF-TRT reads its variables when it
uses them), so a test or a notebook may change a variable between calls.

A malformed value is an ``EnvironmentVariableError`` naming the variable, the
value and what it accepts; an unknown experimental feature is a warning. A
variable set for a backend on which it means nothing is reported once per
backend (``note_backend``). ``python -m tftrt.report.environment`` prints the
table of docs/environment.md.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tftrt.errors import EnvironmentVariableError

log = logging.getLogger("tftrt.env")

Env = Mapping[str, str]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
BOOL_VALUES = "1/0, true/false, yes/no, on/off (any case)"


class Malformed(ValueError):
    """A parser's complaint; ``get`` turns it into an EnvironmentVariableError."""


def parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise Malformed(f"expected {BOOL_VALUES}")


def parse_int(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise Malformed("expected an integer") from None


def parse_names(value: str) -> frozenset[str]:
    """A comma-separated list of exact names (op types); blanks ignored."""
    return frozenset(s.strip() for s in value.split(",") if s.strip())


def parse_path(value: str) -> str | None:
    return value.strip() or None


def parse_key_values(value: str) -> dict[str, str]:
    """``key=value`` pairs separated by commas, blanks around each ignored."""
    out = {}
    for item in filter(None, (i.strip() for i in value.split(","))):
        key, sep, val = item.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise Malformed(f"expected key=value pairs separated by commas, got {item!r}")
        out[key.strip()] = val.strip()
    return out


# -- TF_TRT_EXPERIMENTAL_FEATURES -------------------------------------------------

@dataclass(frozen=True)
class Feature:
    name: str
    meaning: str
    # backends on which it means something; None: all, (): none
    backends: tuple[str, ...] | None = None
    why_not: str = ""


FEATURES: dict[str, Feature] = {f.name: f for f in (
    Feature("disable_graph_freezing",
            "keep the model's variables instead of freezing them into constants (needs "
            "use_dynamic_shape=True, else a warning and the graph is frozen)"),
    Feature("remove_native_segments",
            "save() drops each engine's native segment: a smaller model that only "
            "tftrt.load runs (no native fallback; plain TensorFlow refuses to run it)"),
    Feature("reject_all_fp_cast_ops",
            "Cast nodes from or to a floating-point type stay in TensorFlow"),
    Feature("disable_logger_filtering",
            "TF-TRT's TensorRT logger stops dropping known noisy messages",
            backends=(), why_not="tftrt filters no backend messages"),
)}


def parse_features(value: str) -> frozenset[str]:
    """Comma-separated feature names, matched exactly; unknown ones are warned about."""
    names = parse_names(value)
    for name in sorted(names - set(FEATURES)):
        _once(("feature", name), logging.WARNING,
              "TF_TRT_EXPERIMENTAL_FEATURES: unknown feature %r ignored; known: %s",
              name, ", ".join(FEATURES))
    return names & frozenset(FEATURES)


# -- TF_TRT_SHOW_DETAILED_REPORT ----------------------------------------------------

@dataclass(frozen=True)
class ReportMode:
    """How the non-conversion report is shown: detailed or not, and a CSV path or None."""

    detailed: bool = False
    csv_path: str | None = None


_NUMERIC = frozenset("-0123456789")
_LEADING_INT = re.compile(r"-?[0-9]+")


def parse_report_mode(value: str) -> ReportMode:
    """TF-TRT's rule: a value with any character besides ``-`` and digits is a CSV path
    (and the detailed report); a number >= 1 is the detailed report; others, normal."""
    if not value:
        return ReportMode()
    if any(c not in _NUMERIC for c in value):
        return ReportMode(True, value)
    number = _LEADING_INT.match(value)
    return ReportMode(number is not None and int(number.group()) >= 1)


# -- TFTRT_CALIBRATION_METHOD, TFTRT_PROGRESS, TFTRT_LOG -----------------------------

CALIBRATION_METHODS = ("entropy", "minmax", "percentile")


def parse_calibration_method(value: str) -> str | None:
    v = value.strip().lower()
    if not v:
        return None
    if v not in CALIBRATION_METHODS:
        raise Malformed(f"expected one of {', '.join(CALIBRATION_METHODS)}")
    return v


def parse_progress(value: str) -> bool | None:
    """None (auto: bars when stderr is a terminal), True or False."""
    v = value.strip().lower()
    if v in ("", "auto"):
        return None
    try:
        return parse_bool(v)
    except Malformed:
        raise Malformed(f"expected auto or {BOOL_VALUES}") from None


# The modules TFTRT_LOG names; each logs to the logger ``tftrt.<name>``.
LOG_MODULES: dict[str, str] = {
    "convert": "TrtGraphConverterV2: conversion, build, save",
    "freeze": "loading and freezing the SavedModel",
    "capability": "why each node was refused",
    "segment": "why each segment was cut, dropped or capped; partitioners",
    "passes": "graph passes from plugins",
    "lowering": "each node's converter, and segments that fail to lower",
    "precision": "FP16/INT8 transformations",
    "calibration": "INT8 calibration batches and scales",
    "runtime": "which engine (or the native segment) each call used, builds, fallbacks",
    "engines": "the backends",
    "saving": "save and load",
    "migrate": "TF-TRT SavedModels",
    "plugins": "the plugin registry",
    "report": "the conversion reports",
    "env": "environment variables",
    "cli": "the command line",
}
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


def parse_log_spec(value: str) -> dict[str, int]:
    """``segment=2,lowering=1`` -> {"segment": DEBUG, "lowering": INFO}; a bare level (or
    ``all=N``) sets every module. Levels: 0 warnings, 1 info, 2 debug."""
    out: dict[str, int] = {}
    for item in (s.strip() for s in value.split(",")):
        if not item:
            continue
        name, sep, level = item.rpartition("=")
        name = name.strip() if sep else "all"
        level = level.strip()
        if not level.isdigit() or int(level) not in _LEVELS:
            raise Malformed(f"{item!r}: a level is 0, 1 or 2")
        if name != "all" and name not in LOG_MODULES:
            raise Malformed(f"{item!r}: unknown module {name!r}; known: all, "
                            + ", ".join(LOG_MODULES))
        targets = list(LOG_MODULES) if name == "all" else [name]
        for target in targets:
            out[target] = _LEVELS[int(level)]
    return out


# -- the table ------------------------------------------------------------------------

@dataclass(frozen=True)
class Variable:
    """One environment variable: what it means, what it accepts, and who reads it."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    values: str  # what it accepts (docs, errors)
    meaning: str  # what it does in tftrt (docs)
    read_by: str  # the module that acts on it (docs)
    # backends on which it means something; None: every backend, (): none of tftrt's
    backends: tuple[str, ...] | None = None
    why_not: str = ""  # why it means nothing where it does not
    aliases: tuple[str, ...] = ()
    origin: str = "TF-TRT"


VARIABLES: dict[str, Variable] = {v.name: v for v in (
    Variable("TF_TRT_OP_DENYLIST", parse_names, frozenset(), "comma-separated op types",
             "op types that stay in TensorFlow even where a converter accepts them; each "
             "gets the reason \"Denylisted with the env var TF_TRT_OP_DENYLIST\"",
             "compiler/capability.py"),
    Variable("TF_TRT_MAX_ALLOWED_ENGINES", parse_int, 20, "an integer (default 20)",
             "keep only the N segments with the most nodes (the others stay native); "
             "0 or less: no limit, with a warning", "compiler/segment.py"),
    Variable("TF_TRT_SHOW_DETAILED_REPORT", parse_report_mode, ReportMode(),
             "empty, a number, or a file path",
             "the non-conversion report logged by convert(): empty or a number below 1 "
             "gives the normal report, a number >= 1 the detailed one; any other value is "
             "a path where the report is written as CSV (and the detailed report is logged)",
             "report/nonconversion.py"),
    Variable("TF_TRT_OP_FAKELIST", parse_names, frozenset(), "comma-separated op types",
             "op types that segmentation treats as convertible but whose lowering then "
             "fails, so their segments stay native (for segmentation experiments)",
             "compiler/lowering.py"),
    Variable("TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION", parse_bool, True, BOOL_VALUES,
             "when an engine cannot be built or run, run its native segment (default); 0: "
             "raise EngineError instead (calibration and build()'s shape collection still "
             "run natively)", "runtime/engine_op.py"),
    Variable("TF_TRT_ABORT_CUDA_ENGINE_BUILD", parse_bool, False, BOOL_VALUES,
             "every engine build fails, on every backend (to test the native fallback)",
             "runtime/engine_op.py", aliases=("TF_TRT_ABORT_ENGINE_BUILD",)),
    Variable("TF_TRT_ENABLE_LAYOUT_OPTIMIZER", parse_bool, True, BOOL_VALUES,
             "lowering holds NHWC tensors as NCHW inside engines, with one transpose at the "
             "ends of each chain (default); 0: every tensor keeps the graph's layout and "
             "each layout-sensitive op transposes its own input and output (same results)",
             "compiler/lowering.py"),
    Variable("TF_TRT_ALLOW_NMS_TOPK_OVERRIDE", parse_bool, False, BOOL_VALUES,
             "TensorRT's top-k limit (k <= 3840) on the NMS ops' final top-k: without it an "
             "NMS whose max_total_size is larger fails to build (its segment runs natively); "
             "1: k is clamped to the limit and the outputs padded (fewer detections)",
             "engines/topk_limit.py", backends=("tensorrt",),
             why_not="the backend has no top-k limit"),
    Variable("TF_TRT_FIXED_ALGORITHM_ID", parse_int, None, "an integer",
             "TF-TRT forced one TensorRT tactic per layer", "env.py", backends=(),
             why_not="no tftrt backend exposes tactic selection"),
    Variable("TF_DEBUG_TRT_ALLOW_INEFFICIENT_TRANSPOSE", parse_bool, False, BOOL_VALUES,
             "TF-TRT allowed transposes of more than 2.5M elements on TensorRT < 7.1.3.4",
             "env.py", backends=(),
             why_not="no backend tftrt supports has that limit (TensorRT 10+)"),
    Variable("TF_TRT_FORCE_BILINEAR_RESIZE_WAR", parse_int, 0, "an integer",
             "TF-TRT forced a dilated-convolution workaround for bilinear resizes",
             "env.py", backends=(),
             why_not="resizes lower to ONNX Resize with TensorFlow's exact semantics"),
    Variable("TF_TRT_EXPERIMENTAL_FEATURES", parse_features, frozenset(),
             "comma-separated feature names: " + ", ".join(FEATURES),
             "; ".join(f"`{f.name}`: {f.meaning}" for f in FEATURES.values()),
             "trt_convert.py, compiler/capability.py, compiler/saving.py"),
    Variable("TF_TRT_EXPORT_GRAPH_VIZ_PATH", parse_path, None, "a file path",
             "convert() writes the converted graph there in Graphviz DOT (engines as "
             "clusters of their ops), and an SVG beside it when Graphviz's dot is installed",
             "report/graphviz.py"),
    Variable("TF_TRT_EXPORT_TRT_ENGINES_PATH", parse_path, None, "a directory",
             "every engine built is also written there, in files its backend's own tools "
             "open, named after the engine and its profiles", "runtime/engine_op.py"),
    Variable("TFTRT_CALIBRATION_METHOD", parse_calibration_method, None,
             ", ".join(CALIBRATION_METHODS),
             "INT8 calibration's method when the converter is not given calibration_method "
             "(default entropy)", "compiler/calibration.py", origin="tftrt"),
    Variable("TFTRT_LOG", parse_log_spec, {}, "module=level,... (levels 0, 1, 2)",
             "verbose logs per module (the role TF_CPP_VMODULE plays for TF-TRT): 1 info, "
             "2 debug, e.g. segment=2,lowering=1; a bare level sets every module; read at "
             "import (tftrt.logs.configure() re-reads it)", "logs.py", origin="tftrt"),
    Variable("TFTRT_PARTITIONER", parse_path, None, "a partitioner's name",
             "the partitioner when the converter is not given partitioner= (default "
             "union-find, TF-TRT's algorithm); see docs/plugins.md", "compiler/partition.py",
             origin="tftrt"),
    Variable("TFTRT_PORTABLE_LAYERS", parse_bool, False, BOOL_VALUES,
             "plugin layers (NMS) always take their portable ONNX lowering, even on a "
             "backend with a native one", "compiler/layers.py", origin="tftrt"),
    Variable("TFTRT_TRITON_HOME", parse_path, None, "a directory",
             "where `tftrt install-triton` puts Triton's server, and where `tftrt serve` "
             "looks for it (default: a directory under the user's cache); see "
             "docs/deployment.md", "serving/triton.py", origin="tftrt"),
    Variable("TFTRT_ONNXRUNTIME_PROVIDERS", parse_path, None,
             "comma-separated providers (tensorrt, cuda, cpu or ONNX Runtime's names)",
             "the ONNX Runtime execution providers to try, in order (default: TensorRT's if "
             "TensorRT is installed, CUDA's if the GPU build has it, then the CPU's); see "
             "docs/gpu.md", "engines/ort_providers.py", backends=("onnxruntime",),
             why_not="it picks ONNX Runtime's execution providers", origin="tftrt"),
    Variable("TFTRT_ONNXRUNTIME_CUDA_GRAPH", parse_bool, True, BOOL_VALUES,
             "engines of fixed shapes on ONNX Runtime's CUDA provider replay a CUDA graph "
             "(default on)", "engines/ort_providers.py", backends=("onnxruntime",),
             why_not="CUDA graphs are ONNX Runtime's CUDA provider's", origin="tftrt"),
    Variable("TFTRT_ONNXRUNTIME_CUDA_OPTIONS", parse_key_values, {},
             "key=value,... in ONNX Runtime's names (prefer_nhwc=1, use_tf32=0, ...)",
             "extra options of ONNX Runtime's CUDA provider", "engines/ort_providers.py",
             backends=("onnxruntime",), why_not="they are ONNX Runtime's CUDA provider's",
             origin="tftrt"),
    Variable("TFTRT_PROGRESS", parse_progress, None, "auto, or " + BOOL_VALUES,
             "progress bars on stderr for engine builds and calibration: auto (default) "
             "shows them when stderr is a terminal", "progress.py", origin="tftrt"),
)}


def raw(name: str, env: Env | None = None) -> str | None:
    """The value of variable ``name`` (or of one of its aliases), None when unset.

    Two spellings set to different values are an error.
    """
    var = VARIABLES[name]
    source = os.environ if env is None else env
    found = [(n, source[n]) for n in (var.name, *var.aliases) if n in source]
    values = [_canonical(var, v) for _, v in found]
    if any(v != values[0] for v in values[1:]):
        shown = ", ".join(f"{n}={v!r}" for n, v in found)
        raise EnvironmentVariableError(f"{shown}: these spellings of one variable disagree; "
                                       "set only one")
    return found[0][1] if found else None


def _canonical(var: Variable, value: str) -> Any:
    try:
        return var.parse(value)
    except Malformed:
        return value


def get(name: str, env: Env | None = None) -> Any:
    """The parsed value of variable ``name`` (its default when unset or empty)."""
    var = VARIABLES[name]
    value = raw(name, env)
    if value is None or not value.strip():
        return var.default
    try:
        return var.parse(value)
    except Malformed as exc:
        raise EnvironmentVariableError(f"{name}={value!r} is malformed: {exc}") from None


def feature(name: str, env: Env | None = None) -> bool:
    """Whether experimental feature ``name`` is in TF_TRT_EXPERIMENTAL_FEATURES."""
    assert name in FEATURES, name
    return name in get("TF_TRT_EXPERIMENTAL_FEATURES", env)


# -- things said once -----------------------------------------------------------------

_SAID: set[tuple] = set()


def _once(key: tuple, level: int, msg: str, *args: Any) -> None:
    if key not in _SAID:
        _SAID.add(key)
        log.log(level, msg, *args)


def note_backend(backend: str, env: Env | None = None) -> None:
    """Warn once per variable and backend about each variable that is set but means
    nothing for ``backend``. Cheap after the first call for a backend and environment."""
    source = os.environ if env is None else env
    key = ("backend", backend, tuple(sorted((k, source[k]) for k in _NAMES if k in source)))
    if key in _SAID:
        return
    _SAID.add(key)
    for var in VARIABLES.values():
        if var.backends is None or backend in var.backends or raw(var.name, env) is None:
            continue
        _once(("var", var.name, backend), logging.WARNING,
              "%s is set but means nothing for the %s backend (%s): ignored",
              var.name, backend, var.why_not)
    for name in sorted(get("TF_TRT_EXPERIMENTAL_FEATURES", env)):
        f = FEATURES[name]
        if f.backends is not None and backend not in f.backends:
            _once(("feature", name, backend), logging.WARNING,
                  "TF_TRT_EXPERIMENTAL_FEATURES=%s means nothing for the %s backend (%s): "
                  "ignored", name, backend, f.why_not)


_NAMES = frozenset(n for v in VARIABLES.values() for n in (v.name, *v.aliases))


def forget_notes() -> None:
    """Say everything once more (tests)."""
    _SAID.clear()


# -- docs -----------------------------------------------------------------------------

def markdown_table() -> str:
    """The variables as the Markdown table of docs/environment.md."""
    rows = ["| Variable | Accepts | Meaning in tftrt | Backends | Read in |",
            "|---|---|---|---|---|"]
    for v in VARIABLES.values():
        name = f"`{v.name}`" + "".join(f" (alias `{a}`)" for a in v.aliases)
        if v.origin != "TF-TRT":
            name += " (tftrt's own)"
        backends = "all" if v.backends is None else (
            ", ".join(v.backends) if v.backends else f"none: {v.why_not}")
        cells = [name, v.values, v.meaning, backends, f"`tftrt/{v.read_by}`"]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"

