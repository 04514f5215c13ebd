"""Engine op runtime: engine cache, native fallback, and running converted graphs.

``tftrt.runtime.load(path)`` serves a fully converted model without TensorFlow
(``tftrt.runtime.standalone``); importing this package imports no TensorFlow.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("load", "StandaloneModel"):
        from tftrt.runtime import standalone

        return getattr(standalone, name)
    raise AttributeError(f"module 'tftrt.runtime' has no attribute {name!r}")


__all__ = ["StandaloneModel", "load"]
