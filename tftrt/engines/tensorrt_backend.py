"""TensorRT backend, written to TensorRT 10's documented Python API.

No machine this project runs on has TensorRT; this backend is type-checked
against ``tensorrt-stubs`` only and never claimed as run. It stays thin and
standard: OnnxParser, a builder config with one optimization profile, and a
serialized plan as the engine bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec

import numpy as np

from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.types import BuildConfig, Engine, EngineBackend


def _cuda_available() -> bool:
    try:
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:
        return False


class TensorRTEngine:
    backend = "tensorrt"

    def __init__(self, plan: bytes, precision: str) -> None:
        import tensorrt as trt

        self._plan = plan
        self.precision = precision
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [n for n in names
                        if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names
                         if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        # Device buffers go through TensorFlow, which owns the CUDA context.
        import tensorflow as tf

        with tf.device("GPU:0"):
            dev_in = [tf.identity(x) for x in inputs]
            for name, t in zip(self._inputs, dev_in, strict=True):
                self._context.set_input_shape(name, tuple(t.shape))
                self._context.set_tensor_address(name, _device_ptr(t))
            outs = []
            for name in self._outputs:
                shape = tuple(self._context.get_tensor_shape(name))
                dtype = _np_dtype(self._engine.get_tensor_dtype(name))
                t = tf.zeros(shape, dtype=dtype)
                self._context.set_tensor_address(name, _device_ptr(t))
                outs.append(t)
            if not self._context.execute_async_v3(0):
                raise RuntimeError("TensorRT execution failed")
            return [t.numpy() for t in outs]

    def serialize(self) -> bytes:
        return self._plan


def _device_ptr(t) -> int:
    raise NotImplementedError("device pointers of TensorFlow tensors need a CUDA build")


def _np_dtype(trt_dtype) -> np.dtype:
    import tensorrt as trt

    return np.dtype(trt.nptype(trt_dtype))


class TensorRTBackend:
    name = "tensorrt"

    def available(self) -> bool:
        return find_spec("tensorrt") is not None and _cuda_available()

    def version(self) -> str:
        import tensorrt as trt

        return trt.__version__

    def build(self, model_bytes: bytes, config: BuildConfig) -> Engine:
        import tensorrt as trt

        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model_bytes):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise RuntimeError("TensorRT's ONNX parser failed: " + "; ".join(errors))
        cfg = builder.create_builder_config()
        cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.max_workspace_size_bytes)
        profile = builder.create_optimization_profile()
        for k, shape in enumerate(config.input_shapes):
            tensor = network.get_input(k)
            dims = [d if d is not None else 1 for d in shape]
            profile.set_shape(tensor.name, dims, dims, dims)
        cfg.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, cfg)
        if plan is None:
            raise RuntimeError("TensorRT failed to build the engine")
        return TensorRTEngine(bytes(plan), config.precision_mode)

    def deserialize(self, data: bytes, config: BuildConfig) -> Engine:
        return TensorRTEngine(data, config.precision_mode)


@hookimpl
def tftrt_engine_backends() -> list[EngineBackend]:
    return [TensorRTBackend()]
