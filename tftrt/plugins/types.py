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


@dataclass(frozen=True)
class BuildConfig:
    """What an engine is built for."""

    precision_mode: str = "FP32"
    # One entry per engine input: a concrete shape, or None entries for
    # dimensions left dynamic.
    input_shapes: Sequence[tuple[int | None, ...]] = field(default_factory=tuple)
    max_workspace_size_bytes: int = 1 << 30


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


@runtime_checkable
class EngineBackend(Protocol):
    """Turns an ONNX model into engines of one runtime."""

    name: str

    def available(self) -> bool: ...

    def version(self) -> str: ...

    def build(self, model_bytes: bytes, config: BuildConfig) -> Engine: ...

    def deserialize(self, data: bytes, config: BuildConfig) -> Engine: ...


def numeric_limits(backend: Any) -> NumericLimits:
    """What ``backend`` declares through its optional ``numeric_limits()``; else no limits."""
    declare = getattr(backend, "numeric_limits", None)
    return declare() if callable(declare) else NumericLimits()
