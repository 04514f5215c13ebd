"""Choosing the engine backend by name, ``"auto"`` included (TensorFlow-free)."""

from __future__ import annotations

from tftrt.plugins.manager import Registry, get_registry
from tftrt.plugins.types import EngineBackend

# "auto" on a machine with a CUDA GPU: TensorRT where it imports, else ONNX Runtime's CUDA
# provider; without one, the CPU backends, fastest first.
AUTO_GPU = ("tensorrt", "onnxruntime")
AUTO_CPU = ("openvino", "onnxruntime")


def _gpu_ready(backend: EngineBackend) -> bool:
    """TensorRT's backend is available only with a GPU; others say so through
    ``gpu_available()`` (ONNX Runtime: its CUDA provider loads and finds a GPU)."""
    if not backend.available():
        return False
    probe = getattr(backend, "gpu_available", None)
    return backend.name == "tensorrt" if probe is None else bool(probe())


def select_backend(name: str, registry: Registry | None = None) -> EngineBackend:
    """The backend called ``name``. ``"auto"``: tensorrt if it imports and finds a GPU,
    else onnxruntime if its CUDA provider runs, else openvino, else onnxruntime."""
    registry = registry or get_registry()
    if not isinstance(name, str):
        raise ValueError(f"backend must be a string, got {name!r}")
    known = registry.backend_names()
    if name.lower() == "auto":
        for candidate in AUTO_GPU:
            if candidate in known and _gpu_ready(registry.backend(candidate)):
                return registry.backend(candidate)
        for candidate in AUTO_CPU:
            if candidate in known and registry.backend(candidate).available():
                return registry.backend(candidate)
        raise ValueError("no engine backend is available: install openvino or onnxruntime")
    backend = registry.backend(name.lower())
    if not backend.available():
        raise ValueError(f"engine backend {name!r} is not available on this machine")
    return backend
