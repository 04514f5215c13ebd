"""TensorRT backend, written to TensorRT 10's documented Python API.

No machine this project runs on has TensorRT: this backend is checked against
``tensorrt-stubs`` only (tests/test_tensorrt_backend.py) and never claimed as
run. It stays thin and standard: ``OnnxParser``, a builder config with one
optimization profile per tftrt profile (min/opt/max as the runtime made them),
a serialized plan as the engine bytes, and execution with ``execute_async_v3``
on device buffers managed through cuda-python, on one execution context per
profile (the first profile containing a call's shapes, TF-TRT's rule).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib.util import find_spec
from typing import Any

import numpy as np

import tftrt.env as env
from tftrt.engines.topk_limit import TENSORRT_MAX_TOP_K, limit_nms_top_k
from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.types import BuildConfig, Engine, EngineBackend, ShapeProfile


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

    def __init__(self, plan: bytes, precision: str,
                 profiles: Sequence[ShapeProfile] = ()) -> None:
        import tensorrt as trt

        self._plan = plan
        self.precision = precision
        self._profiles = tuple(profiles)
        self.realization = (f"tensorrt: one engine with {max(1, len(self._profiles))} "
                            "optimization profile(s)")
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        self._inputs = [n for n in names
                        if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names
                         if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._contexts = []
        self._locks = []
        for k in range(max(1, self._engine.num_optimization_profiles)):
            context = self._engine.create_execution_context()
            if k:
                stream = _check(_cudart().cudaStreamCreate())
                context.set_optimization_profile_async(k, stream)
                _check(_cudart().cudaStreamSynchronize(stream))
                _cudart().cudaStreamDestroy(stream)
            self._contexts.append(context)
            self._locks.append(threading.Lock())  # a context runs one call at a time

    def _profile_index(self, shapes: tuple[tuple[int, ...], ...]) -> int:
        for k, p in enumerate(self._profiles):
            if p.contains(shapes):
                return k
        return 0

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        k = self._profile_index(tuple(tuple(np.shape(x)) for x in inputs))
        with self._locks[k]:
            return self._run(self._contexts[k], inputs)

    def _run(self, context: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        import tensorrt as trt

        cudart = _cudart()
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        stream = _check(cudart.cudaStreamCreate())
        buffers: list[int] = []
        try:
            for name, x in zip(self._inputs, inputs, strict=True):
                x = np.ascontiguousarray(x)
                context.set_input_shape(name, tuple(x.shape))
                ptr = _check(cudart.cudaMalloc(max(x.nbytes, 1)))
                buffers.append(ptr)
                _check(cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, h2d, stream))
                context.set_tensor_address(name, ptr)
            outs = []
            for name in self._outputs:
                shape = tuple(context.get_tensor_shape(name))
                host = np.empty(shape, dtype=np.dtype(trt.nptype(
                    self._engine.get_tensor_dtype(name))))
                ptr = _check(cudart.cudaMalloc(max(host.nbytes, 1)))
                buffers.append(ptr)
                context.set_tensor_address(name, ptr)
                outs.append((host, ptr))
            if not context.execute_async_v3(stream):
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

    def target(self) -> str:
        """A plan runs only on the GPU model and TensorRT version that built it."""
        import tensorrt as trt

        cudart = _cudart()
        props = _check(cudart.cudaGetDeviceProperties(0))
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return f"tensorrt {trt.__version__};{name};sm_{props.major}{props.minor}"

    def build(self, model_bytes: bytes, config: BuildConfig) -> Engine:
        import tensorrt as trt

        profiles = tuple(config.profiles) or _static_profile(config.input_shapes)
        model_bytes = limit_nms_top_k(model_bytes, TENSORRT_MAX_TOP_K,
                                      env.get("TF_TRT_ALLOW_NMS_TOPK_OVERRIDE"))
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
        for p in profiles:
            profile = builder.create_optimization_profile()
            for k in range(network.num_inputs):
                profile.set_shape(network.get_input(k).name, trt.Dims(list(p.min[k])),
                                  trt.Dims(list(p.opt[k])), trt.Dims(list(p.max[k])))
            cfg.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, cfg)
        if plan is None:
            raise RuntimeError("TensorRT failed to build the engine")
        return TensorRTEngine(bytes(plan), precision, profiles)

    def deserialize(self, data: bytes, config: BuildConfig) -> Engine:
        return TensorRTEngine(data, config.precision_mode, config.profiles)


def _static_profile(shapes: Sequence[tuple[int | None, ...]]) -> tuple[ShapeProfile, ...]:
    if any(d is None for shape in shapes for d in shape):
        raise ValueError("the TensorRT backend builds for concrete input shapes or profiles; "
                         "run build() with the shapes to serve")
    fixed = tuple(tuple(int(d) for d in s) for s in shapes)
    return (ShapeProfile(fixed, fixed, fixed),)


@hookimpl
def tftrt_engine_backends() -> list[EngineBackend]:
    return [TensorRTBackend()]
