"""Which ONNX Runtime execution providers an engine asks for, and what the GPU ones need.

The default order is TensorRT's provider (only where TensorRT's own libraries
load: ONNX Runtime's GPU build lists the provider whether or not TensorRT is
installed), then CUDA's, then the CPU. A user picks others with
``TFTRT_ONNXRUNTIME_PROVIDERS`` (e.g. ``cuda,cpu``) or the runtime's
``providers=`` argument; short names (tensorrt, cuda, cpu) and ONNX Runtime's
full names are both accepted.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from importlib.util import find_spec

from tftrt import env

PROVIDERS_ENV = "TFTRT_ONNXRUNTIME_PROVIDERS"
CUDA_GRAPH_ENV = "TFTRT_ONNXRUNTIME_CUDA_GRAPH"
CUDA_OPTIONS_ENV = "TFTRT_ONNXRUNTIME_CUDA_OPTIONS"

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)
SHORT_NAMES = {"tensorrt": TENSORRT, "trt": TENSORRT, "cuda": CUDA, "cpu": CPU}


def provider_names(spec: str | Sequence[str]) -> list[str]:
    """ONNX Runtime's names for a user's providers: a list, or one comma-separated string."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"an execution provider is named by a string, got {item!r}")
        item = item.strip()
        if not item:
            continue
        full = SHORT_NAMES.get(item.lower(), item)
        if not full.endswith("ExecutionProvider"):
            raise ValueError(f"unknown ONNX Runtime execution provider {item!r}; use one of "
                             f"{sorted(set(SHORT_NAMES))} or a full provider name")
        if full not in names:
            names.append(full)
    if not names:
        raise ValueError(f"no execution provider named in {spec!r}")
    return names


@functools.cache
def tensorrt_installed() -> bool:
    """True where TensorRT's runtime library loads (what ONNX Runtime's provider needs)."""
    if find_spec("tensorrt_libs") is not None or find_spec("tensorrt") is not None:
        return True
    for lib in ("libnvinfer.so.11", "libnvinfer.so.10", "nvinfer_10.dll"):
        try:
            ctypes.CDLL(lib)
            return True
        except OSError:
            continue
    return False


def default_providers(available: Sequence[str]) -> list[str]:
    """TensorRT (if installed), CUDA, CPU: those of them this onnxruntime build has."""
    order = []
    if TENSORRT in available and tensorrt_installed():
        order.append(TENSORRT)
    if CUDA in available:
        order.append(CUDA)
    return order + [CPU]


def requested_providers(explicit: Sequence[str] | str | None) -> list[str]:
    """The providers asked for: ``explicit``, else ``TFTRT_ONNXRUNTIME_PROVIDERS``, else the
    default order; each checked against this onnxruntime build."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    spec = explicit if explicit is not None else (env.get(PROVIDERS_ENV) or "")
    if not spec:
        return default_providers(available)
    names = provider_names(spec)
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"ONNX Runtime execution provider(s) {missing} are not in this "
                         f"onnxruntime build (it has {available}); the GPU providers come "
                         "with the onnxruntime-gpu package")
    return names


def cuda_graph_wanted(explicit: bool | None) -> bool:
    """CUDA graphs (on by default; ``TFTRT_ONNXRUNTIME_CUDA_GRAPH=0`` turns them off)."""
    if explicit is not None:
        return explicit
    return env.get(CUDA_GRAPH_ENV)


def cuda_options() -> dict[str, str]:
    """Extra CUDA provider options from ``TFTRT_ONNXRUNTIME_CUDA_OPTIONS``
    (``key=value,key=value``, ONNX Runtime's names: ``prefer_nhwc=1``, ``use_tf32=0``, ...)."""
    return dict(env.get(CUDA_OPTIONS_ENV))


@functools.cache
def load_cuda_libraries() -> None:
    """Let the CUDA provider find CUDA and cuDNN installed as pip packages (nvidia-*), as
    ONNX Runtime's own ``preload_dlls`` does; a no-op where they load anyway."""
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is not None and CUDA in ort.get_available_providers():
        try:
            preload()
        except Exception:  # missing libraries show up when the provider loads
            pass


def probe_model() -> bytes:
    """A one-node ONNX model (y = Identity(x), float[1]) to see whether a provider loads."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # one every ONNX Runtime since 1.10 reads
    return model.SerializeToString()


@functools.cache
def cuda_runs() -> bool:
    """True when ONNX Runtime's CUDA provider loads here and finds a GPU (a one-node probe
    session; False on CPU builds and machines without a usable GPU)."""
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return False
    load_cuda_libraries()
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        session = ort.InferenceSession(probe_model(), opts, providers=[CUDA, CPU])
    except Exception:
        return False
    return session.get_providers()[0] == CUDA


def pin_input_shapes(model_bytes: bytes, shapes: Sequence[Sequence[int]]) -> tuple[bytes, list]:
    """The model with its inputs' unknown dimensions set to ``shapes``, and its outputs'
    shapes as ONNX shape inference then finds them (None where it cannot tell)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    for value, shape in zip(model.graph.input, shapes, strict=True):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise ValueError(f"input {value.name!r} has rank {len(dims)}, built for "
                             f"shape {list(shape)}")
        for dim, n in zip(dims, shape, strict=True):
            if dim.HasField("dim_value") and dim.dim_value != n:
                raise ValueError(f"input {value.name!r} has shape fixed by the model; "
                                 f"cannot build it for {list(shape)}")
            dim.Clear()
            dim.dim_value = int(n)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        outs = []
        for value in inferred.graph.output:
            dims = value.type.tensor_type.shape.dim
            shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
            outs.append(None if None in shape else shape)
    except Exception:
        outs = [None] * len(model.graph.output)
    return model.SerializeToString(), outs
