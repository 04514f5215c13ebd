"""Whether the selected backend computes a node's integers exactly.

A converter knows no backend: it lowers int32/int64 ops to the ONNX ops that compute
them. A backend declares, in ONNX terms, where its integer arithmetic is exact
(``plugins.types.NumericLimits``). This pass joins the two: a node whose integer values
are not known (``intervals``) to stay within what the backend keeps exact stays native.
"""

from __future__ import annotations

import numpy as np
import onnx

from tftrt.compiler import intervals
from tftrt.compiler.lowering import lower_nodes
from tftrt.converters.base import dtype_name
from tftrt.converters.context import NodeInfo
from tftrt.plugins.manager import Registry
from tftrt.plugins.types import NumericLimits
from tftrt.specs import TensorSpec

_INT_ELEM = frozenset({onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32,
                       onnx.TensorProto.INT64, onnx.TensorProto.UINT8, onnx.TensorProto.UINT16,
                       onnx.TensorProto.UINT32, onnx.TensorProto.UINT64})


def _is_int(dtype: np.dtype | None) -> bool:
    return dtype is not None and np.issubdtype(np.dtype(dtype), np.integer)


def _fmt(bound: float) -> str:
    if bound == float("inf"):
        return "unbounded"
    exp = int(np.log2(bound)) if bound >= 2 else 0
    return f"up to {bound:.0f}" if bound < 1 << 20 else f"up to about 2^{exp}"


def integer_ops(info: NodeInfo, registry: Registry) -> set[str] | None:
    """The ONNX op types that ``info``'s converter applies to integer tensors (None: the
    node cannot be lowered on its own)."""
    ins = [TensorSpec(ref, dt, shape) for ref, dt, shape in
           zip(info.inputs, info.input_dtypes, info.input_shapes, strict=True)]
    outs = [TensorSpec(f"{info.name}:{k}", info.output_dtypes[k], info.output_shapes[k])
            for k in sorted(info.used_outputs) if k < len(info.output_dtypes)
            and info.output_dtypes[k] is not None]
    try:
        model = lower_nodes([info], ins, outs, registry, "exactness_probe")
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:
        return None
    elem = {v.name: v.type.tensor_type.elem_type
            for v in [*model.graph.input, *model.graph.output, *model.graph.value_info]}
    elem.update({t.name: t.data_type for t in model.graph.initializer})
    return {n.op_type for n in model.graph.node
            if any(elem.get(t) in _INT_ELEM for t in [*n.input, *n.output] if t)}


def limits_reason(info: NodeInfo, limits: NumericLimits, ranges: dict[str, intervals.Interval],
                  registry: Registry, backend: str) -> str | None:
    """Why ``backend`` would not compute node ``info`` exactly, or None."""
    if limits.unlimited:
        return None
    exempt = set(intervals.INDEX_INPUTS.get(info.op, ()))  # values in range or unread
    exempt |= set(intervals.VALUE_BLIND.get(info.op, ()))
    tensors = [(ref, dt) for i, (ref, dt) in enumerate(zip(info.inputs, info.input_dtypes,
                                                           strict=True))
               if i not in exempt]
    tensors += [(f"{info.name}:{k}", dt) for k, dt in enumerate(info.output_dtypes)
                if k in info.used_outputs]
    ints = [(ref, np.dtype(dt)) for ref, dt in tensors if _is_int(dt)]
    if not ints:
        return None

    def bound(ref: str, dt: np.dtype) -> float:
        return intervals.magnitude(ranges.get(ref, intervals.dtype_range(dt)))

    for ref, dt in ints:
        limit = limits.narrowed.get(dt)
        if limit is not None and bound(ref, dt) > limit:
            return (f"{backend} computes {dtype_name(dt)} in 32 bits, and the values of {ref} "
                    f"are not known to stay within +-{limit} ({_fmt(bound(ref, dt))})")
    if limits.exact_integer_ops is None:
        return None
    biggest = max(bound(ref, dt) for ref, dt in ints)
    if biggest <= limits.float_exact:
        return None
    ops = integer_ops(info, registry)
    inexact = sorted((ops or set()) - limits.exact_integer_ops)
    if not inexact:
        return None
    return (f"{backend} computes integer {', '.join(inexact)} in float32, exact only within "
            f"+-{limits.float_exact}, and the integer values of {info.op} are not known to "
            f"stay within it ({_fmt(biggest)})")
