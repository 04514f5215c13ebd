"""Engine backends: each turns an ONNX model into a runnable, serializable engine."""

from __future__ import annotations


def has_qdq(model_bytes: bytes) -> bool:
    """True when the ONNX model has QuantizeLinear/DequantizeLinear pairs (explicit INT8)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    return any(n.op_type == "DequantizeLinear" for n in model.graph.node)
