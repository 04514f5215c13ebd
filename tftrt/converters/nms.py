"""Non-maximum suppression: CombinedNonMaxSuppression and NonMaxSuppression(V2-V5).

CombinedNonMaxSuppression becomes one node of the ``tftrt`` ONNX domain, the
plugin layer of ``tftrt/layers/nms.py``: OpenVINO lowers it natively, every
other backend runs its portable decomposition into standard ONNX
(NonMaxSuppression followed by gathers, a scatter and a top-k), which TensorRT
parses into its NMS layer. The single-class ops lower to standard ONNX directly.
Boxes are [y1, x1, y2, x2] with corners in any order (``center_point_box=0``),
as in TensorFlow, and selection uses the same greedy rule: a box is kept if
its score exceeds the score threshold and its IoU with every box kept before
it is at most the IoU threshold, with boxes of zero area never suppressed.

Results equal TensorFlow's exactly whenever the scores that compete are
distinct. Equal scores are ordered by class, then box index (on ONNX Runtime,
whose NonMaxSuppression and TopK break ties by index; OpenVINO's TopK does not
promise an order for equal values). TensorFlow's own order of equal scores in
CombinedNonMaxSuppression is an artifact of ``std::priority_queue`` and
``std::sort`` (neither is stable): with ties the same detections may come out
in another order, and of two overlapping boxes with the same score another one
may be kept. The single-class ops order ties by box index, as TensorFlow does.
"""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter, dtype_name, refusal
from tftrt.converters.context import LoweringContext, NodeInfo, onnx_dtype
from tftrt.plugins.layers import DOMAIN

F32 = np.dtype(np.float32)
_INT_DTYPES = frozenset({np.dtype(np.int32), np.dtype(np.int64)})
_LOWEST = float(np.finfo(np.float32).min)


# -- shared checks --------------------------------------------------------------

def _scalar(node: NodeInfo, i: int, what: str) -> float | str:
    """Constant scalar input ``i``, or the reason it is not one."""
    value = node.const(i) if i < len(node.inputs) else None
    if value is None:
        return f"The input {i} ({what}) of {node.op} must be a constant"
    value = np.asarray(value)
    if value.size != 1 or value.ndim > 1:
        return f"{what} of {node.op} must be a scalar, got shape {list(value.shape)}"
    return value.reshape(()).item()


def _float_inputs(node: NodeInfo, indices: tuple[int, ...]) -> str | None:
    for i in indices:
        dt = node.input_dtypes[i]
        if dt is not None and dt != F32:
            return f"{node.op} supports float32 boxes and scores only, got {dtype_name(dt)}"
    return None


def _thresholds(node: NodeInfo, iou_at: int | None, score_at: int | None
                ) -> tuple[float, float] | str:
    """(iou_threshold, score_threshold) of ``node``, or why they cannot be used."""
    if iou_at is None:
        iou = float(node.attr("iou_threshold", 0.5))
    else:
        iou = _scalar(node, iou_at, "iou_threshold")
        if isinstance(iou, str):
            return iou
    if not 0.0 <= iou <= 1.0:
        return f"iou_threshold of {node.op} must be in [0, 1], got {iou}"
    if score_at is None:
        return float(iou), _LOWEST
    score = _scalar(node, score_at, "score_threshold")
    if isinstance(score, str):
        return score
    if np.isnan(score):
        return f"score_threshold of {node.op} must not be NaN"
    return float(iou), float(score)


# -- graph helpers ------------------------------------------------------------------

def onnx_nms(ctx: LoweringContext, boxes: str, scores: str, max_per_class: int, iou: float,
             score: float, hint: str) -> str:
    """ONNX NonMaxSuppression: selected [M, 3] (batch, class, box) int64."""
    return ctx.node("NonMaxSuppression",
                    [boxes, scores, ctx.int64s([max_per_class], f"{hint}/max_per_class"),
                     ctx.const(np.array([iou], np.float32), f"{hint}/iou"),
                     ctx.const(np.array([score], np.float32), f"{hint}/score")],
                    center_point_box=0, hint=hint)


# -- CombinedNonMaxSuppression --------------------------------------------------------

def _combined_params(node: NodeInfo) -> tuple[int, int, float, float] | str:
    values = []
    for i, what in ((2, "max_output_size_per_class"), (3, "max_total_size")):
        v = _scalar(node, i, what)
        if isinstance(v, str):
            return v
        if node.input_dtypes[i] not in (None, *_INT_DTYPES):
            return f"{what} of {node.op} must be an integer"
        if int(v) <= 0:
            return f"{what} of {node.op} must be positive, got {int(v)}"
        values.append(int(v))
    thresholds = _thresholds(node, 4, 5)
    if isinstance(thresholds, str):
        return thresholds
    return values[0], values[1], thresholds[0], thresholds[1]


def _validate_combined(node: NodeInfo) -> str | None:
    if (reason := _float_inputs(node, (0, 1))) is not None:
        return reason
    boxes, scores = node.input_shapes[0], node.input_shapes[1]
    if boxes is None or len(boxes) != 4:
        return f"boxes of {node.op} must be 4-D [batch, num_boxes, q, 4], got {boxes}"
    if scores is None or len(scores) != 3:
        return f"scores of {node.op} must be 3-D [batch, num_boxes, num_classes], got {scores}"
    if boxes[3] not in (None, 4):
        return f"boxes of {node.op} must have 4 coordinates, got shape {list(boxes)}"
    q, classes = boxes[2], scores[2]
    if q is None:
        return f"The third dimension (q) of the boxes of {node.op} must be known"
    if q != 1 and classes is not None and q != classes:
        return f"The third dimension of boxes ({q}) must be 1 or num_classes ({classes})"
    return refusal(_combined_params(node))


@converter("CombinedNonMaxSuppression", dtypes=None, validate=_validate_combined,
           restrictions="max_output_size_per_class, max_total_size, iou_threshold and "
                        "score_threshold must be constant scalars; float32; the box "
                        "dimension q must be known")
def convert_combined_nms(ctx: LoweringContext, node: NodeInfo) -> None:
    """One ``tftrt`` node: the plugin layer of tftrt/layers/nms.py lowers it per backend."""
    params = _combined_params(node)
    assert not isinstance(params, str), params
    per_class, total, iou, score = params
    outs = ctx.node(
        "CombinedNonMaxSuppression", [ctx.input(node, 0), ctx.input(node, 1)], outputs=4,
        domain=DOMAIN, hint=node.name, max_output_size_per_class=per_class,
        max_total_size=total, iou_threshold=iou, score_threshold=score,
        pad_per_class=int(bool(node.attr("pad_per_class", False))),
        clip_boxes=int(bool(node.attr("clip_boxes", True))),
        boxes_shape=_dims(node.input_shapes[0]), scores_shape=_dims(node.input_shapes[1]))
    for slot, out in enumerate(outs):
        ctx.set_output(node, slot, out)


def _dims(shape: tuple[int | None, ...]) -> list[int]:
    """A shape as ONNX ints, -1 for an unknown dimension."""
    return [-1 if d is None else int(d) for d in shape]


# -- NonMaxSuppression (V1) .. NonMaxSuppressionV5: one class ------------------------

# op -> (index of iou_threshold input or None for the attr, index of score_threshold or None)
_SINGLE = {
    "NonMaxSuppression": (None, None),
    "NonMaxSuppressionV2": (3, None),
    "NonMaxSuppressionV3": (3, 4),
    "NonMaxSuppressionV4": (3, 4),
    "NonMaxSuppressionV5": (3, 4),
}


def _single_params(node: NodeInfo) -> tuple[int, float, float] | str:
    size = _scalar(node, 2, "max_output_size")
    if isinstance(size, str):
        return size
    if int(size) < 0:
        return f"max_output_size of {node.op} must be non-negative, got {int(size)}"
    iou_at, score_at = _SINGLE[node.op]
    thresholds = _thresholds(node, iou_at, score_at)
    if isinstance(thresholds, str):
        return thresholds
    return int(size), thresholds[0], thresholds[1]


def _validate_single(node: NodeInfo) -> str | None:
    dt = node.attr("T")
    if dt is not None and dt != F32:
        return f"{node.op} supports float32 boxes and scores only, got {dtype_name(dt)}"
    if (reason := _float_inputs(node, (0, 1))) is not None:
        return reason
    boxes, scores = node.input_shapes[0], node.input_shapes[1]
    if boxes is not None and (len(boxes) != 2 or boxes[1] not in (None, 4)):
        return f"boxes of {node.op} must be [num_boxes, 4], got {list(boxes)}"
    if scores is not None and len(scores) != 1:
        return f"scores of {node.op} must be 1-D, got {list(scores)}"
    if node.op == "NonMaxSuppressionV5":
        sigma = _scalar(node, 5, "soft_nms_sigma")
        if isinstance(sigma, str):
            return sigma
        if sigma != 0:
            return f"Soft NMS (soft_nms_sigma={sigma}) is not supported; it must be 0"
    return refusal(_single_params(node))


@converter(*_SINGLE, dtypes=None, validate=_validate_single,
           restrictions="max_output_size and the thresholds must be constant scalars; "
                        "float32; V5: soft_nms_sigma must be 0")
def convert_single_class_nms(ctx: LoweringContext, node: NodeInfo) -> None:
    params = _single_params(node)
    assert not isinstance(params, str), params
    size, iou, score = params
    name = node.name
    boxes = ctx.node("Unsqueeze", [ctx.input(node, 0), ctx.int64s([0])], hint=f"{name}/boxes")
    scores = ctx.node("Unsqueeze", [ctx.input(node, 1), ctx.int64s([0, 1])],
                      hint=f"{name}/scores")
    selected = onnx_nms(ctx, boxes, scores, size, iou, score, f"{name}/nms")
    index = ctx.node("Gather", [selected, ctx.const(np.array(2, np.int64))], axis=1,
                     hint=f"{name}/index")  # [M] in selection order
    outputs = [index]
    if node.op == "NonMaxSuppressionV5":
        outputs.append(ctx.node("Gather", [ctx.input(node, 1), index], axis=0,
                                hint=f"{name}/selected_scores"))
    count = ctx.node("Shape", [index], hint=f"{name}/count")
    if node.attr("pad_to_max_output_size", False):
        outputs = [_pad_axis0(ctx, x, count, size, f"{name}/padded{k}")
                   for k, x in enumerate(outputs)]
    outputs[0] = ctx.node("Cast", [outputs[0]], to=onnx_dtype(np.int32),
                          hint=f"{name}/selected_indices")
    for slot, x in enumerate(outputs):
        ctx.set_output(node, slot, x)
    if node.op in ("NonMaxSuppressionV4", "NonMaxSuppressionV5"):
        valid = ctx.node("Squeeze", [count, ctx.int64s([0])], hint=f"{name}/count0")
        valid = ctx.node("Cast", [valid], to=onnx_dtype(np.int32), hint=f"{name}/valid_outputs")
        ctx.set_output(node, len(outputs), valid)


def _pad_axis0(ctx: LoweringContext, x: str, have: str, want: int, hint: str) -> str:
    """1-D ``x`` of ``have`` entries zero-padded to ``want``."""
    amount = ctx.node("Sub", [ctx.int64s([want]), have], hint=f"{hint}/amount")
    pads = ctx.node("Concat", [ctx.int64s([0]), amount], axis=0, hint=f"{hint}/pads")
    return ctx.node("Pad", [x, pads], mode="constant", hint=hint)
