"""The runtime of one ``TRTEngineOp``: builds, caches and runs its engines, falling back
to the native segment when an engine cannot be built or run."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

import tftrt.env as env
from tftrt.errors import EngineError
from tftrt.plugins.types import BuildConfig, Engine, EngineBackend, ShapeProfile, Shapes
from tftrt.runtime.cache import EngineCache, Key, serves
from tftrt.runtime.profiles import implicit_batch_profile, make_profiles, profile_tag
from tftrt.specs import Shape, TensorSpec

log = logging.getLogger("tftrt.runtime")

NativeFn = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


def native_fallback_allowed() -> bool:
    return env.get("TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION")


def engine_build_aborted() -> bool:
    return env.get("TF_TRT_ABORT_CUDA_ENGINE_BUILD")


def export_engine(name: str, engine: Engine, key: Key, backend: str) -> list[str]:
    """With ``TF_TRT_EXPORT_TRT_ENGINES_PATH`` set, write the engine there as files the
    backend's own tools open, named after the engine and its profiles."""
    directory = env.get("TF_TRT_EXPORT_TRT_ENGINES_PATH")
    if not directory:
        return []
    stem = os.path.join(directory, f"{name}.{profile_tag(key)}")
    try:
        os.makedirs(directory, exist_ok=True)
        export = getattr(engine, "export", None)
        if export is not None:
            return list(export(stem))
        path = f"{stem}.{backend}"
        with open(path + ".tmp", "wb") as f:
            f.write(engine.serialize())
        os.replace(path + ".tmp", path)
        return [path]
    except Exception as exc:  # exporting is a debugging aid: it never fails the engine
        log.warning("%s: exporting the engine to %s failed: %s", name, directory, exc)
        return []


def _batch_rank(key: Key) -> tuple:
    """Implicit batch mode: the engine of the smallest batch wins."""
    return key[0].max


def _fmt(shapes: Shapes) -> str:
    return " ".join(str(list(s)) for s in shapes)


def _fmt_profiles(key: Sequence[ShapeProfile]) -> str:
    return "profiles " + "; ".join(str(p) for p in key)


@dataclass
class EngineStats:
    """Counters a user can read to see what actually ran, and on which shapes."""

    engine_calls: int = 0
    native_calls: int = 0
    builds: int = 0
    build_failures: int = 0
    run_failures: int = 0
    load_failures: int = 0
    last_error: str | None = None
    # input shapes -> calls that ran on an engine / on the native segment
    engine_shapes: Counter = field(default_factory=Counter)
    native_shapes: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, shapes: Shapes | None = None, **counts: int) -> None:
        """Add ``counts`` (e.g. ``builds=1``); ``engine_calls``/``native_calls`` with the
        call's ``shapes`` count those shapes too. Safe from several threads."""
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)
            if shapes is not None:
                if counts.get("engine_calls"):
                    self.engine_shapes[shapes] += counts["engine_calls"]
                if counts.get("native_calls"):
                    self.native_shapes[shapes] += counts["native_calls"]

    def engine_call(self, shapes: Shapes) -> None:
        """Count one call that ran on an engine (``add(shapes, engine_calls=1)``, leaner)."""
        with self._lock:
            self.engine_calls += 1
            self.engine_shapes[shapes] += 1


@dataclass
class EngineOp:
    """One engine node: its ONNX segment, backend, engine cache and native fallback.

    Implicit batch mode (``dynamic_shape=False``): an engine built for batch N serves
    every batch <= N whose other dims are equal; the smallest such cached batch wins;
    otherwise an engine is built for the call's shapes (if runtime builds are allowed),
    in an LRU of ``max_cached_engines``. Dynamic shape mode: one engine serving the
    ``profiles`` made from the shapes ``build()`` collected (or, without ``build()``,
    from the first call's shapes); shapes outside every profile run natively.
    """

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
    # (unless record_only: no one reads the outputs, e.g. the engine is the whole model;
    # the same holds while ``collector`` records shapes)
    recorder: list[list[np.ndarray]] | None = None
    record_only: bool = False
    # Dynamic shape mode: the profiles the engine serves, once known
    profiles: tuple[ShapeProfile, ...] | None = None
    # While build() collects shapes for profiles: each call's shapes, run natively
    collector: list[Shapes] | None = None
    # Keys of saved engines that could not be restored: rebuilt with the same profiles
    planned: list[Key] = field(default_factory=list)
    _cache: EngineCache | None = field(default=None, repr=False)
    _warned: set = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self._cache = EngineCache(1 if self.dynamic_shape else self.max_cached_engines)

    # -- engine cache ---------------------------------------------------------
    def build_config(self, key: Key) -> BuildConfig:
        """What the engine serving ``key``'s profiles is built for."""
        first = key[0]
        shapes = first.opt if len(key) == 1 else tuple(
            tuple(a if all(p.min[k][d] == p.max[k][d] == a for p in key) else None
                  for d, a in enumerate(first.opt[k]))
            for k in range(len(first.opt)))
        return BuildConfig(self.precision_mode, shapes, self.max_workspace_size_bytes,
                           profiles=key)

    def _specs(self) -> list[Shape]:
        return [s.shape for s in self.inputs]

    def engine_for(self, shapes: Shapes) -> Engine | None:
        """The engine to run these input shapes on, built now if needed and allowed."""
        cache = self._cache
        if self.dynamic_shape:
            key = self.profiles or (ShapeProfile(shapes, shapes, shapes),)
            engine = cache.acquire(shapes, key, lambda: self._build(key), exclusive=True,
                                   may_build=self.allow_build_at_runtime)
            if engine is None and self.profiles is not None and not serves(self.profiles,
                                                                           shapes):
                self.stats.last_error = (f"input shapes {_fmt(shapes)} lie in no profile of "
                                         f"the engine ({_fmt_profiles(self.profiles)})")
                self._warn_once("profiles", self.stats.last_error)
            return engine
        fitting = sorted((k for k in self.planned if serves(k, shapes)), key=_batch_rank)
        key = fitting[0] if fitting else (implicit_batch_profile(shapes, self._specs()),)
        return cache.acquire(shapes, key, lambda: self._build(key), exclusive=False,
                             may_build=self.allow_build_at_runtime, rank=_batch_rank)

    def _build(self, key: Key) -> Engine | None:
        start = time.perf_counter()
        env.note_backend(self.backend.name)
        aborted = engine_build_aborted()  # a malformed value is the user's error: raised
        try:
            if aborted:
                raise EngineError("engine build aborted by TF_TRT_ABORT_CUDA_ENGINE_BUILD "
                                  "(or TF_TRT_ABORT_ENGINE_BUILD)")
            engine = self.backend.build(self.onnx_model, self.build_config(key))
        except Exception as exc:
            self.stats.add(build_failures=1)
            self._failed(f"building the {self.backend.name} engine for "
                         f"{_fmt_profiles(key)} failed: {exc}")
            return None
        self.stats.add(builds=1)
        log.info("%s: built the %s engine (%s) for %s in %.2f s", self.name, self.backend.name,
                 engine.precision, _fmt_profiles(key), time.perf_counter() - start)
        if self.dynamic_shape:
            self.profiles = key
        export_engine(self.name, engine, key, self.backend.name)
        return engine

    def begin_collecting(self) -> None:
        """build(), dynamic shape mode: from now on calls record their shapes and run
        natively, until ``build_collected()``."""
        self.collector = []

    def build_collected(self) -> Engine | None:
        """Make the profiles from the collected shapes and build the engine serving them."""
        collected, self.collector = self.collector or [], None
        if not collected:
            return None  # the engine never ran: nothing to build for
        profiles = make_profiles(self.profile_strategy, collected, self._specs())
        self._cache.clear()
        self.profiles = profiles
        return self._cache.acquire(profiles[0].opt, profiles, lambda: self._build(profiles),
                                   exclusive=True, may_build=True)

    def engines(self) -> list[tuple[Key, Engine]]:
        """The cached engines, each with the profiles it serves."""
        return self._cache.items()

    def add_serialized(self, key: Key, data: bytes) -> None:
        """Restore a saved engine serving ``key``'s profiles without rebuilding."""
        engine = self.backend.deserialize(data, self.build_config(key))
        if self.dynamic_shape:
            self.profiles = key
        self._cache.put(key, engine)

    def record_load_failure(self, message: str, key: Key | None = None) -> None:
        """A saved engine (serving ``key``) could not be restored; it is rebuilt with the
        same profiles on use, or the segment runs natively."""
        self.stats.add(load_failures=1)
        if key is not None:
            self.planned.append(key)
            if self.dynamic_shape:
                self.profiles = key
        self._failed(message, "it will be rebuilt" if self.allow_build_at_runtime else None)

    def _key_of(self, engine: Engine) -> str:
        """The profiles of a cached engine (for debug logs)."""
        for key, cached in self.engines():
            if cached is engine:
                return _fmt_profiles(key)
        return "shapes no longer cached"

    @property
    def precision(self) -> str | None:
        """The precision the cached engines run at (None before any engine exists)."""
        precs = sorted({e.precision for _, e in self.engines()})
        return "/".join(precs) if precs else None

    @property
    def realization(self) -> str | None:
        """How the backend serves the cached engines' profiles (for the summary)."""
        ways = sorted({getattr(e, "realization", "") for _, e in self.engines()} - {""})
        return "; ".join(ways) or None

    # -- execution ------------------------------------------------------------
    def __call__(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.recorder is not None:
            return self._record(inputs)
        shapes = tuple(np.shape(x) for x in inputs)
        if self.collector is not None:  # profile collection runs natively, as in TF-TRT
            self.collector.append(shapes)
            if self.record_only:
                return [np.zeros((0,), s.dtype) for s in self.outputs]
            return self._native(inputs, shapes)
        # shapes seen before: the engine picked for them then, with no profile search
        engine = self._cache.hit(shapes)
        if engine is None:
            engine = self.engine_for(shapes)
        if engine is not None:
            try:
                outs = engine.run(inputs)
                self.stats.engine_call(shapes)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s: shapes %s ran on the engine for %s", self.name,
                              _fmt(shapes), self._key_of(engine))
                return [o if o.dtype == s.dtype else o.astype(s.dtype)
                        for o, s in zip(outs, self.outputs, strict=True)]
            except Exception as exc:
                self.stats.add(run_failures=1)
                self._failed(f"running the {self.backend.name} engine failed: {exc}")
        return self.run_native(inputs, shapes)

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

    def reset(self) -> None:
        """Forget every cached engine (they are rebuilt on use)."""
        self._cache.clear()

    def replace_model(self, onnx_model: bytes) -> None:
        """Use ``onnx_model`` from now on (e.g. its quantized form); cached engines go."""
        self.onnx_model = onnx_model
        self._cache.clear()

    def run_native(self, inputs: Sequence[np.ndarray],
                   shapes: Shapes | None = None) -> list[np.ndarray]:
        if not native_fallback_allowed():
            raise EngineError(
                f"{self.name}: no usable engine and native segment execution is disallowed "
                f"(TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION=0); "
                f"last error: {self.stats.last_error}")
        return self._native(inputs, shapes or tuple(tuple(np.shape(x)) for x in inputs))

    def _native(self, inputs: Sequence[np.ndarray], shapes: Shapes) -> list[np.ndarray]:
        if self.native is None:
            raise EngineError(f"{self.name}: no usable engine and no native segment to run")
        self.stats.add(shapes, native_calls=1)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: shapes %s ran on the native segment (%s)", self.name, _fmt(shapes),
                      "collecting shapes for profiles" if self.collector is not None
                      else self.stats.last_error or "no engine serves them")
        return self.native(inputs)

    def _failed(self, message: str, remedy: str | None = None) -> None:
        self.stats.last_error = message
        fallback = remedy or ("running the native segment instead"
                              if native_fallback_allowed() else "native fallback is disabled")
        self._warn_once("failure", f"{message}; {fallback}")

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("%s: %s", self.name, message)

