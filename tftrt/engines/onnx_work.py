"""How much arithmetic an ONNX model does: what a backend reads to size its threads."""

from __future__ import annotations

import numpy as np

from tftrt.plugins.types import Shapes


def multiply_adds(model_bytes: bytes, shapes: Shapes | None = None) -> int | None:
    """Multiply-adds of the model's convolutions and matrix products at ``shapes`` (unknown
    dims as 1), or None when a shape they need is unknown."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    if shapes:
        for vi, shape in zip(model.graph.input, shapes, strict=False):
            for dim, size in zip(vi.type.tensor_type.shape.dim, shape, strict=False):
                dim.dim_value = int(size)
    model = onnx.shape_inference.infer_shapes(model)
    known = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        known[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    for init in model.graph.initializer:
        known[init.name] = list(init.dims)
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm", "ConvTranspose"):
            continue
        out, first = known.get(node.output[0]), known.get(node.input[0])
        weight = known.get(node.input[1]) if len(node.input) > 1 else None
        if out is None or weight is None or first is None:
            return None
        if node.op_type in ("Conv", "ConvTranspose"):
            total += int(np.prod(out)) * int(np.prod(weight[1:]))
        else:
            total += int(np.prod(out)) * int(first[-1] if first else 1)
    return total
