"""Reduced precision as a transformation of a segment's ONNX, and what each backend runs.

FP16 and INT8 *allow* a lower precision; what runs depends on the backend:

* ``tensorrt``: FP16 gets an FP16-cast ONNX (:func:`cast_to_fp16`), the
  numerically sensitive ops (:data:`FP32_OPS`) kept in FP32 between casts;
  INT8 gets the quantized ONNX (Q/DQ pairs).
* ``openvino``: FP16 maps to the CPU plugin's inference precision, bf16 or
  f16 where the CPU has kernels for it (AMX, AVX512-FP16), else FP32; the
  plugin itself keeps its sensitive ops in FP32. INT8 runs the Q/DQ pairs as
  int8 kernels.
* ``onnxruntime``: its CPU provider has no faster half kernels, so FP16 runs
  as FP32; Q/DQ pairs run as int8 kernels.
"""

from __future__ import annotations

import onnx

# Kept in FP32 in an FP16-cast model: softmax, reductions, normalization statistics and
# the transcendental functions whose range overflows half precision.
FP32_OPS: tuple[str, ...] = (
    "Softmax", "LogSoftmax", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceProd",
    "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "LayerNormalization",
    "InstanceNormalization", "GroupNormalization", "BatchNormalization", "Exp", "Log", "Pow",
    "Sqrt", "Reciprocal", "Erf", "CumSum", "Range", "TopK", "NonMaxSuppression", "RoiAlign",
)


def cast_to_fp16(model_bytes: bytes) -> bytes:
    """The model with float tensors and weights in FP16, except :data:`FP32_OPS`, which
    compute in FP32 between casts; inputs and outputs stay FP32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load_from_string(model_bytes)
    cast = convert_float_to_float16(model, keep_io_types=True,
                                    op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST)
                                                         | set(FP32_OPS)))
    return cast.SerializeToString()


def has_qdq(model_bytes: bytes) -> bool:
    """True when the model has QuantizeLinear/DequantizeLinear pairs (explicit INT8)."""
    model = onnx.load_from_string(model_bytes)
    return any(n.op_type == "DequantizeLinear" for n in model.graph.node)


def onnx_for_backend(model_bytes: bytes, backend: str, precision_mode: str) -> bytes:
    """The ONNX a backend builds for ``precision_mode``: the FP16-cast model for TensorRT's
    FP16, else the model unchanged (other backends map FP16 to their own settings)."""
    if backend == "tensorrt" and precision_mode == "FP16":
        return cast_to_fp16(model_bytes)
    return model_bytes


def explain(backend: str, precision_mode: str, runs: str | None) -> str:
    """Why an engine of ``backend`` runs ``runs`` when ``precision_mode`` was asked for."""
    if runs is None or precision_mode == "FP32" or runs == precision_mode:
        return ""
    if runs == "INT8":
        return "INT8 where Q/DQ pairs are, FP32 elsewhere"
    if precision_mode == "INT8":
        return "no INT8 kernel runs: the engine has no usable Q/DQ pairs"
    if backend == "openvino" and runs == "BF16":
        return "FP16 allowed: the CPU's bf16 kernels run"
    if backend == "openvino":
        return "FP16 allowed, but this CPU has no bf16/f16 kernels (no AMX, no AVX512-FP16)"
    if backend == "onnxruntime":
        return "FP16 allowed, but ONNX Runtime's CPU provider has no faster half kernels"
    return f"{precision_mode} allowed; {runs} runs"


__all__ = ["FP32_OPS", "cast_to_fp16", "explain", "has_qdq", "onnx_for_backend"]
