"""CombinedNonMaxSuppression as a plugin layer: the ``tftrt`` op and its lowerings.

The converter (tftrt/converters/nms.py) emits one ``tftrt.CombinedNonMaxSuppression``
node with TensorFlow's attributes and the static input shapes. Its portable
decomposition, here, is standard ONNX: NonMaxSuppression per (image, class),
then a scatter of the kept scores and a top-k across classes, which every
backend runs and TensorRT parses into its NMS layer. OpenVINO lowers the node
natively (``nms_openvino.py``).

Node attributes: ``max_output_size_per_class``, ``max_total_size`` (ints),
``iou_threshold``, ``score_threshold`` (floats), ``pad_per_class``, ``clip_boxes``
(0/1), ``boxes_shape`` [B, N, q, 4] and ``scores_shape`` [B, N, C] (-1: unknown).
Inputs: boxes, scores. Outputs: nmsed_boxes, nmsed_scores, nmsed_classes,
valid_detections, as TensorFlow's op.
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from tftrt.converters.context import LoweringContext, onnx_dtype
from tftrt.converters.nms import F32, onnx_nms
from tftrt.layers import nms_openvino
from tftrt.plugins.layers import LayerLowering, LayerNode, PluginLayer

OP_TYPE = "CombinedNonMaxSuppression"

# A size known at conversion time (int) or computed by the graph (name of an int64 [1]).
Size = int | str


def _shape(dims: list[int]) -> tuple[int | None, ...]:
    return tuple(None if d < 0 else d for d in dims)


def _dim(ctx: LoweringContext, x: str, axis: int, static: int | None, hint: str) -> Size:
    """Size of axis ``axis`` of ``x``: ``static`` if known, else an int64 [1] tensor."""
    if static is not None:
        return int(static)
    return ctx.node("Shape", [x], start=axis, end=axis + 1, hint=hint)


def _as_tensor(ctx: LoweringContext, size: Size) -> str:
    return ctx.int64s([size]) if isinstance(size, int) else size


def _mul(ctx: LoweringContext, a: Size, b: Size, hint: str) -> Size:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    return ctx.node("Mul", [_as_tensor(ctx, a), _as_tensor(ctx, b)], hint=hint)


def _min(ctx: LoweringContext, a: Size, b: Size, hint: str) -> Size:
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    return ctx.node("Min", [_as_tensor(ctx, a), _as_tensor(ctx, b)], hint=hint)


def _pad_axis1(ctx: LoweringContext, x: str, rank: int, have: Size, want: Size,
               hint: str) -> str:
    """``x`` zero-padded at the end of axis 1 from ``have`` to ``want`` entries."""
    if isinstance(have, int) and isinstance(want, int):
        if have == want:
            return x
        amount: str = ctx.int64s([want - have])
    else:
        amount = ctx.node("Sub", [_as_tensor(ctx, want), _as_tensor(ctx, have)],
                          hint=f"{hint}/amount")
    parts = [ctx.int64s([0] * (rank + 1)), amount]
    if rank > 2:
        parts.append(ctx.int64s([0] * (rank - 2)))
    pads = ctx.node("Concat", parts, axis=0, hint=f"{hint}/pads")
    return ctx.node("Pad", [x, pads], mode="constant", hint=hint)


def decompose(ctx: LoweringContext, node: LayerNode) -> list[str]:
    """The portable lowering: standard ONNX giving TensorFlow's results."""
    per_class = int(node.attr("max_output_size_per_class"))
    total = int(node.attr("max_total_size"))
    iou, score = float(node.attr("iou_threshold")), float(node.attr("score_threshold"))
    name = node.name
    boxes, scores = node.inputs
    _, n_static, q, _ = _shape(node.attr("boxes_shape"))
    b_static, _, c_static = _shape(node.attr("scores_shape"))
    batch = _dim(ctx, scores, 0, b_static, f"{name}/batch")
    num_boxes = _dim(ctx, scores, 1, n_static, f"{name}/num_boxes")
    num_classes = _dim(ctx, scores, 2, c_static, f"{name}/num_classes")

    by_class = ctx.node("Transpose", [scores], perm=[0, 2, 1], hint=f"{name}/by_class")
    if q == 1:
        # one box set per image, shared by the classes
        nms_boxes = ctx.node("Squeeze", [boxes, ctx.int64s([2])], hint=f"{name}/boxes")
        nms_scores = by_class  # [B, C, N]
        source = nms_boxes  # [B, N, 4], picked by box index
    else:
        # one box set per (image, class): NMS over B*C "images" of one class each
        class_boxes = ctx.node("Transpose", [boxes], perm=[0, 2, 1, 3],
                               hint=f"{name}/class_boxes")  # [B, C, N, 4]
        shape = ctx.node("Concat", [ctx.int64s([-1]), _as_tensor(ctx, num_boxes),
                                    ctx.int64s([4])], axis=0, hint=f"{name}/boxes_shape")
        nms_boxes = ctx.node("Reshape", [class_boxes, shape], hint=f"{name}/boxes")
        shape = ctx.node("Concat", [ctx.int64s([-1, 1]), _as_tensor(ctx, num_boxes)], axis=0,
                         hint=f"{name}/scores_shape")
        nms_scores = ctx.node("Reshape", [by_class, shape], hint=f"{name}/scores")
        shape = ctx.node("Concat", [_as_tensor(ctx, batch), ctx.int64s([-1, 4])], axis=0,
                         hint=f"{name}/source_shape")
        source = ctx.node("Reshape", [class_boxes, shape], hint=f"{name}/source")  # [B, C*N, 4]

    selected = onnx_nms(ctx, nms_boxes, nms_scores, per_class, iou, score, f"{name}/nms")
    # Kept scores at their (image, class, box) place, -inf elsewhere; then the best
    # of each image across classes. TopK orders ties by position: class, then box.
    picked = ctx.node("GatherND", [nms_scores, selected], hint=f"{name}/picked")
    shape = ctx.node("Shape", [nms_scores], hint=f"{name}/scores_dims")
    empty = ctx.node("ConstantOfShape", [shape], hint=f"{name}/empty",
                     value=numpy_helper.from_array(np.array([-np.inf], np.float32)))
    kept = ctx.node("ScatterND", [empty, selected, picked], hint=f"{name}/kept")
    flat_shape = ctx.node("Concat", [_as_tensor(ctx, batch), ctx.int64s([-1])], axis=0,
                          hint=f"{name}/flat_shape")
    flat = ctx.node("Reshape", [kept, flat_shape], hint=f"{name}/flat")  # [B, C*N]

    size: Size = total
    if node.attr("pad_per_class", 0):
        size = _min(ctx, total, _mul(ctx, per_class, num_classes, f"{name}/per_class_total"),
                    f"{name}/size")
    candidates = _mul(ctx, num_classes, num_boxes, f"{name}/candidates")
    k = _min(ctx, size, candidates, f"{name}/k")
    values, index = ctx.node("TopK", [flat, _as_tensor(ctx, k)], outputs=2, axis=1, largest=1,
                             sorted=1, hint=f"{name}/top")
    valid = ctx.node("Greater", [values, ctx.const(np.array(-np.inf, np.float32))],
                     hint=f"{name}/valid")
    zero = ctx.const(np.array(0.0, np.float32), f"{name}/zero")

    if q == 1:
        box_index = ctx.node("Mod", [index, _as_tensor(ctx, num_boxes)], hint=f"{name}/box")
    else:
        box_index = index
    chosen = ctx.node("GatherND", [source, ctx.node("Unsqueeze", [box_index, ctx.int64s([2])],
                                                    hint=f"{name}/box_at")],
                      batch_dims=1, hint=f"{name}/chosen")  # [B, k, 4]
    if node.attr("clip_boxes", 1):
        chosen = ctx.node("Clip", [chosen, zero, ctx.const(np.array(1.0, np.float32))],
                          hint=f"{name}/clipped")
    valid3 = ctx.node("Unsqueeze", [valid, ctx.int64s([2])], hint=f"{name}/valid3")
    out_boxes = ctx.node("Where", [valid3, chosen, zero], hint=f"{name}/nmsed_boxes")
    out_scores = ctx.node("Where", [valid, values, zero], hint=f"{name}/nmsed_scores")
    classes = ctx.node("Div", [index, _as_tensor(ctx, num_boxes)], hint=f"{name}/class")
    classes = ctx.node("Cast", [classes], to=onnx_dtype(F32), hint=f"{name}/class_f")
    out_classes = ctx.node("Where", [valid, classes, zero], hint=f"{name}/nmsed_classes")
    count = ctx.node("Cast", [valid], to=onnx_dtype(np.int32), hint=f"{name}/valid_i")
    count = ctx.node("ReduceSum", [count, ctx.int64s([1])], keepdims=0,
                     hint=f"{name}/valid_detections")

    return [_pad_axis1(ctx, out_boxes, 3, k, size, f"{name}/boxes_out"),
            _pad_axis1(ctx, out_scores, 2, k, size, f"{name}/scores_out"),
            _pad_axis1(ctx, out_classes, 2, k, size, f"{name}/classes_out"),
            count]


LAYER = PluginLayer(
    OP_TYPE, decompose,
    lowerings=(LayerLowering("openvino", nms_openvino.extension, nms_openvino.available),),
    description="TensorFlow's CombinedNonMaxSuppression: per-class NMS, then the best "
                "max_total_size detections across classes")
