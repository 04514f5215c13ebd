"""OpenVINO's native lowering of ``tftrt.CombinedNonMaxSuppression``: a frontend
ConversionExtension that builds the layer from OpenVINO ops directly.

It follows the portable decomposition step by step but uses what OpenVINO's
opset offers and ONNX lacks: NonMaxSuppression-9 returns the kept scores (no
gather back into the score tensor), and TopK-11 with ``stable`` orders equal
scores by position (class, then box), the order ONNX Runtime's TopK gives and
the one the portable lowering documents, which the ONNX frontend's TopK does
not promise.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import numpy as np

OP_TYPE = "CombinedNonMaxSuppression"
DOMAIN = "tftrt"


def available() -> bool:
    return find_spec("openvino") is not None


def extension() -> Any:
    """The ConversionExtension for ``tftrt.CombinedNonMaxSuppression``."""
    from openvino.frontend.onnx import ConversionExtension

    return ConversionExtension(OP_TYPE, DOMAIN, convert)


def convert(node: Any) -> list[Any]:
    """OpenVINO outputs for one ONNX node (an ``openvino.frontend.NodeContext``)."""
    import openvino.opset13 as ops

    def i64(values) -> Any:
        return ops.constant(np.asarray(values, np.int64))

    def f32(value: float) -> Any:
        return ops.constant(np.float32(value))

    def size(x, axis: int, static: int) -> Any:
        """Dimension ``axis`` of ``x`` as an int64 [1]: a constant when known."""
        if static >= 0:
            return i64([static])
        return ops.gather(ops.shape_of(x, "i64"), i64([axis]), i64(0))

    boxes, scores = node.get_input(0), node.get_input(1)
    per_class = int(node.get_attribute("max_output_size_per_class"))
    total = int(node.get_attribute("max_total_size"))
    iou = float(node.get_attribute("iou_threshold"))
    score = float(node.get_attribute("score_threshold"))
    pad_per_class = bool(node.get_attribute("pad_per_class"))
    clip_boxes = bool(node.get_attribute("clip_boxes"))
    _, n_static, q, _ = (int(d) for d in node.get_attribute("boxes_shape"))
    b_static, _, c_static = (int(d) for d in node.get_attribute("scores_shape"))
    batch = size(scores, 0, b_static)
    num_boxes = size(scores, 1, n_static)
    num_classes = size(scores, 2, c_static)

    by_class = ops.transpose(scores, i64([0, 2, 1]))  # [B, C, N]
    if q == 1:
        nms_boxes = ops.squeeze(boxes, i64([2]))  # [B, N, 4], shared by the classes
        nms_scores = by_class
        source = nms_boxes
    else:  # NMS over B*C "images" of one class each
        class_boxes = ops.transpose(boxes, i64([0, 2, 1, 3]))  # [B, C, N, 4]
        nms_boxes = ops.reshape(class_boxes, ops.concat([i64([-1]), num_boxes, i64([4])], 0),
                                False)
        nms_scores = ops.reshape(by_class, ops.concat([i64([-1, 1]), num_boxes], 0), False)
        source = ops.reshape(class_boxes, ops.concat([batch, i64([-1, 4])], 0), False)
    nms = ops.non_max_suppression(nms_boxes, nms_scores, i64([per_class]),
                                  ops.constant(np.array([_ov_iou(iou)], np.float32)),
                                  ops.constant(np.array([score], np.float32)),
                                  box_encoding="corner", sort_result_descending=False,
                                  output_type="i64")
    valid = nms.output(2)
    selected = ops.slice(nms.output(0), i64([0]), valid, i64([1]))  # [M, 3]
    kept_scores = ops.slice(nms.output(1), i64([0]), valid, i64([1]))  # (batch, class, score)
    picked = ops.squeeze(ops.gather(kept_scores, i64([2]), i64(1)), i64([1]))
    empty = ops.broadcast(f32(-np.inf), ops.shape_of(nms_scores, "i64"))
    kept = ops.scatter_nd_update(empty, selected, picked)
    flat = ops.reshape(kept, ops.concat([batch, i64([-1])], 0), False)  # [B, C*N]

    want = i64([total])
    if pad_per_class:
        want = ops.minimum(want, ops.multiply(i64([per_class]), num_classes))
    k = ops.minimum(want, ops.multiply(num_classes, num_boxes))
    top = ops.topk(flat, ops.squeeze(k, i64([0])), axis=1, mode="max", sort="value",
                   index_element_type="i64", stable=True)
    values, index = top.output(0), top.output(1)
    is_valid = ops.greater(values, f32(-np.inf))
    zero = f32(0.0)
    box_index = ops.floor_mod(index, num_boxes) if q == 1 else index
    chosen = ops.gather_nd(source, ops.unsqueeze(box_index, i64([2])), batch_dims=1)
    if clip_boxes:
        chosen = ops.clamp(chosen, 0.0, 1.0)
    out_boxes = ops.select(ops.unsqueeze(is_valid, i64([2])), chosen, zero)
    out_scores = ops.select(is_valid, values, zero)
    classes = ops.convert(ops.divide(index, num_boxes), "f32")
    out_classes = ops.select(is_valid, classes, zero)
    count = ops.reduce_sum(ops.convert(is_valid, "i32"), i64([1]), keep_dims=False)

    def pad(x, rank: int) -> Any:
        """``x`` zero-padded at the end of axis 1 from k to ``want`` entries."""
        end = [i64([0]), ops.subtract(want, k)] + ([i64([0] * (rank - 2))] if rank > 2 else [])
        return ops.pad(x, i64([0] * rank), ops.concat(end, 0), "constant", zero)

    return [pad(out_boxes, 3).output(0), pad(out_scores, 2).output(0),
            pad(out_classes, 2).output(0), count.output(0)]


def _ov_iou(iou: float) -> float:
    """The threshold that makes OpenVINO keep exactly the boxes TensorFlow keeps.

    TensorFlow suppresses a box whose IoU with a kept box exceeds the threshold;
    OpenVINO's NonMaxSuppression also suppresses one whose IoU equals it, which
    matters at 0 (disjoint boxes, IoU 0, would all go). The next float32 up
    (the smallest normal one at 0, which flush-to-zero keeps) restores TF's rule.
    """
    if iou <= 0.0:
        return float(np.finfo(np.float32).tiny)
    return float(np.nextafter(np.float32(iou), np.float32(np.inf)))
