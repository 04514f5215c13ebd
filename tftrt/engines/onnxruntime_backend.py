"""ONNX Runtime backend: the portable reference engine, on CPUs and NVIDIA GPUs.

The serialized engine is the ONNX model itself: ONNX Runtime re-creates its
session from it in milliseconds, and the bytes run anywhere. Execution
providers come in order (TensorRT's where TensorRT is installed, CUDA's, the
CPU; see ``tftrt.engines.ort_providers``), and each engine reports the one
that actually runs it. On a GPU provider:

* FP16 runs the FP16-cast ONNX (``tftrt.engines.fp16``), cast when the engine
  is built, so a model converted on a CPU machine runs in half precision there;
* an engine built for concrete shapes has them pinned in its ONNX and, on the
  CUDA provider, replays one CUDA graph per call into fixed device buffers
  (falling back to plain execution where the graph cannot be captured); the
  other shapes its profiles hold run on a second session, made when first
  called;
* ``run_device`` takes device tensors through DLPack (CuPy, PyTorch,
  TensorFlow) and returns device-resident outputs, with no copy through the host.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from importlib.util import find_spec
from typing import Any

import numpy as np

from tftrt.engines import has_qdq
from tftrt.engines import ort_providers as prov
from tftrt.engines.fp16 import cast_to_fp16
from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.types import BuildConfig, Engine, EngineBackend

log = logging.getLogger("tftrt")


def _build_shapes(config: BuildConfig) -> list[tuple[int, ...]] | None:
    """The shapes the engine is built at, when every dimension is known."""
    shapes = [tuple(s) for s in config.input_shapes]
    if not shapes or any(d is None or d < 0 for s in shapes for d in s):
        return None
    return shapes


class OnnxRuntimeEngine:
    backend = "onnxruntime"
    realization = "onnxruntime: one session runs every shape of every profile"

    def __init__(self, model_bytes: bytes, config: BuildConfig,
                 providers: Sequence[str], cuda_graph: bool = True) -> None:
        self._bytes = model_bytes
        self._lock = threading.Lock()
        self._config, self._providers = config, list(providers)
        qdq = has_qdq(model_bytes)
        half = config.precision_mode == "FP16" and providers[0] == prov.CUDA and not qdq
        self._half = half
        shapes = _build_shapes(config) if providers[0] in prov.GPU_PROVIDERS else None
        model, out_shapes = model_bytes, None
        if shapes is not None:  # before the cast: shape inference then sees every output
            model, out_shapes = prov.pin_input_shapes(model_bytes, shapes)
        if half:
            model = cast_to_fp16(model)
        # Pinned: the build shapes run on this session; other shapes a profile holds run
        # on a second session of the unpinned model, made when first needed.
        self._pinned, self._others = shapes, None
        self.cuda_graph = False
        if (cuda_graph and providers[0] == prov.CUDA and shapes is not None
                and out_shapes is not None and None not in out_shapes):
            try:
                self._start(model, providers, config, graph=True)
                if self.provider == prov.CUDA:
                    self._capture(shapes, out_shapes)
                    self.cuda_graph = True
            except Exception as exc:
                log.info("onnxruntime: no CUDA graph for this engine (%s); running it "
                         "without one", exc)
        if not self.cuda_graph:
            self._start(model, providers, config, graph=False)
        if self.provider not in prov.GPU_PROVIDERS and (half or shapes is not None):
            # the GPU provider did not load: the plain model, on what did
            half = self._half = False
            self._pinned = None
            self._start(model_bytes, [self.provider], config, graph=False)
        if self._pinned is not None:
            self.realization = ("onnxruntime: one session for the build shapes"
                                + (" (a CUDA graph)" if self.cuda_graph else "")
                                + ", a second for the profiles' other shapes, if called")
        if self.provider == prov.TENSORRT:
            self.precision = "INT8" if qdq else "FP16" if config.precision_mode == "FP16" \
                else "FP32"
        elif self.provider == prov.CUDA:
            self.precision = "FP16" if half else "FP32"
        else:
            # The CPU provider has no faster half kernels: FP16 runs as FP32.
            # Q/DQ pairs around convolutions and matrix multiplications run as int8 kernels.
            self.precision = "INT8" if qdq else "FP32"

    def _session_for(self, shapes: Sequence[tuple[int, ...]]):
        """The session that runs these shapes, and whether it is the pinned one."""
        if self._pinned is None or [tuple(s) for s in shapes] == self._pinned:
            return self._session, self._pinned is not None
        with self._lock:
            if self._others is None:
                model = cast_to_fp16(self._bytes) if self._half else self._bytes
                self._others = self._create(model, self._providers, self._config, False)
            return self._others, False

    def _start(self, model: bytes, providers: Sequence[str], config: BuildConfig,
               graph: bool) -> None:
        self._session = self._create(model, providers, config, graph)
        self.provider = self._session.get_providers()[0]
        # what the provider runs with (e.g. the CUDA provider's use_tf32), for reports
        self.provider_options = dict(self._session.get_provider_options().get(self.provider,
                                                                               {}))
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._outputs = [o.name for o in self._session.get_outputs()]

    @property
    def runs_on(self) -> str:
        """The execution provider that runs this engine, and how."""
        return self.provider + (" with a CUDA graph" if self.cuda_graph else "")

    @staticmethod
    def _create(model: bytes, providers: Sequence[str], config: BuildConfig, graph: bool):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning: spinning ones take the cores
        # from TensorFlow's ops between engine calls (5-15x slower engines inside a graph)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if any(p in prov.GPU_PROVIDERS for p in providers):
            prov.load_cuda_libraries()
        chosen: list[Any] = []
        for name in providers:
            if name == prov.TENSORRT:
                chosen.append((name, {"trt_fp16_enable": config.precision_mode == "FP16",
                                      "trt_int8_enable": config.precision_mode == "INT8"}))
            elif name == prov.CUDA:
                chosen.append((name, {**prov.cuda_options(),
                                      "enable_cuda_graph": "1" if graph else "0"}))
            else:
                chosen.append(name)
        return ort.InferenceSession(model, opts, providers=chosen)

    def _capture(self, shapes: Sequence[tuple[int, ...]], out_shapes: Sequence[list]) -> None:
        """Bind fixed device buffers and run twice: ONNX Runtime captures the CUDA graph."""
        import onnxruntime as ort

        s = self._session
        self._in_dtypes = [_np_dtype(i.type) for i in s.get_inputs()]
        self._in_vals = [ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, dt), "cuda", 0)
                         for shape, dt in zip(shapes, self._in_dtypes, strict=True)]
        self._out_vals = [ort.OrtValue.ortvalue_from_shape_and_type(shape, _np_dtype(o.type),
                                                                    "cuda", 0)
                          for shape, o in zip(out_shapes, s.get_outputs(), strict=True)]
        binding = s.io_binding()
        for name, v in zip(self._inputs, self._in_vals, strict=True):
            binding.bind_ortvalue_input(name, v)
        for name, v in zip(self._outputs, self._out_vals, strict=True):
            binding.bind_ortvalue_output(name, v)
        self._binding = binding
        for _ in range(2):
            s.run_with_iobinding(binding)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        session, pinned = self._session_for([np.shape(x) for x in inputs])
        if not (pinned and self.cuda_graph):
            return session.run(None, dict(zip(self._inputs, inputs, strict=True)))
        with self._lock:
            for v, x, dt in zip(self._in_vals, inputs, self._in_dtypes, strict=True):
                v.update_inplace(np.ascontiguousarray(x, dtype=dt))
            # the copies run outside the provider's stream: wait for them before the replay
            self._binding.synchronize_inputs()
            self._session.run_with_iobinding(self._binding)
            return self._binding.copy_outputs_to_cpu()

    def run_device(self, inputs: Sequence[Any]) -> list[Any]:
        """Run on device tensors (anything with ``__dlpack__``; NumPy arrays are copied to
        the device); the outputs stay on the device as ``onnxruntime.OrtValue`` (read them
        with ``torch.from_dlpack``, ``cupy.from_dlpack`` or ``.numpy()`` on the CPU)."""
        import onnxruntime as ort

        if self.provider not in prov.GPU_PROVIDERS:
            raise RuntimeError(f"this engine runs on {self.provider}: run_device needs a GPU "
                               "provider")
        values = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x), "cuda", 0)
                  if isinstance(x, np.ndarray) else ort.OrtValue.from_dlpack(x)
                  for x in inputs]
        session, pinned = self._session_for([tuple(v.shape()) for v in values])
        if pinned and self.cuda_graph:
            with self._lock:
                for fixed, v in zip(self._in_vals, values, strict=True):
                    fixed.update_inplace(v)  # device to device
                self._binding.synchronize_inputs()  # the producer's and the copies' streams
                self._session.run_with_iobinding(self._binding)
                outs = []
                for fixed in self._out_vals:  # the caller's own copies: the next replay
                    out = ort.OrtValue.ortvalue_from_shape_and_type(  # overwrites these
                        fixed.shape(), _np_dtype(fixed.data_type()), "cuda", 0)
                    out.update_inplace(fixed)
                    outs.append(out)
                self._binding.synchronize_outputs()
                return outs
        binding = session.io_binding()
        for name, v in zip(self._inputs, values, strict=True):
            binding.bind_ortvalue_input(name, v)
        for name in self._outputs:
            binding.bind_output(name, "cuda", 0)
        binding.synchronize_inputs()  # the producer's stream may still be writing them
        session.run_with_iobinding(binding)
        return binding.get_outputs()

    def serialize(self) -> bytes:
        return self._bytes

    def export(self, stem: str) -> list[str]:
        """The engine as the ONNX model ONNX Runtime's tools open."""
        path = f"{stem}.onnx"
        with open(path + ".tmp", "wb") as f:
            f.write(self._bytes)
        os.replace(path + ".tmp", path)
        return [path]


_ORT_TYPES = {"float": np.float32, "float16": np.float16, "double": np.float64,
              "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
              "int64": np.int64, "bool": np.bool_}


def _np_dtype(ort_type: str) -> np.dtype:
    """NumPy's dtype for ONNX Runtime's 'tensor(float)'."""
    return np.dtype(_ORT_TYPES[ort_type.removeprefix("tensor(").removesuffix(")")])


class OnnxRuntimeBackend:
    """``providers``: execution providers in order (None: ``TFTRT_ONNXRUNTIME_PROVIDERS``,
    else TensorRT if installed, CUDA, CPU); ``cuda_graph``: None follows
    ``TFTRT_ONNXRUNTIME_CUDA_GRAPH`` (on by default)."""

    name = "onnxruntime"

    def __init__(self, providers: Sequence[str] | str | None = None,
                 cuda_graph: bool | None = None) -> None:
        self.providers = None if providers is None else prov.provider_names(providers)
        self.cuda_graph = cuda_graph

    def with_options(self, providers: Sequence[str] | str | None = None,
                     cuda_graph: bool | None = None) -> OnnxRuntimeBackend:
        """This backend with other providers or CUDA graph setting (None keeps this one's)."""
        return OnnxRuntimeBackend(self.providers if providers is None else providers,
                                  self.cuda_graph if cuda_graph is None else cuda_graph)

    def available(self) -> bool:
        return find_spec("onnxruntime") is not None

    def gpu_available(self) -> bool:
        """True when the CUDA provider loads and finds a GPU."""
        return self.available() and prov.cuda_runs()

    def version(self) -> str:
        import onnxruntime as ort

        return ort.__version__

    def build(self, model_bytes: bytes, config: BuildConfig) -> Engine:
        return OnnxRuntimeEngine(model_bytes, config, prov.requested_providers(self.providers),
                                 prov.cuda_graph_wanted(self.cuda_graph))

    def deserialize(self, data: bytes, config: BuildConfig) -> Engine:
        return self.build(data, config)


@hookimpl
def tftrt_engine_backends() -> list[EngineBackend]:
    return [OnnxRuntimeBackend()]
