"""OpenVINO backend: the fastest engine on x86 CPUs.

FP32 pins ``INFERENCE_PRECISION_HINT=f32`` (the CPU plugin would otherwise run
bf16 on CPUs with AMX and drift by ~1e-2). FP16 allows the plugin's fast
half precision: bf16 where the CPU has bf16 kernels, f16 where it has f16
ones, else FP32. INT8 runs the model's QuantizeLinear/DequantizeLinear pairs
as int8 kernels (OpenVINO's low-precision transformations) and allows half
precision elsewhere, as FP16 does. The engine reports what it runs, read
from the compiled model: INT8 when a convolution or matrix multiplication
executes in i8/u8, else the inference precision. Engines serialize with
OpenVINO's export/import of compiled models, so loading never recompiles.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from importlib.util import find_spec

import numpy as np

from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.types import BuildConfig, Engine, EngineBackend

_HINT_TO_PRECISION = {"f32": "FP32", "float32": "FP32", "bf16": "BF16", "bfloat16": "BF16",
                      "f16": "FP16", "float16": "FP16"}


def _core():
    import openvino as ov

    global _CORE
    try:
        core = _CORE
    except NameError:
        core = _CORE = ov.Core()
    _install_layer_extensions(core)
    return core


_INSTALLED_LAYERS: set[str] = set()


def _install_layer_extensions(core) -> None:
    """Add the frontend extensions of the plugin layers that lower natively on OpenVINO
    (``tftrt_plugin_layers``), once per layer and process, before any model is read."""
    from tftrt.plugins.manager import get_registry

    for op_type, lowering in get_registry().layer_lowerings(OpenVinoBackend.name):
        if op_type not in _INSTALLED_LAYERS:
            core.add_extension(lowering.extension())
            _INSTALLED_LAYERS.add(op_type)


def _precision_hint(precision_mode: str) -> str:
    if precision_mode == "FP32":
        return "f32"
    caps = set(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if "BF16" in caps:
        return "bf16"
    if "FP16" in caps:
        return "f16"
    return "f32"


def _properties(config: BuildConfig) -> dict[str, str]:
    return {"INFERENCE_PRECISION_HINT": _precision_hint(config.precision_mode),
            "PERFORMANCE_HINT": "LATENCY"}


_INT8_LAYERS = frozenset({"Convolution", "FullyConnected", "MatMul", "GroupConvolution",
                          "Deconvolution"})


def _runs_int8(compiled) -> bool:
    """True when a convolution or matrix multiplication of ``compiled`` executes in i8/u8."""
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info or "runtimePrecision" not in info:
            continue
        if (info["layerType"].astype(str) in _INT8_LAYERS
                and info["runtimePrecision"].astype(str) in ("i8", "u8")):
            return True
    return False


class OpenVinoEngine:
    backend = "openvino"

    def __init__(self, compiled) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._outputs = list(compiled.outputs)
        self._lock = threading.Lock()
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        name = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        self.precision = "INT8" if _runs_int8(compiled) else \
            _HINT_TO_PRECISION.get(name, name.upper())

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            result = self._request.infer(list(inputs))
            return [np.array(result[o]) for o in self._outputs]

    def serialize(self) -> bytes:
        stream = self._compiled.export_model()
        return stream.getvalue() if isinstance(stream, io.BytesIO) else bytes(stream)


class OpenVinoBackend:
    name = "openvino"

    def available(self) -> bool:
        return find_spec("openvino") is not None

    def version(self) -> str:
        import openvino as ov

        return ov.__version__

    def build(self, model_bytes: bytes, config: BuildConfig) -> Engine:
        core = _core()
        model = core.read_model(model_bytes, b"")
        if config.input_shapes and all(
                s is not None and all(d is not None and d >= 0 for d in s)
                for s in config.input_shapes):
            model.reshape({k: list(s) for k, s in enumerate(config.input_shapes)})
        props = _properties(config)
        try:
            return OpenVinoEngine(core.compile_model(model, "CPU", props))
        except RuntimeError:
            # Half precision is allowed, never required: some int8 layers have no bf16
            # kernel on AMX CPUs ("No suitable implementations"); FP32 around them does.
            if props["INFERENCE_PRECISION_HINT"] == "f32":
                raise
            return OpenVinoEngine(core.compile_model(model, "CPU",
                                                     {**props, "INFERENCE_PRECISION_HINT": "f32"}))

    def deserialize(self, data: bytes, config: BuildConfig) -> Engine:
        compiled = _core().import_model(io.BytesIO(data), "CPU", _properties(config))
        return OpenVinoEngine(compiled)


@hookimpl
def tftrt_engine_backends() -> list[EngineBackend]:
    return [OpenVinoBackend()]
