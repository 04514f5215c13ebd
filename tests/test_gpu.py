"""GPU execution through ONNX Runtime's CUDA provider, checked against its CPU provider.

Runs where ONNX Runtime's CUDA provider loads and finds a GPU; skipped elsewhere
with the reason. Imports no TensorFlow, so it also runs on GPU machines without
it: ``python -m pytest --noconftest tests/test_gpu.py`` (the shared conftest
imports TensorFlow). ``TFTRT_GPU_SAVED_MODEL`` names a converted model for the
TensorFlow-free runtime test (none can be made where TensorFlow is missing).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from tftrt.engines import ort_providers as prov  # noqa: E402
from tftrt.engines.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from tftrt.plugins.types import BuildConfig  # noqa: E402

from .gpu_models import conv_classifier, rel_err  # noqa: E402

pytestmark = pytest.mark.skipif(
    not prov.cuda_runs(), reason="no CUDA here: ONNX Runtime's CUDA provider does not load "
    "(it needs the onnxruntime-gpu package, CUDA and cuDNN libraries, and an NVIDIA GPU)")

MODEL = conv_classifier()
CPU = OnnxRuntimeBackend(providers="cpu")
CUDA = OnnxRuntimeBackend(providers="cuda,cpu")
# The CUDA provider computes FP32 convolutions and products in TF32 by default.
FP32_TOL, FP16_TOL = 5e-3, 3e-2


def _inputs(seed: int, batch: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 16, 16)).astype(np.float32)


def _reference(x: np.ndarray) -> list[np.ndarray]:
    return CPU.build(MODEL, BuildConfig("FP32", [x.shape])).run([x])


@pytest.mark.parametrize("mode", ["FP32", "FP16"])
def test_cuda_graph_engine_matches_the_cpu_provider(mode: str) -> None:
    engine = CUDA.build(MODEL, BuildConfig(mode, [(4, 3, 16, 16)]))
    assert engine.provider == prov.CUDA
    assert engine.cuda_graph and engine.runs_on == "CUDAExecutionProvider with a CUDA graph"
    assert engine.precision == mode
    for seed in range(3):  # fresh inputs each call: the replayed graph reads new data
        x = _inputs(seed)
        for got, want in zip(engine.run([x]), _reference(x), strict=True):
            assert rel_err(got, want) < (FP32_TOL if mode == "FP32" else FP16_TOL)
    # another shape of the engine's profile runs on a second session, without the graph
    x = _inputs(5, batch=2)
    for got, want in zip(engine.run([x]), _reference(x), strict=True):
        assert rel_err(got, want) < (FP32_TOL if mode == "FP32" else FP16_TOL)
    assert engine.cuda_graph  # the build shapes still replay it


def test_dynamic_shapes_run_without_a_graph() -> None:
    engine = CUDA.build(MODEL, BuildConfig("FP32", [(None, 3, 16, 16)]))
    assert engine.provider == prov.CUDA and not engine.cuda_graph
    for batch in (1, 5):
        x = _inputs(batch, batch)
        for got, want in zip(engine.run([x]), _reference(x), strict=True):
            assert rel_err(got, want) < FP32_TOL


def test_graphs_can_be_turned_off(monkeypatch) -> None:
    monkeypatch.setenv(prov.CUDA_GRAPH_ENV, "0")
    engine = OnnxRuntimeBackend(providers="cuda").build(MODEL, BuildConfig("FP32",
                                                                           [(4, 3, 16, 16)]))
    assert engine.provider == prov.CUDA and not engine.cuda_graph


@pytest.mark.parametrize("shape", [(4, 3, 16, 16), (None, 3, 16, 16)])
def test_device_tensors_go_through_dlpack(shape) -> None:
    torch = pytest.importorskip("torch")
    engine = CUDA.build(MODEL, BuildConfig("FP32", [shape]))
    x = torch.randn(4, 3, 16, 16, device="cuda")
    outs = engine.run_device([x])
    want = _reference(x.cpu().numpy())
    for got, ref in zip(outs, want, strict=True):
        t = torch.from_dlpack(got)
        assert t.is_cuda
        assert rel_err(t.cpu().numpy(), ref) < FP32_TOL
    # outputs are the caller's: the next call does not overwrite them
    first = torch.from_dlpack(outs[1]).clone()
    engine.run_device([torch.randn(4, 3, 16, 16, device="cuda")])
    assert torch.equal(torch.from_dlpack(outs[1]), first)


def test_cupy_arrays_go_through_dlpack() -> None:
    cp = pytest.importorskip("cupy")
    engine = CUDA.build(MODEL, BuildConfig("FP32", [(4, 3, 16, 16)]))
    x = cp.asarray(_inputs(11))
    (logits, _) = engine.run_device([x])
    assert rel_err(cp.asnumpy(cp.from_dlpack(logits)), _reference(cp.asnumpy(x))[0]) < FP32_TOL


def test_auto_picks_onnxruntime_on_cuda_without_tensorrt() -> None:
    from tftrt.runtime.backends import runtime_backends, select_backend

    if prov.tensorrt_installed():
        pytest.skip("TensorRT is installed here: auto picks it")
    chosen = select_backend("auto", runtime_backends())
    assert chosen.name == "onnxruntime" and chosen.gpu_available()


def test_saved_model_runs_on_cuda_through_the_tensorflow_free_runtime() -> None:
    path = os.environ.get("TFTRT_GPU_SAVED_MODEL")
    if not path:
        pytest.skip("set TFTRT_GPU_SAVED_MODEL to a converted model (no TensorFlow here to "
                    "make one)")
    import sys

    import tftrt.runtime

    gpu = tftrt.runtime.load(path, providers="cuda,cpu")
    cpu = tftrt.runtime.load(path, providers="cpu")
    rng = np.random.default_rng(0)
    feed = {}
    for spec in gpu.inputs:
        shape = [1 if d is None else d for d in spec.shape]
        feed[spec.name] = (rng.standard_normal(shape) if spec.dtype.kind == "f"
                           else rng.integers(0, 100, shape)).astype(spec.dtype)
    got, want = gpu(**feed), cpu(**feed)
    for name in want:
        assert rel_err(got[name], want[name]) < FP32_TOL, name
    (line,) = gpu.describe()
    assert "on CUDAExecutionProvider" in line
    assert not any(m.startswith("tensorflow") for m in sys.modules)
