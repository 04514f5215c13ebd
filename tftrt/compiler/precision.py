"""Reduced precision as a transformation of a segment's ONNX, and what each backend runs.

FP16 and INT8 *allow* a lower precision; what runs depends on the backend:

* ``tensorrt``: FP16 gets an FP16-cast ONNX (:func:`cast_to_fp16`), the
  numerically sensitive ops (:data:`FP32_OPS`) kept in FP32 between casts;
  INT8 gets the quantized ONNX (Q/DQ pairs).
* ``openvino``: FP16 maps to the CPU plugin's inference precision, bf16 or
  f16 where the CPU has kernels for it (AMX, AVX512-FP16), else FP32; the
  plugin itself keeps its sensitive ops in FP32. INT8 runs the Q/DQ pairs as
  int8 kernels.
* ``onnxruntime``: on its CUDA provider, FP16 runs the same FP16-cast ONNX,
  cast when the engine is built (so a model converted on a CPU machine runs
  FP16 on a GPU); its CPU provider has no faster half kernels, so FP16 runs as
  FP32 there. Q/DQ pairs run as int8 kernels on the CPU provider.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tftrt.engines import has_qdq
from tftrt.engines.cpu import cpu_has_vnni
from tftrt.engines.fp16 import FP32_OPS, cast_to_fp16

# The data input of these ops is quantized when it comes from a DequantizeLinear through
# layout-only ops; their weight input and its output-channel axis.
_WEIGHTED = {"Conv": (1, 0), "MatMul": (1, 1), "Gemm": (1, None)}
_LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten"})


@functools.cache
def int8_weight_limit(backend: str) -> int:
    """The largest weight level an int8 layer of ``backend`` computes exactly.

    x86 CPUs without VNNI multiply u8 activations by s8 weights with 16-bit pair
    sums (``vpmaddubsw``), which saturate past 255 * 64 * 2; OpenVINO and ONNX Runtime
    then lose whole steps, so weights keep 7 bits there (ONNX Runtime's
    ``reduce_range``). TensorRT and VNNI CPUs take the full 8 bits.
    """
    return 127 if backend == "tensorrt" or cpu_has_vnni() else 63


def grid_scale(w: np.ndarray, axis: int) -> np.ndarray | None:
    """The scale (per tensor, else per ``axis`` channel) that puts every value of ``w`` on
    an int8 grid with zero point 0, or None when ``w`` lies on no such grid."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    for peak in (np.abs(w).max(keepdims=True).reshape(1, 1),
                 np.abs(moved).max(axis=1, keepdims=True)):
        for top in (127, 128, 63, 64):  # 8-bit grids, then 7-bit ones
            scale = np.where(peak > 0, peak / top, 1).astype(np.float32)
            levels = np.round(moved / scale)
            if (np.abs(levels * scale - moved).max() <= 1e-3 * scale.min()
                    and levels.min() >= -128 and levels.max() <= 127):
                return np.broadcast_to(scale, (moved.shape[0], 1)).reshape(-1)
    return None


def weights_to_int8(model_bytes: bytes, max_level: int = 127) -> bytes:
    """Quantization-aware models: re-express float weights that already lie on an int8
    grid (TF folded their FakeQuant) as int8 plus DequantizeLinear, exactly, where the
    layer's data input is quantized, so that the backend runs an int8 layer. Weights
    with levels beyond ``max_level`` (see :func:`int8_weight_limit`) stay float."""
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}

    def quantized(name: str) -> bool:
        node = producer.get(name)
        while node is not None and node.op_type in _LAYOUT_OPS:
            node = producer.get(node.input[0])
        return node is not None and node.op_type == "DequantizeLinear"

    added: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type not in _WEIGHTED or not quantized(node.input[0]):
            continue
        k, axis = _WEIGHTED[node.op_type]
        init = inits.get(node.input[k])
        if init is None or init.data_type != onnx.TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(init)
        if axis is None:  # Gemm: output channels are B's columns unless transB
            trans = any(a.name == "transB" and a.i for a in node.attribute)
            axis = 0 if trans else 1
        if w.ndim < 2 or (scale := grid_scale(w, axis)) is None:
            continue
        shape = [1] * w.ndim
        shape[axis] = -1
        levels = np.round(w / scale.reshape(shape))
        if np.abs(levels).max() > max_level:
            continue
        levels = levels.astype(np.int8)
        base = f"{init.name}/int8"
        graph.initializer.extend([numpy_helper.from_array(levels, base),
                                  numpy_helper.from_array(scale, f"{base}/scale"),
                                  numpy_helper.from_array(np.zeros_like(levels, shape=scale.shape),
                                                          f"{base}/zero_point")])
        added.append(helper.make_node("DequantizeLinear",
                                      [base, f"{base}/scale", f"{base}/zero_point"],
                                      [f"{base}/dq"], name=f"{base}/DequantizeLinear",
                                      axis=axis))
        node.input[k] = f"{base}/dq"
    if not added:
        return model_bytes
    nodes = added + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model.SerializeToString()


_NO_MATH = frozenset({"QuantizeLinear", "DequantizeLinear", "Constant", "Identity", "Shape",
                      "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Cast",
                      "Concat", "Split", "Slice", "Gather", "Expand"})


def int8_layers(model_bytes: bytes) -> tuple[dict[str, int], dict[str, int]]:
    """Op type -> count of the compute nodes of a Q/DQ model that take int8 data (an input
    from a DequantizeLinear), and of those that stay float (no input from one)."""
    model = onnx.load_from_string(model_bytes)
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    int8: dict[str, int] = {}
    kept: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in _NO_MATH:
            continue
        side = int8 if any(i in dq for i in node.input) else kept
        side[node.op_type] = side.get(node.op_type, 0) + 1
    return int8, kept


def onnx_for_backend(model_bytes: bytes, backend: str, precision_mode: str) -> bytes:
    """The ONNX a backend builds for ``precision_mode``: the FP16-cast model for TensorRT's
    FP16, else the model unchanged (other backends map FP16 to their own settings)."""
    if backend == "tensorrt" and precision_mode == "FP16":
        return cast_to_fp16(model_bytes)
    return model_bytes


def explain(backend: str, precision_mode: str, runs: str | None) -> str:
    """Why an engine of ``backend`` runs ``runs`` when ``precision_mode`` was asked for."""
    if runs == "INT8":
        return "INT8 where Q/DQ pairs are, higher precision elsewhere"
    if runs is None or precision_mode == "FP32" or runs == precision_mode:
        return ""
    if precision_mode == "INT8" and backend != "tensorrt" and not cpu_has_vnni():
        return ("no INT8 layer: no layer has quantized inputs and weights on a 7-bit grid "
                "(this CPU has no VNNI: 8-bit weights would saturate)")
    if precision_mode == "INT8":
        return "no INT8 layer: no layer has quantized inputs and int8 weights"
    if backend == "openvino" and runs == "BF16":
        return "FP16 allowed: the CPU's bf16 kernels run"
    if backend == "openvino":
        return "FP16 allowed, but this CPU has no bf16/f16 kernels: no AMX, no AVX512-FP16"
    if backend == "onnxruntime":
        return "FP16 allowed, but ONNX Runtime's CPU provider has no faster half kernels"
    return f"{precision_mode} allowed; {runs} runs"


__all__ = ["FP32_OPS", "cast_to_fp16", "cpu_has_vnni", "explain", "grid_scale", "has_qdq",
           "int8_weight_limit", "onnx_for_backend", "weights_to_int8"]
