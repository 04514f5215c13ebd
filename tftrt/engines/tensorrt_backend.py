"""TensorRT backend, written to TensorRT 10's documented Python API.

No machine this project runs on has TensorRT: this backend is checked against
``tensorrt-stubs`` only (tests/test_tensorrt_backend.py) and never claimed as
run. It stays thin and standard: ``OnnxParser``, a builder config with one
optimization profile of the build shapes, a serialized plan as the engine
bytes, and execution with ``execute_async_v3`` on device buffers managed
through cuda-python.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.util import find_spec
from typing import Any

import numpy as np

from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.types import BuildConfig, Engine, EngineBackend


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _check(result: Any) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` result, raising on error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else values


def _cuda_device_count() -> int:
    try:
        return int(_check(_cudart().cudaGetDeviceCount()))
    except Exception:
        return 0


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
        import tensorrt as trt

        cudart = _cudart()
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        stream = _check(cudart.cudaStreamCreate())
        buffers: list[int] = []
        try:
            for name, x in zip(self._inputs, inputs, strict=True):
                x = np.ascontiguousarray(x)
                self._context.set_input_shape(name, tuple(x.shape))
                ptr = _check(cudart.cudaMalloc(max(x.nbytes, 1)))
                buffers.append(ptr)
                _check(cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, h2d, stream))
                self._context.set_tensor_address(name, ptr)
            outs = []
            for name in self._outputs:
                shape = tuple(self._context.get_tensor_shape(name))
                host = np.empty(shape, dtype=np.dtype(trt.nptype(
                    self._engine.get_tensor_dtype(name))))
                ptr = _check(cudart.cudaMalloc(max(host.nbytes, 1)))
                buffers.append(ptr)
                self._context.set_tensor_address(name, ptr)
                outs.append((host, ptr))
            if not self._context.execute_async_v3(stream):
                raise RuntimeError("TensorRT execution failed")
            for host, ptr in outs:
                _check(cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, stream))
            _check(cudart.cudaStreamSynchronize(stream))
            return [host for host, _ in outs]
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)
            cudart.cudaStreamDestroy(stream)

    def serialize(self) -> bytes:
        return self._plan


class TensorRTBackend:
    name = "tensorrt"

    def available(self) -> bool:
        return (find_spec("tensorrt") is not None and find_spec("cuda") is not None
                and _cuda_device_count() > 0)

    def version(self) -> str:
        import tensorrt as trt

        return str(trt.__version__)

    def build(self, model_bytes: bytes, config: BuildConfig) -> Engine:
        import tensorrt as trt

        if any(d is None for shape in config.input_shapes for d in shape):
            raise ValueError("the TensorRT backend builds for concrete input shapes; "
                             "run build() with the shapes to serve")
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model_bytes):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise RuntimeError("TensorRT's ONNX parser failed: " + "; ".join(errors))
        cfg = builder.create_builder_config()
        cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                  min(config.max_workspace_size_bytes, 1 << 40))
        precision = "FP32"
        # FP16 arrives as an FP16-cast ONNX (tftrt.compiler.precision); the flag lets
        # TensorRT < 11 pick half kernels elsewhere too. INT8 arrives as Q/DQ pairs.
        if config.precision_mode in ("FP16", "INT8") and builder.platform_has_fast_fp16:
            cfg.set_flag(trt.BuilderFlag.FP16)
            precision = "FP16"
        if config.precision_mode == "INT8":
            cfg.set_flag(trt.BuilderFlag.INT8)
            precision = "INT8"
        profile = builder.create_optimization_profile()
        for k, shape in enumerate(config.input_shapes):
            dims = trt.Dims([int(d) for d in shape if d is not None])
            profile.set_shape(network.get_input(k).name, dims, dims, dims)
        cfg.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, cfg)
        if plan is None:
            raise RuntimeError("TensorRT failed to build the engine")
        return TensorRTEngine(bytes(plan), precision)

    def deserialize(self, data: bytes, config: BuildConfig) -> Engine:
        return TensorRTEngine(data, config.precision_mode)


@hookimpl
def tftrt_engine_backends() -> list[EngineBackend]:
    return [TensorRTBackend()]
