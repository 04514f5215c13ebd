"""tftrt: TF-TRT's workflow for today's TensorFlow, on OpenVINO, ONNX Runtime and TensorRT."""

from __future__ import annotations

from tftrt._version import __version__


def supported_ops() -> list[str]:
    """The op types the registry (built-ins plus installed plugins) can convert."""
    from tftrt.plugins.manager import get_registry

    return get_registry().supported_ops()


def load(export_dir: str, backend: str | None = None):
    """Load a converted SavedModel with its engines (no rebuild); see ``tftrt.compiler.saving``."""
    from tftrt.compiler.saving import load_converted

    return load_converted(export_dir, backend)


__all__ = ["__version__", "load", "supported_ops"]
