"""The FP16-cast form of an ONNX model: what runs in half precision on GPU providers
(TensorRT, ONNX Runtime's CUDA provider), the numerically sensitive ops kept in FP32."""

from __future__ import annotations

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
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load_from_string(model_bytes)
    cast = convert_float_to_float16(model, keep_io_types=True,
                                    op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST)
                                                         | set(FP32_OPS)))
    return cast.SerializeToString()
