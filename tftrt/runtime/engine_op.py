"""The runtime of one ``TRTEngineOp``: builds, caches and runs its engines, falling back
to the native segment when an engine cannot be built or run."""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tftrt.errors import EngineError
from tftrt.plugins.types import BuildConfig, Engine, EngineBackend
from tftrt.specs import TensorSpec

log = logging.getLogger("tftrt")

ShapeKey = tuple[tuple[int, ...], ...]
NativeFn = Callable[[Sequence[np.ndarray]], list[np.ndarray]]
_FALSE = {"0", "false", "no", "off"}


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in _FALSE


def native_fallback_allowed() -> bool:
    return _env_flag("TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION", True)


def engine_build_aborted() -> bool:
    return _env_flag("TF_TRT_ABORT_CUDA_ENGINE_BUILD", False)


@dataclass
class EngineStats:
    """Counters a user can read to see what actually ran."""

    engine_calls: int = 0
    native_calls: int = 0
    builds: int = 0
    build_failures: int = 0
    run_failures: int = 0
    load_failures: int = 0
    last_error: str | None = None


@dataclass
class EngineOp:
    """One engine node: its ONNX segment, backend, engine cache and native fallback."""

    name: str
    onnx_model: bytes
    backend: EngineBackend
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    native: NativeFn | None = None
    precision_mode: str = "FP32"
    dynamic_shape: bool = False
    # dynamic shape mode: how build shapes become profiles (Range, Optimal, ...)
    profile_strategy: str = "Range"
    max_cached_engines: int = 1
    allow_build_at_runtime: bool = True
    max_workspace_size_bytes: int = 1 << 30
    stats: EngineStats = field(default_factory=EngineStats)
    # INT8: how the engine's Q/DQ ranges were obtained (method, batches, shapes), or None
    calibration: dict | None = None
    # While calibrating: each call's inputs are appended here and the native segment runs
    # (unless record_only: no one reads the outputs, e.g. the engine is the whole model)
    recorder: list[list[np.ndarray]] | None = None
    record_only: bool = False
    _cache: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _warned: bool = False

    # -- engine cache ---------------------------------------------------------
    def key(self, shapes: Sequence[tuple[int, ...]]) -> ShapeKey:
        """Cache key: exact shapes in static mode, one shared engine in dynamic mode."""
        return () if self.dynamic_shape else tuple(tuple(s) for s in shapes)

    def build_config(self, key: ShapeKey) -> BuildConfig:
        shapes = key if key else tuple(s.shape or () for s in self.inputs)
        return BuildConfig(self.precision_mode, shapes, self.max_workspace_size_bytes)

    def engine_for(self, shapes: Sequence[tuple[int, ...]]) -> Engine | None:
        """The cached engine for these input shapes, built now if allowed; None if none."""
        key = self.key(shapes)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            engine = None
            if self.allow_build_at_runtime:
                engine = self._build(key)
            self._cache[key] = engine  # None: a negative entry, not retried
            while len(self._cache) > max(1, self.max_cached_engines):
                self._cache.popitem(last=False)
            return engine

    def _build(self, key: ShapeKey) -> Engine | None:
        try:
            if engine_build_aborted():
                raise EngineError("engine build aborted by TF_TRT_ABORT_CUDA_ENGINE_BUILD")
            engine = self.backend.build(self.onnx_model, self.build_config(key))
            self.stats.builds += 1
            return engine
        except Exception as exc:
            self.stats.build_failures += 1
            self._failed(f"building the {self.backend.name} engine for shapes {list(key)} "
                         f"failed: {exc}")
            return None

    def engines(self) -> list[tuple[ShapeKey, Engine]]:
        return [(k, e) for k, e in self._cache.items() if e is not None]

    def add_serialized(self, key: ShapeKey, data: bytes) -> None:
        """Restore a saved engine for ``key`` without rebuilding."""
        engine = self.backend.deserialize(data, self.build_config(key))
        with self._lock:
            self._cache[tuple(tuple(s) for s in key)] = engine

    def record_load_failure(self, message: str) -> None:
        """A saved engine could not be restored; it is rebuilt on use, or the segment runs
        natively."""
        self.stats.load_failures += 1
        self._failed(message, "it will be rebuilt" if self.allow_build_at_runtime else None)

    @property
    def precision(self) -> str | None:
        """The precision the cached engines run at (None before any engine exists)."""
        precs = sorted({e.precision for _, e in self.engines()})
        return "/".join(precs) if precs else None

    # -- execution ------------------------------------------------------------
    def __call__(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.recorder is not None:
            return self._record(inputs)
        engine = self.engine_for([np.shape(x) for x in inputs])
        if engine is not None:
            try:
                outs = engine.run(inputs)
                self.stats.engine_calls += 1
                return [self._cast(o, s) for o, s in zip(outs, self.outputs, strict=True)]
            except Exception as exc:
                self.stats.run_failures += 1
                self._failed(f"running the {self.backend.name} engine failed: {exc}")
        return self.run_native(inputs)

    def _record(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Calibration: keep a copy of the inputs, compute in FP32 with the native segment
        (as TF-TRT does; not gated by TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION)."""
        assert self.recorder is not None
        self.recorder.append([np.array(x, copy=True) for x in inputs])
        if self.record_only:
            return [np.zeros((0,), s.dtype) for s in self.outputs]
        if self.native is None:
            raise EngineError(f"{self.name}: calibration needs the native segment")
        return self.native(inputs)

    def replace_model(self, onnx_model: bytes) -> None:
        """Use ``onnx_model`` from now on (e.g. its quantized form); cached engines go."""
        with self._lock:
            self.onnx_model = onnx_model
            self._cache.clear()

    def run_native(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not native_fallback_allowed():
            raise EngineError(
                f"{self.name}: no usable engine and native segment execution is disallowed "
                f"(TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION=0); "
                f"last error: {self.stats.last_error}")
        if self.native is None:
            raise EngineError(f"{self.name}: no usable engine and no native segment to run")
        self.stats.native_calls += 1
        return self.native(inputs)

    def _failed(self, message: str, remedy: str | None = None) -> None:
        self.stats.last_error = message
        if not self._warned:
            self._warned = True
            fallback = remedy or ("running the native segment instead"
                                  if native_fallback_allowed() else "native fallback is disabled")
            log.warning("%s: %s; %s", self.name, message, fallback)

    @staticmethod
    def _cast(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
        return x if x.dtype == spec.dtype else x.astype(spec.dtype)
