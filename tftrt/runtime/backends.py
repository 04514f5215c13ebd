"""Choosing the engine backend by name, ``"auto"`` included, and the backends the
TensorFlow-free runtime can use."""

from __future__ import annotations

from collections.abc import Mapping

from tftrt.plugins.manager import get_registry, runtime_registry
from tftrt.plugins.types import EngineBackend

# "auto" on a machine with a CUDA GPU: TensorRT where it imports, else ONNX Runtime's CUDA
# provider; without one, the CPU backends, fastest first.
AUTO_GPU = ("tensorrt", "onnxruntime")
AUTO_CPU = ("openvino", "onnxruntime")


def runtime_backends() -> Mapping[str, EngineBackend]:
    """Every installed engine backend, loaded without tftrt's conversion plugins (no
    TensorFlow import)."""
    registry = runtime_registry()
    return {n: registry.backend(n) for n in registry.backend_names()}


def _gpu_ready(backend: EngineBackend) -> bool:
    """TensorRT's backend is available only with a GPU; others say so through
    ``gpu_available()`` (ONNX Runtime: its CUDA provider loads and finds a GPU)."""
    if not backend.available():
        return False
    probe = getattr(backend, "gpu_available", None)
    return backend.name == "tensorrt" if probe is None else bool(probe())


def select_backend(name: str, backends: Mapping[str, EngineBackend] | None = None
                   ) -> EngineBackend:
    """The backend called ``name`` (among ``backends``, by default the registry's).
    ``"auto"``: tensorrt if it imports and finds a GPU, else onnxruntime if its CUDA
    provider runs, else openvino, else onnxruntime."""
    if backends is None:
        registry = get_registry()
        backends = {n: registry.backend(n) for n in registry.backend_names()}
    if not isinstance(name, str):
        raise ValueError(f"backend must be a string, got {name!r}")
    if name.lower() == "auto":
        for candidate in AUTO_GPU:
            if candidate in backends and _gpu_ready(backends[candidate]):
                return backends[candidate]
        for candidate in AUTO_CPU:
            if candidate in backends and backends[candidate].available():
                return backends[candidate]
        raise ValueError("no engine backend is available: install openvino or onnxruntime")
    backend = backends.get(name.lower())
    if backend is None:
        raise ValueError(f"unknown engine backend {name!r}; registered: {sorted(backends)}")
    if not backend.available():
        raise ValueError(f"engine backend {name!r} is not available on this machine")
    return backend
