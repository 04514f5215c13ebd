"""The peers tftrt is measured against, each made from the same SavedModel.

TF native (the serving signature, as users call it), TF with XLA
(``jit_compile``), tf2onnx -> ONNX Runtime, OpenVINO given the SavedModel
directly (``openvino.convert_model``), and, for INT8, the tf2onnx model
quantized by ONNX Runtime's quantizer run in OpenVINO and in ONNX Runtime.
Each ``make_*`` returns (a callable running one batch, its conversion seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

Run = Callable[[], object]


def tf_native(serve, feeds: Mapping[str, np.ndarray]) -> tuple[Run, float]:
    import tensorflow as tf

    tensors = {k: tf.constant(v) for k, v in feeds.items()}
    return (lambda: serve(**tensors)), 0.0


def tf_xla(serve, feeds: Mapping[str, np.ndarray]) -> tuple[Run, float]:
    import tensorflow as tf

    tensors = {k: tf.constant(v) for k, v in feeds.items()}
    fn = tf.function(lambda kw: serve(**kw), jit_compile=True)
    t0 = time.perf_counter()
    fn(tensors)  # compiles
    return (lambda: fn(tensors)), time.perf_counter() - t0


def tf2onnx_model(serve, names: Sequence[str]) -> tuple[bytes, float]:
    """The signature as ONNX by tf2onnx (opset 17), and the seconds it took."""
    import tensorflow as tf
    import tf2onnx

    specs = serve.structured_input_signature[1]
    sig = [tf.TensorSpec(specs[n].shape, specs[n].dtype, name=n) for n in names]
    t0 = time.perf_counter()
    model, _ = tf2onnx.convert.from_function(
        tf.function(lambda *args: serve(**dict(zip(names, args, strict=True)))),
        input_signature=sig, opset=17)
    return model.SerializeToString(), time.perf_counter() - t0


def ort_session(model: bytes, feeds: Mapping[str, np.ndarray]) -> Run:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    ordered = list(feeds.values())
    inputs = {n: feeds.get(n, ordered[k]) for k, n in enumerate(names)}
    return lambda: sess.run(None, inputs)


def _ov_lean(compiled, arrays: Sequence[np.ndarray]) -> Run:
    """The leanest way Python can call a compiled model (the one tftrt's engines use):
    inputs shared with the request, outputs copied out."""
    import openvino as ov

    request = compiled.create_infer_request()
    n_out = len(compiled.outputs)

    def run() -> list[np.ndarray]:
        for k, x in enumerate(arrays):
            request.set_input_tensor(k, ov.Tensor(x, shared_memory=True))
        request.infer()
        return [request.get_output_tensor(k).data.copy() for k in range(n_out)]

    return run


def _ov_inputs(model, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    ordered = list(feeds.values())
    out = []
    for k, port in enumerate(model.inputs):
        names = port.get_names()
        match = [feeds[n] for n in feeds if n in names or any(n in m for m in names)]
        out.append(np.ascontiguousarray(match[0] if match else ordered[k]))
    return out


def openvino_direct(saved_model_dir: str, feeds: Mapping[str, np.ndarray],
                    hints: Sequence[str]) -> tuple[dict[str, Run], float]:
    """OpenVINO given the SavedModel itself, compiled at each precision hint."""
    import openvino as ov

    t0 = time.perf_counter()
    model = ov.convert_model(saved_model_dir)
    convert_s = time.perf_counter() - t0
    arrays = _ov_inputs(model, feeds)
    shapes = {k: list(a.shape) for k, a in enumerate(arrays)}
    model.reshape({model.inputs[k]: ov.PartialShape(s) for k, s in shapes.items()})
    core = ov.Core()
    runs = {}
    for hint in hints:
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                     "PERFORMANCE_HINT": "LATENCY"})
        runs[hint] = _ov_lean(compiled, arrays)
    return runs, convert_s


def openvino_onnx(model: bytes, feeds: Mapping[str, np.ndarray], hint: str) -> Run:
    """OpenVINO running an ONNX model (e.g. a quantized one)."""
    import openvino as ov

    core = ov.Core()
    m = core.read_model(model, b"")
    arrays = _ov_inputs(m, feeds)
    m.reshape({m.inputs[k]: ov.PartialShape(list(a.shape)) for k, a in enumerate(arrays)})
    compiled = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                             "PERFORMANCE_HINT": "LATENCY"})
    return _ov_lean(compiled, arrays)


def ort_quantized(model: bytes, calibration: Sequence[Mapping[str, np.ndarray]]
                  ) -> tuple[bytes, float]:
    """``model`` quantized by ONNX Runtime's static quantizer as tftrt's INT8 is (QDQ,
    int8, symmetric, per-channel weights, entropy ranges on ``calibration``)."""
    import os
    import tempfile

    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader:
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self):
            return next(self._it, None)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (os.path.join(tmp, f) for f in ("in.onnx", "pre.onnx", "q.onnx"))
        with open(src, "wb") as f:
            f.write(model)
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Entropy,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        with open(out, "rb") as f:
            data = f.read()
    return data, time.perf_counter() - t0
