"""The contracts a plugin implements: op converters and engine backends."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

# convert(ctx, node) emits ONNX nodes for one TF node; validate(node) returns
# None when the node can be converted, else the reason it cannot.
ConvertFn = Callable[[Any, Any], None]
ValidateFn = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class OpConverter:
    """Lowers TF nodes of the given op types to ONNX."""

    op_types: tuple[str, ...]
    convert: ConvertFn
    validate: ValidateFn | None = None
    priority: int = 0
    # Short human text on what the converter refuses (for coverage tables).
    restrictions: str = ""

    @property
    def name(self) -> str:
        return f"{self.convert.__module__}.{self.convert.__qualname__}"


Shapes = tuple[tuple[int, ...], ...]  # one concrete shape per engine input


@dataclass(frozen=True)
class ShapeProfile:
    """One optimization profile (TensorRT's term): per engine input, the smallest, the
    optimal and the largest shape the engine serves. A static profile has min == max."""

    min: Shapes
    opt: Shapes
    max: Shapes

    @property
    def static(self) -> bool:
        return self.min == self.max

    def contains(self, shapes: Sequence[Sequence[int]]) -> bool:
        """True when every input's shape lies between ``min`` and ``max``, dim by dim."""
        if len(shapes) != len(self.min):
            return False
        for lo, hi, s in zip(self.min, self.max, shapes, strict=True):
            if len(s) != len(lo) or any(not a <= d <= b for a, d, b in zip(lo, s, hi, strict=True)):
                return False
        return True

    def __str__(self) -> str:
        """Like the guide's tables: one bracket per input, ``lo-hi`` where a dim varies."""
        def dims(lo, hi):
            return "[" + ",".join(str(a) if a == b else f"{a}-{b}"
                                  for a, b in zip(lo, hi, strict=True)) + "]"
        return " ".join(dims(lo, hi) for lo, hi in zip(self.min, self.max, strict=True))

    @property
    def tag(self) -> str:
        """A file-name-safe name, e.g. ``1-8x128_1-8x128`` (inputs joined by ``_``)."""
        return "_".join("x".join(str(a) if a == b else f"{a}-{b}"
                                 for a, b in zip(lo, hi, strict=True)) or "scalar"
                        for lo, hi in zip(self.min, self.max, strict=True))

    def to_json(self) -> dict:
        return {"min": [list(s) for s in self.min], "opt": [list(s) for s in self.opt],
                "max": [list(s) for s in self.max]}

    @classmethod
    def from_json(cls, d: dict) -> ShapeProfile:
        def shapes(key):
            return tuple(tuple(int(x) for x in s) for s in d[key])
        return cls(shapes("min"), shapes("opt"), shapes("max"))


@dataclass(frozen=True)
class BuildConfig:
    """What an engine is built for."""

    precision_mode: str = "FP32"
    # One entry per engine input: a concrete shape, or None entries for
    # dimensions left dynamic (the shapes the engine is built at).
    input_shapes: Sequence[tuple[int | None, ...]] = field(default_factory=tuple)
    max_workspace_size_bytes: int = 1 << 30
    # The shapes the engine must serve: a call's shapes lie in at least one profile,
    # and the engine runs them on the first profile that contains them. Empty: only
    # ``input_shapes``. A backend realises profiles its fastest way (one engine with
    # several TensorRT profiles, one compiled model per profile, ...).
    profiles: tuple[ShapeProfile, ...] = ()


@dataclass(frozen=True)
class NumericLimits:
    """Where a backend computes integers exactly, in ONNX terms (the default: everywhere).

    A backend declares these through an optional ``numeric_limits()`` method; the
    capability pass keeps a node out of its engines when the node's integer values
    are not known to stay within them.
    """

    # integer dtype -> the largest magnitude it holds exactly (it runs in a narrower type)
    narrowed: Mapping[np.dtype, int] = field(default_factory=dict)
    # ONNX op types exact on integers of any magnitude; None: every op is
    exact_integer_ops: frozenset[str] | None = None
    # the largest magnitude the other ops keep exact on integers (they compute in float32)
    float_exact: int = 1 << 24

    @property
    def unlimited(self) -> bool:
        return not self.narrowed and self.exact_integer_ops is None


@runtime_checkable
class Engine(Protocol):
    """A built engine: runs on numpy arrays, serializes to bytes."""

    backend: str
    precision: str  # the precision that actually runs, e.g. "FP32", "BF16"

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]: ...

    def serialize(self) -> bytes: ...

    # Optional: ``realization`` (str), how the engine serves its profiles, for the summary;
    # ``export(stem) -> list[str]``, writes files the backend's own tools open.


@runtime_checkable
class EngineBackend(Protocol):
    """Turns an ONNX model into engines of one runtime."""

    name: str

    def available(self) -> bool: ...

    def version(self) -> str: ...

    def build(self, model_bytes: bytes, config: BuildConfig) -> Engine: ...

    def deserialize(self, data: bytes, config: BuildConfig) -> Engine: ...

    # Optional: ``target() -> str``, what a serialized engine is specific to on this
    # machine (e.g. the instruction sets it was compiled for); an engine saved under
    # another target is not loaded. Absent: engines are portable.
    # Optional: ``numeric_limits() -> NumericLimits``, where it computes integers exactly.

def numeric_limits(backend: Any) -> NumericLimits:
    """What ``backend`` declares through its optional ``numeric_limits()``; else no limits."""
    declare = getattr(backend, "numeric_limits", None)
    return declare() if callable(declare) else NumericLimits()
