"""A backend's top-k limit applied to NMS lowerings (``TF_TRT_ALLOW_NMS_TOPK_OVERRIDE``).

TensorRT's TopK layer takes k <= 3840. The NMS converters end in a TopK over all
kept detections with k up to ``max_total_size``, so an NMS asking for more cannot
build on TensorRT: ``limit_nms_top_k`` refuses it with a clear error (the
segment then runs natively), or, with the override, clamps k to the limit and
pads the outputs back to k (values with the worst score, indices with 0), so the
engine keeps its output shapes and returns at most ``limit`` detections, as
TF-TRT's override did. A TopK that no NonMaxSuppression feeds is left alone.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tftrt.errors import EngineError

TENSORRT_MAX_TOP_K = 3840
VARIABLE = "TF_TRT_ALLOW_NMS_TOPK_OVERRIDE"


def limit_nms_top_k(model_bytes: bytes, limit: int, override: bool) -> bytes:
    """``model_bytes`` with every NMS top-k within ``limit`` (see the module docstring).

    Raises:
      EngineError: a top-k may exceed ``limit`` and ``override`` is False.
    """
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = []
    changed = False
    for node in graph.node:
        if node.op_type != "TopK" or not _fed_by_nms(node, producers):
            nodes.append(node)
            continue
        bound = _upper_bound(node.input[1], producers, inits)
        if bound is not None and bound <= limit:
            nodes.append(node)
            continue
        if not override:
            k = "an unbounded k" if bound is None else f"k up to {bound}"
            raise EngineError(f"NMS node {node.name!r} needs a top-k of {k}, over the "
                              f"backend's limit of {limit}; {VARIABLE}=1 clamps it to "
                              f"{limit} (fewer detections)")
        if not changed:
            model = onnx.shape_inference.infer_shapes(model)
            changed = True
        nodes.extend(_clamped(node, limit, _rank(model, node.input[0]), model))
    if not changed:
        return model_bytes
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model.SerializeToString()


def _fed_by_nms(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto]) -> bool:
    todo, seen = list(node.input[:1]), set()
    while todo:
        name = todo.pop()
        src = producers.get(name)
        if src is None or src.name in seen:
            continue
        if src.op_type == "NonMaxSuppression":
            return True
        seen.add(src.name)
        todo.extend(i for i in src.input if i)
    return False


def _upper_bound(name: str, producers: dict[str, onnx.NodeProto],
                 inits: dict[str, np.ndarray]) -> int | None:
    """The largest value tensor ``name`` can hold, where the graph shows one."""
    if name in inits:
        return int(np.max(inits[name]))
    node = producers.get(name)
    if node is not None and node.op_type == "Min":
        bounds = [b for b in (_upper_bound(i, producers, inits) for i in node.input)
                  if b is not None]
        return min(bounds) if bounds else None
    if node is not None and node.op_type == "Constant":
        return int(np.max(numpy_helper.to_array(node.attribute[0].t)))
    return None


def _rank(model: onnx.ModelProto, name: str) -> int:
    for vi in (*model.graph.value_info, *model.graph.input):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim)
    raise EngineError(f"the rank of the NMS top-k input {name!r} is unknown; cannot clamp k")


def _elem_type(model: onnx.ModelProto, name: str) -> int:
    for vi in (*model.graph.value_info, *model.graph.input):
        if vi.name == name:
            return vi.type.tensor_type.elem_type
    return onnx.TensorProto.FLOAT


def _clamped(node: onnx.NodeProto, limit: int, rank: int,
             model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """TopK(x, min(k, limit)), its outputs padded along the axis back to k entries."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    axis = attrs.get("axis", -1) % rank
    largest = attrs.get("largest", 1)
    dtype = helper.tensor_dtype_to_np_dtype(_elem_type(model, node.input[0]))
    if np.issubdtype(dtype, np.floating):
        worst = -np.inf if largest else np.inf
    else:
        worst = np.iinfo(dtype).min if largest else np.iinfo(dtype).max
    p = f"{node.name}/clamp"

    def const(name: str, value: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], name=name,
                                value=numpy_helper.from_array(value, name))

    values, indices = node.output[0], node.output[1]
    return [
        const(f"{p}/limit", np.array([limit], np.int64)),
        helper.make_node("Min", [node.input[1], f"{p}/limit"], [f"{p}/k"], name=f"{p}/k"),
        helper.make_node("TopK", [node.input[0], f"{p}/k"], [f"{p}/values", f"{p}/indices"],
                         name=node.name, **attrs),
        helper.make_node("Sub", [node.input[1], f"{p}/k"], [f"{p}/amount"],
                         name=f"{p}/amount"),
        const(f"{p}/before", np.zeros(rank + axis, np.int64)),
        const(f"{p}/after", np.zeros(rank - axis - 1, np.int64)),
        helper.make_node("Concat", [f"{p}/before", f"{p}/amount", f"{p}/after"],
                         [f"{p}/pads"], name=f"{p}/pads", axis=0),
        const(f"{p}/worst", np.array(worst, dtype)),
        const(f"{p}/zero", np.array(0, np.int64)),
        helper.make_node("Pad", [f"{p}/values", f"{p}/pads", f"{p}/worst"], [values],
                         name=f"{p}/pad_values", mode="constant"),
        helper.make_node("Pad", [f"{p}/indices", f"{p}/pads", f"{p}/zero"], [indices],
                         name=f"{p}/pad_indices", mode="constant"),
    ]
