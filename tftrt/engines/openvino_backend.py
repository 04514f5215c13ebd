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

Profiles: a static profile (min == max) is a static compiled model; a ranged one
is a compiled model with bounded dynamic dimensions [min, max], plus a static one
at its optimal shape, which runs about 15-30% faster than the bounded model at
that shape (MobileNetV2 here). A call runs on the static model of its exact shapes
if there is one, else on the first bounded model whose range contains them.
Compiled models keep a pool of inference requests, so threads run concurrently.
Only the first compiled model of an engine is compiled before build() returns; the
others compile in the background, and a call that needs one waits for it.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import threading
from collections.abc import Sequence
from importlib.util import find_spec

import numpy as np

from tftrt.engines.cpu import isa_signature
from tftrt.engines.onnx_work import multiply_adds
from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.types import (
    BuildConfig,
    Engine,
    EngineBackend,
    NumericLimits,
    ShapeProfile,
    Shapes,
)

_HINT_TO_PRECISION = {"f32": "FP32", "float32": "FP32", "bf16": "BF16", "bfloat16": "BF16",
                      "f16": "FP16", "float16": "FP16"}


_CORE_LOCK = threading.Lock()
_CORE = None


def _core():
    """The process's OpenVINO core, made once."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            import openvino as ov

            # OpenVINO's Python binding fills its numpy <-> element type tables on first
            # use, under a C++ static guard that deadlocks when two threads holding and
            # wanting the GIL get there together (seen: two inference calls from
            # TensorFlow's threads). Fill them here, on one thread.
            ov.Tensor(np.zeros((1,), np.float32)).data  # noqa: B018
            _CORE = ov.Core()
        _install_layer_extensions(_CORE)
        return _CORE


_INSTALLED_LAYERS: set[str] = set()


def _install_layer_extensions(core) -> None:
    """Add the frontend extensions of the plugin layers that lower natively on OpenVINO
    (``tftrt_plugin_layers``), once per layer and process, before any model is read."""
    from tftrt.plugins.manager import runtime_registry

    for op_type, lowering in runtime_registry().layer_lowerings(OpenVinoBackend.name):
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


# Engines doing fewer multiply-adds than this run on the calling thread alone: waking
# OpenVINO's other threads costs more than they save (a 2x64x64 MLP: 0.035 ms on two
# threads, 0.022 ms on one; inside a TF graph the wake-up is dearer still).
SMALL_ENGINE_MACS = 1_000_000
_SMALL_MODEL_BYTES = 4 << 20  # larger models are not shape-inferred to find out


def _properties(config: BuildConfig, model_bytes: bytes | None = None) -> dict[str, str]:
    props = {"INFERENCE_PRECISION_HINT": _precision_hint(config.precision_mode),
             "PERFORMANCE_HINT": "LATENCY"}
    if model_bytes is not None and len(model_bytes) <= _SMALL_MODEL_BYTES:
        shapes = config.profiles[0].max if config.profiles else None
        try:
            macs = multiply_adds(model_bytes, shapes)
        except Exception:  # an estimate only: keep OpenVINO's threads
            macs = None
        if macs is not None and macs < SMALL_ENGINE_MACS:
            props["INFERENCE_NUM_THREADS"] = "1"
    return props


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


# Compiled models an engine needs later than its first are compiled here, in the
# background, so that build() waits for one compile only.
_BACKGROUND = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tftrt-openvino")


class _Compiled:
    """One compiled model (or its compile in progress), the shape range it serves, and its
    pool of inference requests."""

    def __init__(self, compiled, lo: Shapes | None, hi: Shapes | None) -> None:
        self._source, self.lo, self.hi = compiled, lo, hi
        self._idle: list = []
        self._outputs: list | None = None
        self._lean: bool | None = None  # known once the compile is done (_new_request)
        self._lock = threading.Lock()

    @property
    def compiled(self):
        if isinstance(self._source, concurrent.futures.Future):
            self._source = self._source.result()  # raises what the compile raised
        return self._source

    @property
    def outputs(self) -> list:
        if self._outputs is None:
            self._outputs = list(self.compiled.outputs)
        return self._outputs

    @property
    def static(self) -> bool:
        return self.lo is not None and self.lo == self.hi

    def serves(self, shapes: Shapes) -> bool:
        if self.lo is None:
            return True
        return ShapeProfile(self.lo, self.hi, self.hi).contains(shapes)

    def _new_request(self):
        """A new inference request (the first one also settles how requests are run)."""
        if self._lean is None:
            import openvino as ov

            # Numeric tensors go in and out through the request's own tensors: an input is
            # shared with OpenVINO, not copied, and the Python-side dispatch of
            # infer(inputs) (about 0.05 ms a call) is skipped. Strings take OpenVINO's
            # general path.
            self._n_out = len(self.outputs)
            self._tensor = ov.Tensor
            self._lean = all(p.get_element_type().is_static() and
                             p.get_element_type() != ov.Type.string
                             for p in list(self.compiled.inputs) + self.outputs)
        return self.compiled.create_infer_request()

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            request = self._idle.pop() if self._idle else self._new_request()
        try:
            if not self._lean:
                result = request.infer(list(inputs))
                return [np.array(result[o]) for o in self.outputs]
            tensor = self._tensor
            for k, x in enumerate(inputs):
                flags = getattr(x, "flags", None)
                if flags is None or not (flags.c_contiguous and flags.writeable):
                    x = np.array(x, order="C")  # OpenVINO shares only writeable C arrays
                request.set_input_tensor(k, tensor(x, shared_memory=True))
            request.infer()
            # copied: the request's output buffers are reused by its next call
            return [request.get_output_tensor(k).data.copy() for k in range(self._n_out)]
        finally:
            with self._lock:
                self._idle.append(request)


_BLOB_MAGIC = b"TFTRT-OPENVINO-1\n"


class OpenVinoEngine:
    backend = "openvino"

    def __init__(self, parts: list[_Compiled], threads: str | None = None) -> None:
        self._parts = parts
        self.threads = threads  # INFERENCE_NUM_THREADS it was compiled with, if set
        self._static = {p.lo: p for p in parts if p.static}
        first = parts[0].compiled
        hint = first.get_property("INFERENCE_PRECISION_HINT")
        name = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        self.precision = "INT8" if _runs_int8(first) else \
            _HINT_TO_PRECISION.get(name, name.upper())
        n_static = sum(p.static for p in parts)
        ways = [f"{n_static} static compiled model{'s' * (n_static != 1)}"] if n_static else []
        if len(parts) > n_static:
            n = len(parts) - n_static
            ways.append(f"{n} with bounded dynamic dims")
        self.realization = "openvino: " + " + ".join(ways)

    def _part(self, shapes: Shapes) -> _Compiled:
        exact = self._static.get(shapes)
        if exact is not None:
            return exact
        for part in self._parts:
            if not part.static and part.serves(shapes):
                return part
        return self._parts[0]  # let OpenVINO say what does not fit

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(self._parts) == 1:
            return self._parts[0].run(inputs)
        return self._part(tuple(np.shape(x) for x in inputs)).run(inputs)

    def serialize(self) -> bytes:
        """All compiled models of the engine: a JSON header of their shape ranges, then
        each one's OpenVINO export, concatenated."""
        blobs = [_export(p.compiled) for p in self._parts]
        header = json.dumps({"parts": [
            {"min": None if p.lo is None else [list(s) for s in p.lo],
             "max": None if p.hi is None else [list(s) for s in p.hi], "size": len(b)}
            for p, b in zip(self._parts, blobs, strict=True)],
            **({"threads": self.threads} if self.threads else {})}).encode()
        return _BLOB_MAGIC + len(header).to_bytes(8, "little") + header + b"".join(blobs)

    def export(self, stem: str) -> list[str]:
        """Each compiled model as a blob ``core.import_model`` (and benchmark_app) open."""
        paths = []
        for part in self._parts:
            tag = "any" if part.lo is None else ShapeProfile(part.lo, part.hi, part.hi).tag
            path = f"{stem}.{tag}.blob" if len(self._parts) > 1 else f"{stem}.blob"
            with open(path + ".tmp", "wb") as f:
                f.write(_export(part.compiled))
            os.replace(path + ".tmp", path)
            paths.append(path)
        return paths


def _export(compiled) -> bytes:
    stream = compiled.export_model()
    return stream.getvalue() if isinstance(stream, io.BytesIO) else bytes(stream)


def _shapes(v) -> Shapes | None:
    return None if v is None else tuple(tuple(int(d) for d in s) for s in v)


def _ranges(config: BuildConfig) -> list[tuple[Shapes | None, Shapes | None]]:
    """The shape ranges to compile: static profiles as they are; a ranged profile as its
    optimal shape, then its bounded range. No profiles: the build shapes (or none)."""
    if not config.profiles:
        shapes = config.input_shapes
        if shapes and all(s is not None and all(d is not None and d >= 0 for d in s)
                          for s in shapes):
            fixed = tuple(tuple(int(d) for d in s) for s in shapes)
            return [(fixed, fixed)]
        return [(None, None)]
    out: list[tuple[Shapes | None, Shapes | None]] = []
    for p in config.profiles:
        for rng in ([(p.min, p.max)] if p.static else [(p.opt, p.opt), (p.min, p.max)]):
            if rng not in out:
                out.append(rng)
    return out


# Measured on OpenVINO's CPU plugin (tests/test_backend_numerics.py holds it to this):
# int64 tensors run as int32; these ops are exact on int32 of any magnitude, the others
# (Div, Mod, Clip, MatMul, Pad, Resize, ReduceSum/Max/Min, ...) compute in float32.
_EXACT_INTEGER_OPS = frozenset({
    "Abs", "Add", "And", "ArgMax", "ArgMin", "Cast", "Concat", "ConstantOfShape", "CumSum",
    "Equal", "Expand", "Flatten", "Gather", "GatherElements", "GatherND", "Greater",
    "GreaterOrEqual", "Identity", "Less", "LessOrEqual", "Max", "Min", "Mul", "Neg",
    "NonMaxSuppression", "Not", "Or", "Range", "Reshape", "ScatterElements", "ScatterND",
    "Shape", "Sign", "Size", "Slice", "Split", "Squeeze", "Sub", "Tile", "TopK", "Transpose",
    "Unsqueeze", "Where", "Xor"})
OPENVINO_LIMITS = NumericLimits(narrowed={np.dtype(np.int64): (1 << 31) - 1,
                                          np.dtype(np.uint64): (1 << 31) - 1},
                                exact_integer_ops=_EXACT_INTEGER_OPS)


class OpenVinoBackend:
    name = "openvino"

    def numeric_limits(self) -> NumericLimits:
        """int64 runs as int32; some ops compute integers in float32 (see OPENVINO_LIMITS)."""
        return OPENVINO_LIMITS

    def available(self) -> bool:
        return find_spec("openvino") is not None

    def version(self) -> str:
        import openvino as ov

        return ov.__version__

    def target(self) -> str:
        """Compiled models hold kernels for this CPU's instruction sets."""
        caps = ",".join(sorted(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")))
        return f"{isa_signature()};openvino-caps:{caps}"

    def build(self, model_bytes: bytes, config: BuildConfig) -> Engine:
        import openvino as ov

        core = _core()
        props = _properties(config, model_bytes)
        parts = []
        for lo, hi in _ranges(config):
            model = core.read_model(model_bytes, b"")
            if lo is not None:
                model.reshape({k: ov.PartialShape([ov.Dimension(a, b) for a, b in
                                                    zip(lo[k], hi[k], strict=True)])
                               for k in range(len(lo))})
            compiled = (_compile(core, model, props) if not parts else
                        _BACKGROUND.submit(_compile, core, model, props))
            parts.append(_Compiled(compiled, lo, hi))
        return OpenVinoEngine(parts, props.get("INFERENCE_NUM_THREADS"))

    def deserialize(self, data: bytes, config: BuildConfig) -> Engine:
        core = _core()
        props = _properties(config)
        if not data.startswith(_BLOB_MAGIC):
            raise ValueError("not a tftrt OpenVINO engine (unknown header)")
        pos = len(_BLOB_MAGIC)
        size = int.from_bytes(data[pos:pos + 8], "little")
        header = json.loads(data[pos + 8:pos + 8 + size])
        pos += 8 + size
        if header.get("threads"):
            props["INFERENCE_NUM_THREADS"] = str(header["threads"])
        parts = []
        for meta in header["parts"]:
            blob = data[pos:pos + meta["size"]]
            if len(blob) != meta["size"]:
                raise ValueError("the OpenVINO engine is truncated")
            pos += meta["size"]
            parts.append(_Compiled(core.import_model(io.BytesIO(blob), "CPU", props),
                                   _shapes(meta["min"]), _shapes(meta["max"])))
        if not parts:
            raise ValueError("the OpenVINO engine holds no compiled model")
        return OpenVinoEngine(parts, props.get("INFERENCE_NUM_THREADS"))


def _compile(core, model, props: dict[str, str]):
    try:
        return core.compile_model(model, "CPU", props)
    except RuntimeError:
        # Half precision is allowed, never required: some int8 layers have no bf16
        # kernel on AMX CPUs ("No suitable implementations"); FP32 around them does.
        if props["INFERENCE_PRECISION_HINT"] == "f32":
            raise
        return core.compile_model(model, "CPU", {**props, "INFERENCE_PRECISION_HINT": "f32"})


@hookimpl
def tftrt_engine_backends() -> list[EngineBackend]:
    return [OpenVinoBackend()]
