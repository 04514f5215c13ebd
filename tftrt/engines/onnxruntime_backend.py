"""ONNX Runtime backend: the portable reference engine.

The serialized engine is the ONNX model itself: ONNX Runtime re-creates its
session from it in milliseconds, and the bytes run anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.util import find_spec

import numpy as np

from tftrt.engines import has_qdq
from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.types import BuildConfig, Engine, EngineBackend


class OnnxRuntimeEngine:
    backend = "onnxruntime"
    realization = "onnxruntime: one session runs every shape of every profile"

    def __init__(self, model_bytes: bytes, config: BuildConfig) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning: spinning ones take the cores
        # from TensorFlow's ops between engine calls (5-15x slower engines inside a graph)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._bytes = model_bytes
        self._session = ort.InferenceSession(model_bytes, opts,
                                             providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        # ONNX Runtime's CPU provider has no faster half kernels: FP16 runs as FP32.
        # Q/DQ pairs around convolutions and matrix multiplications run as int8 kernels.
        self.precision = "INT8" if has_qdq(model_bytes) else "FP32"

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, dict(zip(self._inputs, inputs, strict=True)))

    def serialize(self) -> bytes:
        return self._bytes

    def export(self, stem: str) -> list[str]:
        """The engine as the ONNX model ONNX Runtime's tools open."""
        path = f"{stem}.onnx"
        with open(path + ".tmp", "wb") as f:
            f.write(self._bytes)
        os.replace(path + ".tmp", path)
        return [path]


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def available(self) -> bool:
        return find_spec("onnxruntime") is not None

    def version(self) -> str:
        import onnxruntime as ort

        return ort.__version__

    def build(self, model_bytes: bytes, config: BuildConfig) -> Engine:
        return OnnxRuntimeEngine(model_bytes, config)

    def deserialize(self, data: bytes, config: BuildConfig) -> Engine:
        return OnnxRuntimeEngine(data, config)


@hookimpl
def tftrt_engine_backends() -> list[EngineBackend]:
    return [OnnxRuntimeBackend()]
