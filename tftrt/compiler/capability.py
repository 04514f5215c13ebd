"""Capability pass: marks each IR node supported or not, with the reason.

Separates *what can run in an engine* from *how to partition* (segment.py).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

import tftrt.env as env
from tftrt.compiler import exactness, intervals
from tftrt.compiler import ir as irmod
from tftrt.compiler.ir import IR
from tftrt.compiler.lowering import node_info
from tftrt.converters.base import dtype_name
from tftrt.converters.context import onnx_dtype
from tftrt.plugins.manager import Registry
from tftrt.plugins.types import NumericLimits, numeric_limits

log = logging.getLogger("tftrt.capability")

EXCLUDED = "excluded by segmenter option. Most likely an input or output node."
DENYLISTED = "Denylisted with the env var TF_TRT_OP_DENYLIST"
FP_CAST_REJECTED = ("Cast from or to a floating-point type is refused: "
                    "TF_TRT_EXPERIMENTAL_FEATURES=reject_all_fp_cast_ops")


def denylist_from_env(environ: dict[str, str] | None = None) -> frozenset[str]:
    return env.get("TF_TRT_OP_DENYLIST", environ)


def _fp_cast(g: IR, name: str) -> bool:
    """A Cast whose source or destination type is floating-point."""
    attrs = irmod.attrs(g, name)
    return any(t is not None and tf.as_dtype(t).is_floating
               for t in (attrs.get("SrcT"), attrs.get("DstT")))


def _input_problem(dtype: np.dtype | None, shape) -> str | None:
    if dtype is None:
        return "Shape and data type are unknown"
    try:
        onnx_dtype(dtype)
    except Exception:
        return ("Failed to convert at least one input to a TRT_TensorOrWeights: "
                f"Unsupported tensorflow data type {dtype_name(dtype)}")
    if shape is None:
        return ("Failed to convert at least one input to a TRT_TensorOrWeights: "
                "input rank is unknown")
    return None


@dataclass(frozen=True)
class BackendFacts:
    """What the capability pass asks of the selected backend: where its integers are exact."""

    name: str = ""
    limits: NumericLimits = NumericLimits()
    ranges: dict = field(default_factory=dict)  # tensor -> interval, when limits matter


def backend_facts(g: IR, backend: object | None) -> BackendFacts:
    if backend is None:
        return BackendFacts()
    limits = numeric_limits(backend)
    ranges = {} if limits.unlimited else intervals.value_ranges(g)
    return BackendFacts(getattr(backend, "name", "backend"), limits, ranges)


def node_reason(g: IR, name: str, registry: Registry, excluded: frozenset[str],
                denylist: frozenset[str], dynamic_shape: bool,
                backend: BackendFacts | None = None) -> str | None:
    """Why node ``name`` cannot go into an engine, or None if it can."""
    op = g.nodes[name]["op"]
    if name in excluded:
        return EXCLUDED
    conv = registry.converter(op)
    if conv is None:
        return f"Op type {op} is not supported."
    info = node_info(g, name, dynamic_shape)
    if not irmod.is_const_like(g, name):
        for dt, shape in zip(info.input_dtypes, info.input_shapes, strict=True):
            problem = _input_problem(dt, shape)
            if problem:
                return problem
    if conv.validate is not None:
        try:
            reason = conv.validate(info)
        except Exception as exc:  # a validator bug must not abort conversion
            reason = f"converter validation raised {type(exc).__name__}: {exc}"
        if reason:
            return reason
    if backend is not None and not irmod.is_const_like(g, name):
        reason = exactness.limits_reason(info, backend.limits, backend.ranges, registry,
                                         backend.name)
        if reason:
            return reason
    if op in denylist:
        log.warning("Denylisted op %s (node %s) with the env var TF_TRT_OP_DENYLIST", op, name)
        return DENYLISTED
    if op == "Cast" and env.feature("reject_all_fp_cast_ops") and _fp_cast(g, name):
        return FP_CAST_REJECTED
    return None


def mark_supported(g: IR, registry: Registry, excluded: Iterable[str] = (),
                   denylist: Iterable[str] = (), dynamic_shape: bool = False,
                   backend: object | None = None) -> IR:
    """A copy of ``g`` whose nodes carry ``supported`` (bool) and ``reason`` (str | None).

    With ``backend``, nodes it would not compute exactly (its ``numeric_limits``) are
    refused too.
    """
    out = g.copy()
    excl, deny = frozenset(excluded), frozenset(denylist)
    facts = backend_facts(out, backend)
    debug = log.isEnabledFor(logging.DEBUG)
    for name in out.nodes:
        reason = node_reason(out, name, registry, excl, deny, dynamic_shape, facts)
        out.nodes[name]["supported"] = reason is None
        out.nodes[name]["reason"] = reason
        if debug and reason is not None:
            log.debug("%s (%s) refused: %s", name, out.nodes[name]["op"], reason)
    out = keep_complex_inside(out)
    if log.isEnabledFor(logging.INFO):
        refused = sum(1 for _, d in out.nodes(data=True) if not d["supported"])
        log.info("%d of %d nodes can run in an engine", out.number_of_nodes() - refused,
                 out.number_of_nodes())
    return out


COMPLEX = frozenset({np.dtype(np.complex64), np.dtype(np.complex128)})
COMPLEX_BOUNDARY = ("a complex tensor would cross an engine boundary (engines hold complex "
                    "numbers as pairs of floats): its producer or a consumer stays native")


def keep_complex_inside(g: IR) -> IR:
    """Refuse nodes whose complex tensors would reach a native node (to a fixpoint)."""
    changed = True
    while changed:
        changed = False
        for src, dst, d in g.edges(data=True):
            if d["control"]:
                continue
            dtypes = g.nodes[src]["output_dtypes"]
            slot = d["src_slot"]
            if slot >= len(dtypes) or dtypes[slot] not in COMPLEX:
                continue
            a, b = g.nodes[src], g.nodes[dst]
            if a.get("supported") != b.get("supported"):
                loser = a if a.get("supported") else b
                loser["supported"], loser["reason"] = False, COMPLEX_BOUNDARY
                changed = True
    return g


def nonconversion_counts(g: IR) -> dict[str, dict[str, int]]:
    """op type -> (reason -> count) over the unsupported nodes of a marked IR."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for _, d in g.nodes(data=True):
        if not d.get("supported", True):
            counts[d["op"]][d["reason"]] += 1
    return {op: dict(c) for op, c in counts.items()}
