"""The onnxruntime backend's provider choice, shape pinning and reports (on any machine;
tests/test_gpu.py runs the GPU providers where CUDA is present)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from tftrt import trt_convert as trt
from tftrt.engines import ort_providers as prov
from tftrt.engines.onnxruntime_backend import OnnxRuntimeBackend
from tftrt.errors import EnvironmentVariableError
from tftrt.plugins.manager import get_registry
from tftrt.plugins.types import BuildConfig
from tftrt.runtime.backends import select_backend

from .gpu_models import conv_classifier, rel_err

ALL = [prov.TENSORRT, prov.CUDA, prov.CPU]


def test_short_and_full_provider_names() -> None:
    assert prov.provider_names("cuda, CPU") == [prov.CUDA, prov.CPU]
    assert prov.provider_names(["TensorrtExecutionProvider", "trt", "cpu"]) == [
        prov.TENSORRT, prov.CPU]
    with pytest.raises(ValueError, match="unknown ONNX Runtime execution provider 'gpu'"):
        prov.provider_names("gpu")
    with pytest.raises(ValueError, match="no execution provider"):
        prov.provider_names(" , ")


def test_default_order_puts_tensorrt_first_only_where_it_is_installed(monkeypatch) -> None:
    monkeypatch.setattr(prov, "tensorrt_installed", lambda: False)
    assert prov.default_providers(ALL) == [prov.CUDA, prov.CPU]
    monkeypatch.setattr(prov, "tensorrt_installed", lambda: True)
    assert prov.default_providers(ALL) == ALL
    assert prov.default_providers([prov.CPU]) == [prov.CPU]


def test_tftrt_onnxruntime_providers_come_from_the_argument_then_the_environment(
        monkeypatch) -> None:
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: [prov.CUDA, prov.CPU])
    monkeypatch.delenv(prov.PROVIDERS_ENV, raising=False)
    assert prov.requested_providers(None) == [prov.CUDA, prov.CPU]
    monkeypatch.setenv(prov.PROVIDERS_ENV, "cpu")
    assert prov.requested_providers(None) == [prov.CPU]
    assert prov.requested_providers(["cuda"]) == [prov.CUDA]
    with pytest.raises(ValueError, match=r"\['TensorrtExecutionProvider'\] are not in this "
                                         "onnxruntime build.*onnxruntime-gpu"):
        prov.requested_providers("tensorrt,cuda")


def test_tftrt_onnxruntime_cuda_graph(monkeypatch) -> None:
    monkeypatch.delenv(prov.CUDA_GRAPH_ENV, raising=False)
    assert prov.cuda_graph_wanted(None)
    monkeypatch.setenv(prov.CUDA_GRAPH_ENV, "0")
    assert not prov.cuda_graph_wanted(None)
    assert prov.cuda_graph_wanted(True)


def test_tftrt_onnxruntime_cuda_options(monkeypatch) -> None:
    monkeypatch.setenv(prov.CUDA_OPTIONS_ENV, "prefer_nhwc=1, use_tf32 = 0")
    assert prov.cuda_options() == {"prefer_nhwc": "1", "use_tf32": "0"}
    monkeypatch.setenv(prov.CUDA_OPTIONS_ENV, "prefer_nhwc")
    with pytest.raises(EnvironmentVariableError, match="key=value pairs.*'prefer_nhwc'"):
        prov.cuda_options()
    monkeypatch.delenv(prov.CUDA_OPTIONS_ENV)
    assert prov.cuda_options() == {}


def test_the_cuda_probe_model_loads() -> None:
    """The probe behind cuda_runs() must be a model this ONNX Runtime reads."""
    import onnxruntime as ort

    session = ort.InferenceSession(prov.probe_model(), providers=[prov.CPU])
    assert session.run(None, {"x": np.ones(1, np.float32)})[0].tolist() == [1.0]


def test_pinning_input_shapes_infers_output_shapes() -> None:
    pinned, outs = prov.pin_input_shapes(conv_classifier(), [(4, 3, 16, 16)])
    model = onnx.load_from_string(pinned)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == \
        [4, 3, 16, 16]
    assert outs == [[4, 10], [4, 10]]
    with pytest.raises(ValueError, match="rank 4, built for shape"):
        prov.pin_input_shapes(conv_classifier(), [(4, 3)])


def test_cpu_engine_reports_its_provider_and_runs_fp16_as_fp32(monkeypatch) -> None:
    monkeypatch.setenv(prov.PROVIDERS_ENV, "cpu")
    engine = OnnxRuntimeBackend().build(conv_classifier(), BuildConfig("FP16", [(2, 3, 16, 16)]))
    assert engine.provider == prov.CPU and engine.runs_on == prov.CPU
    assert engine.precision == "FP32" and not engine.cuda_graph
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    logits, probs = engine.run([x])
    assert rel_err(probs.sum(axis=1), np.ones(2)) < 1e-5
    assert engine.serialize() == conv_classifier()  # the ONNX model, as given
    with pytest.raises(RuntimeError, match="run_device needs a GPU provider"):
        engine.run_device([x])


def test_backend_options_give_a_new_backend() -> None:
    base = OnnxRuntimeBackend()
    cpu = base.with_options(providers="cpu", cuda_graph=False)
    assert cpu.providers == [prov.CPU] and cpu.cuda_graph is False
    assert base.providers is None and cpu.name == base.name == "onnxruntime"
    assert cpu.with_options().providers == [prov.CPU]


def test_auto_prefers_onnxruntime_on_cuda_over_the_cpu_backends(monkeypatch) -> None:
    ort_backend = get_registry().backend("onnxruntime")
    trt_backend = get_registry().backend("tensorrt")
    monkeypatch.setattr(trt_backend, "available", lambda: False)
    monkeypatch.setattr(ort_backend, "gpu_available", lambda: True)
    assert select_backend("auto") is ort_backend
    monkeypatch.setattr(ort_backend, "gpu_available", lambda: False)
    assert select_backend("auto").name == "openvino"
    monkeypatch.setattr(trt_backend, "available", lambda: True)
    assert select_backend("auto") is trt_backend


def test_summary_names_the_provider(keras_mlp_dir: str, monkeypatch) -> None:
    monkeypatch.setenv(prov.PROVIDERS_ENV, "cpu")
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=keras_mlp_dir, backend="onnxruntime")
    fn = conv.convert()
    (spec,) = fn.inputs
    fn(np.zeros([2] + list(spec.shape[1:]), np.float32))
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    assert "Backend: onnxruntime on CPUExecutionProvider, precision: FP32" in lines[0]


def test_runtime_backends_load_no_conversion_plugin() -> None:
    import subprocess
    import sys

    code = ("import sys; from tftrt.runtime.backends import runtime_backends; "
            "print(sorted(runtime_backends())); "
            "print(sorted(m for m in sys.modules if m.startswith(('tensorflow', "
            "'tftrt.compiler'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["['onnxruntime', 'openvino', 'tensorrt']", "[]"]
