"""NMS converters against TensorFlow: CombinedNonMaxSuppression and NonMaxSuppressionV2-V5.

Every output is compared exactly (boxes and scores are gathered, not computed).
Equal scores are the one place TensorFlow's CombinedNonMaxSuppression has no
defined order; those tests compare the detections as a set and check our
documented order against a reference written here.

CombinedNonMaxSuppression is a plugin layer: every check of its portable
lowering (standard ONNX, run on ONNX Runtime) also runs each backend's native
lowering of the layer (OpenVINO's) and requires identical outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tftrt.compiler.lowering import node_info
from tftrt.plugins.layers import DOMAIN
from tftrt.plugins.manager import get_registry
from tftrt.plugins.types import BuildConfig
from tftrt.testing import check_function, lower_function, run_onnx, trace

F32 = tf.float32
NEG_INF = float("-inf")


# -- inputs ---------------------------------------------------------------------------

def _boxes(rng: np.random.Generator, shape: tuple[int, ...], flip: bool = True) -> np.ndarray:
    """Random [..., 4] boxes [y1, x1, y2, x2] of fair overlap; some corners swapped."""
    center = rng.uniform(0.0, 1.0, shape[:-1] + (2,))
    size = rng.uniform(0.05, 0.5, shape[:-1] + (2,))
    boxes = np.concatenate([center - size / 2, center + size / 2], axis=-1)
    if flip:  # TF (and ONNX) take any pair of opposite corners
        swap = rng.random(shape[:-1]) < 0.3
        boxes[swap] = boxes[swap][:, [2, 3, 0, 1]]
    return boxes.astype(np.float32)


def _scores(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0.0, 1.0, shape).astype(np.float32)


def _combined(per_class: int, total: int, iou: float = 0.5, score: float = NEG_INF,
              pad_per_class: bool = False, clip_boxes: bool = True
              ) -> Callable[[tf.Tensor, tf.Tensor], object]:
    def fn(boxes, scores):
        return tf.raw_ops.CombinedNonMaxSuppression(
            boxes=boxes, scores=scores, max_output_size_per_class=tf.constant(per_class),
            max_total_size=tf.constant(total), iou_threshold=tf.constant(iou, F32),
            score_threshold=tf.constant(score, F32), pad_per_class=pad_per_class,
            clip_boxes=clip_boxes)
    return fn


def _native_lowering_backends() -> list[str]:
    registry = get_registry()
    return [name for name, _ in [(b, registry.backend(b)) for b in registry.backend_names()]
            if registry.backend(name).available()
            and registry.plugin_layer("CombinedNonMaxSuppression").lowering(name)]


def _native_lowerings(fn: Callable[..., object], inputs: list[np.ndarray],
                      specs: list[tf.TensorSpec] | None = None) -> dict[str, list[np.ndarray]]:
    """Backend -> outputs of ``fn`` with its plugin layers lowered natively by that backend."""
    specs = specs or [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)) for x in inputs]
    out = {}
    for name in _native_lowering_backends():
        model = lower_function(fn, specs, backend=name)
        if not any(n.domain == DOMAIN for n in model.graph.node):
            continue  # nothing of fn is a plugin layer
        engine = get_registry().backend(name).build(model.SerializeToString(), BuildConfig())
        out[name] = engine.run(inputs)
    return out


def _exact(fn: Callable[..., object], inputs: list[np.ndarray],
           specs: list[tf.TensorSpec] | None = None):
    """Lower ``fn``, run it on ONNX Runtime and require TensorFlow's outputs bit for bit;
    each backend's native lowering of the plugin layer must give the same outputs."""
    model = check_function(fn, inputs, specs=specs, rtol=0.0, atol=0.0)
    portable = run_onnx(model, inputs)
    for backend, got in _native_lowerings(fn, inputs, specs).items():
        assert len(got) == len(portable), backend
        for k, (g, p) in enumerate(zip(got, portable, strict=True)):
            assert g.dtype == p.dtype and g.shape == p.shape, (backend, k, g.shape, p.shape)
            np.testing.assert_array_equal(g, p, err_msg=f"{backend} lowering, output {k}")
    return model


def _run_both(fn: Callable[..., object], inputs: list[np.ndarray],
              specs: list[tf.TensorSpec] | None = None
              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    specs = specs or [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)) for x in inputs]
    got = run_onnx(lower_function(fn, specs), inputs)
    want = fn(*[tf.constant(x) for x in inputs])
    return got, [np.asarray(w) for w in (want if isinstance(want, (list, tuple)) else [want])]


def _refusal(fn: Callable[..., object], specs: list[tf.TensorSpec], op: str) -> str | None:
    g, _, _ = trace(fn, specs)
    node = node_info(g, next(n for n in g.nodes if g.nodes[n]["op"] == op))
    return get_registry().converter(op).validate(node)


# -- CombinedNonMaxSuppression: exact against TensorFlow ---------------------------------

@pytest.mark.parametrize("q", ["shared", "per_class"])
@pytest.mark.parametrize("pad_per_class", [False, True])
@pytest.mark.parametrize("clip_boxes", [False, True])
def test_combined_nms(q: str, pad_per_class: bool, clip_boxes: bool) -> None:
    rng = np.random.default_rng([q == "shared", pad_per_class, clip_boxes])
    batch, n, classes = 3, 60, 4
    boxes = _boxes(rng, (batch, n, 1 if q == "shared" else classes, 4)) * 1.4 - 0.2
    scores = _scores(rng, (batch, n, classes))
    # max_total_size 25 < 4 classes x 5: pad_per_class keeps 20 rows
    for per_class, total in ((5, 25), (5, 12), (100, 300)):
        _exact(_combined(per_class, total, 0.45, 0.2, pad_per_class, clip_boxes),
               [boxes, scores])


@pytest.mark.parametrize("score", [NEG_INF, 0.0, 0.5, 0.97])
@pytest.mark.parametrize("iou", [0.0, 0.3, 0.7, 1.0])
def test_combined_nms_thresholds(score: float, iou: float) -> None:
    rng = np.random.default_rng(1)
    boxes, scores = _boxes(rng, (2, 40, 1, 4)), _scores(rng, (2, 40, 3))
    scores[0, :5, 0] = score  # exactly at the threshold: dropped, as in TF
    _exact(_combined(8, 20, iou, score), [boxes, scores])


def test_combined_nms_score_threshold_filters_and_pads_with_zeros() -> None:
    rng = np.random.default_rng(2)
    boxes = _boxes(rng, (2, 30, 1, 4))
    scores = _scores(rng, (2, 30, 2)) * 0.5
    scores[1] = 0.0  # nothing in image 1 passes
    model = _exact(_combined(10, 40, 0.5, 0.4), [boxes, scores])
    got = run_onnx(model, [boxes, scores])
    assert got[3][1] == 0 and not got[0][1].any() and not got[1][1].any()
    assert 0 < got[3][0] < 40 and not got[1][0, got[3][0]:].any()


def test_combined_nms_more_room_than_candidates() -> None:
    """max_total_size beyond num_classes x num_boxes: TopK takes all, the rest is padding."""
    rng = np.random.default_rng(3)
    boxes, scores = _boxes(rng, (2, 6, 2, 4)), _scores(rng, (2, 6, 2))
    _exact(_combined(50, 100, 0.5), [boxes, scores])
    _exact(_combined(50, 100, 0.5, pad_per_class=True), [boxes, scores])


def test_combined_nms_degenerate_boxes_and_nan_scores() -> None:
    rng = np.random.default_rng(4)
    boxes, scores = _boxes(rng, (1, 40, 1, 4)), _scores(rng, (1, 40, 3))
    boxes[0, :6, 0, 2] = boxes[0, :6, 0, 0]  # zero height: IoU 0, never suppressed
    boxes[0, 6:10, 0] = boxes[0, 10:14, 0]  # duplicates
    scores[0, 14:18, 1] = np.nan  # never selected
    for score in (NEG_INF, 0.1):
        _exact(_combined(10, 25, 0.5, score), [boxes, scores])


def test_combined_nms_dynamic_shapes() -> None:
    rng = np.random.default_rng(5)
    fn = _combined(6, 20, 0.5, 0.1, pad_per_class=True)
    specs = [tf.TensorSpec([None, None, 1, 4], F32), tf.TensorSpec([None, None, None], F32)]
    for batch, n, classes in ((1, 30, 5), (4, 70, 2), (2, 3, 3)):
        _exact(fn, [_boxes(rng, (batch, n, 1, 4)), _scores(rng, (batch, n, classes))],
               specs=specs)
    fn = _combined(6, 20, 0.5, 0.1)
    specs = [tf.TensorSpec([None, None, 3, 4], F32), tf.TensorSpec([None, None, 3], F32)]
    for batch, n in ((1, 40), (3, 9)):
        _exact(fn, [_boxes(rng, (batch, n, 3, 4)), _scores(rng, (batch, n, 3))], specs=specs)


def test_combined_nms_ops_are_standard_onnx() -> None:
    rng = np.random.default_rng(6)
    model = _exact(_combined(5, 10), [_boxes(rng, (1, 20, 1, 4)), _scores(rng, (1, 20, 2))])
    ops = {n.op_type for n in model.graph.node}
    assert "NonMaxSuppression" in ops and "TopK" in ops
    assert all(not n.domain for n in model.graph.node)
    assert [o.domain for o in model.opset_import] == [""]


@pytest.mark.skipif(find_spec("openvino") is None, reason="openvino is not installed")
def test_combined_nms_is_one_tftrt_node_that_openvino_lowers_itself() -> None:
    """For OpenVINO the layer stays one tftrt node, which only a Core with the layer's
    extension reads; the backend's Core has it."""
    import openvino as ov

    specs = [tf.TensorSpec([1, 20, 1, 4], F32), tf.TensorSpec([1, 20, 2], F32)]
    model = lower_function(_combined(5, 10), specs, backend="openvino")
    (layer,) = [n for n in model.graph.node if n.domain == DOMAIN]
    assert layer.op_type == "CombinedNonMaxSuppression"
    assert (DOMAIN, 1) in [(o.domain, o.version) for o in model.opset_import]
    onnx_ops = {n.op_type for n in model.graph.node}
    assert "NonMaxSuppression" not in onnx_ops and "TopK" not in onnx_ops
    with pytest.raises(RuntimeError, match="CombinedNonMaxSuppression"):
        ov.Core().read_model(model.SerializeToString(), b"")
    engine = get_registry().backend("openvino").build(model.SerializeToString(), BuildConfig())
    rng = np.random.default_rng(6)
    boxes, scores = _boxes(rng, (1, 20, 1, 4)), _scores(rng, (1, 20, 2))
    want = _combined(5, 10)(boxes, scores)
    for g, w in zip(engine.run([boxes, scores]), want, strict=True):
        np.testing.assert_array_equal(g, np.asarray(w))


@pytest.mark.skipif(find_spec("openvino") is None, reason="openvino is not installed")
def test_combined_nms_on_openvino() -> None:
    from tftrt.engines.openvino_backend import OpenVinoBackend
    from tftrt.plugins.types import BuildConfig

    rng = np.random.default_rng(7)
    for q, pad in ((1, False), (3, True)):
        boxes, scores = _boxes(rng, (2, 50, q, 4)), _scores(rng, (2, 50, 3))
        fn = _combined(7, 15, 0.5, 0.2, pad_per_class=pad)
        model = lower_function(fn, [tf.TensorSpec(boxes.shape, F32),
                                    tf.TensorSpec(scores.shape, F32)])
        engine = OpenVinoBackend().build(model.SerializeToString(), BuildConfig())
        got = engine.run([boxes, scores])
        for g, w in zip(got, fn(boxes, scores), strict=True):
            np.testing.assert_array_equal(g, np.asarray(w))
    # single class, equal scores: OpenVINO's NMS orders them by box index too
    boxes, scores = _boxes(rng, (120, 4)), np.round(_scores(rng, (120,)), 1)
    fn = _single("NonMaxSuppressionV5", 60, 0.5, 0.2, pad=True)
    model = lower_function(fn, [tf.TensorSpec(boxes.shape, F32),
                                tf.TensorSpec(scores.shape, F32)])
    got = OpenVinoBackend().build(model.SerializeToString(), BuildConfig()).run([boxes, scores])
    for g, w in zip(got, fn(boxes, scores), strict=True):
        np.testing.assert_array_equal(g, np.asarray(w))


# -- ties ----------------------------------------------------------------------------

def _reference_order(boxes: np.ndarray, scores: np.ndarray, per_class: int, total: int,
                     score: float) -> list[list[tuple[float, int, int]]]:
    """(score, class, box) of the detections in our documented order, when no box is
    suppressed: per class the best ``per_class`` by (score desc, box), then the best
    ``total`` by (score desc, class, box)."""
    out = []
    for b in range(scores.shape[0]):
        rows = []
        for c in range(scores.shape[2]):
            s = scores[b, :, c]
            keep = [i for i in np.argsort(-s, kind="stable") if s[i] > score][:per_class]
            rows += [(float(s[i]), c, int(i)) for i in keep]
        rows.sort(key=lambda r: (-r[0], r[1], r[2]))
        out.append(rows[:total])
    return out


def test_combined_nms_ties_across_classes_small() -> None:
    """Equal scores in different classes: TF's sort is stable on up to 16 candidates,
    so its order is class order, as ours."""
    rng = np.random.default_rng(8)
    n, classes = 4, 4
    boxes = _boxes(rng, (2, n, 1, 4))
    per_box = rng.permutation(n).astype(np.float32) / n + 0.1
    scores = np.broadcast_to(per_box[None, :, None], (2, n, classes)).copy()
    _exact(_combined(n, 16, 0.99), [boxes, scores])
    _exact(_combined(3, 7, 0.3, pad_per_class=True), [boxes, scores])


@pytest.mark.parametrize("seed", range(4))
def test_combined_nms_ties_select_the_same_detections(seed: int) -> None:
    """Many equal scores, no suppression among them: the same detections as TF, the same
    scores in the same order, in our documented order."""
    rng = np.random.default_rng(seed)
    batch, n, classes = 2, 30, 3
    boxes = np.zeros((batch, n, 1, 4), np.float32)  # disjoint boxes
    boxes[..., 0] = np.arange(n)[None, :, None]
    boxes[..., 2] = boxes[..., 0] + 0.5
    boxes[..., 3] = 0.5
    scores = (rng.integers(1, 6, (batch, n, classes)) / 5).astype(np.float32)
    fn = _combined(n, classes * n, 0.5, 0.2, clip_boxes=False)
    got, want = _run_both(fn, [boxes, scores])
    for backend, native in _native_lowerings(fn, [boxes, scores]).items():
        for k, (a, b) in enumerate(zip(native, got, strict=True)):  # same order of ties
            np.testing.assert_array_equal(a, b, err_msg=f"{backend} lowering, output {k}")
    np.testing.assert_array_equal(got[3], want[3])
    np.testing.assert_array_equal(got[1], want[1])  # scores sorted: equal as sequences

    def rows(out: list[np.ndarray], b: int) -> list[tuple[float, ...]]:
        return sorted(map(tuple, np.concatenate([out[1][b, :, None], out[2][b, :, None],
                                                 out[0][b]], axis=1).tolist()))

    for b in range(batch):
        assert rows(got, b) == rows(want, b)
    reference = _reference_order(boxes, scores, n, classes * n, 0.2)
    for b in range(batch):
        count = int(got[3][b])
        ours = [(float(got[1][b, k]), int(got[2][b, k]), int(got[0][b, k, 0]))
                for k in range(count)]
        assert ours == reference[b]


# -- refusals --------------------------------------------------------------------------

def test_combined_nms_refusals() -> None:
    specs = [tf.TensorSpec([1, 10, 1, 4], F32), tf.TensorSpec([1, 10, 3], F32)]
    op = "CombinedNonMaxSuppression"

    def with_tensor_total(boxes, scores, total):
        return tf.raw_ops.CombinedNonMaxSuppression(
            boxes=boxes, scores=scores, max_output_size_per_class=tf.constant(5),
            max_total_size=total, iou_threshold=tf.constant(0.5),
            score_threshold=tf.constant(0.0))

    reason = _refusal(with_tensor_total, specs + [tf.TensorSpec([], tf.int32)], op)
    assert reason is not None and "max_total_size" in reason and "constant" in reason
    assert "iou_threshold" in _refusal(_combined(5, 10, iou=1.5), specs, op)
    assert "positive" in _refusal(_combined(0, 10), specs, op)
    unknown_q = [tf.TensorSpec([1, 10, None, 4], F32), tf.TensorSpec([1, 10, 3], F32)]
    assert "q" in _refusal(_combined(5, 10), unknown_q, op)
    assert _refusal(_combined(5, 10), specs, op) is None


# -- NonMaxSuppressionV2..V5 -------------------------------------------------------------

def _single(op: str, size: int, iou: float = 0.5, score: float = NEG_INF, pad: bool = False,
            sigma: float = 0.0) -> Callable[[tf.Tensor, tf.Tensor], object]:
    def fn(boxes, scores):
        if op == "NonMaxSuppression":
            return tf.raw_ops.NonMaxSuppression(boxes=boxes, scores=scores,
                                                max_output_size=tf.constant(size),
                                                iou_threshold=iou)
        args = dict(boxes=boxes, scores=scores, max_output_size=tf.constant(size),
                    iou_threshold=tf.constant(iou, F32))
        if op == "NonMaxSuppressionV2":
            return tf.raw_ops.NonMaxSuppressionV2(**args)
        args["score_threshold"] = tf.constant(score, F32)
        if op == "NonMaxSuppressionV3":
            return tf.raw_ops.NonMaxSuppressionV3(**args)
        if op == "NonMaxSuppressionV4":
            return tf.raw_ops.NonMaxSuppressionV4(pad_to_max_output_size=pad, **args)
        return tf.raw_ops.NonMaxSuppressionV5(soft_nms_sigma=tf.constant(sigma, F32),
                                              pad_to_max_output_size=pad, **args)
    return fn


@pytest.mark.parametrize(("op", "pad"), [
    ("NonMaxSuppression", False), ("NonMaxSuppressionV2", False), ("NonMaxSuppressionV3", False),
    ("NonMaxSuppressionV4", False), ("NonMaxSuppressionV4", True),
    ("NonMaxSuppressionV5", False), ("NonMaxSuppressionV5", True)])
def test_single_class_nms(op: str, pad: bool) -> None:
    rng = np.random.default_rng(9)
    boxes = _boxes(rng, (150, 4))
    tied = np.round(_scores(rng, (150,)), 1)  # ties: TF orders them by box index
    for scores in (_scores(rng, (150,)), tied):
        for size, score in ((20, 0.3), (150, NEG_INF), (0, 0.0)):
            _exact(_single(op, size, 0.5, score, pad), [boxes, scores])
    specs = [tf.TensorSpec([None, 4], F32), tf.TensorSpec([None], F32)]
    _exact(_single(op, 40, 0.6, 0.1, pad), [boxes[:77], tied[:77]], specs=specs)


def test_single_class_nms_refusals() -> None:
    specs = [tf.TensorSpec([10, 4], F32), tf.TensorSpec([10], F32)]
    reason = _refusal(_single("NonMaxSuppressionV5", 5, sigma=0.5), specs,
                      "NonMaxSuppressionV5")
    assert reason is not None and "soft_nms_sigma" in reason
    assert _refusal(_single("NonMaxSuppressionV5", 5), specs, "NonMaxSuppressionV5") is None
    assert "iou_threshold" in _refusal(_single("NonMaxSuppressionV3", 5, iou=-0.1), specs,
                                       "NonMaxSuppressionV3")


# -- random sizes -----------------------------------------------------------------------

@settings(max_examples=20, deadline=None)
@given(batch=st.integers(1, 3), n=st.integers(1, 40), classes=st.integers(1, 5),
       per_class_q=st.booleans(), per_class=st.integers(1, 12), total=st.integers(1, 60),
       iou=st.sampled_from([0.0, 0.25, 0.5, 0.8, 1.0]),
       score=st.sampled_from([NEG_INF, 0.0, 0.3, 0.8]), pad_per_class=st.booleans(),
       clip_boxes=st.booleans(), seed=st.integers(0, 2**16))
def test_combined_nms_random(batch: int, n: int, classes: int, per_class_q: bool,
                             per_class: int, total: int, iou: float, score: float,
                             pad_per_class: bool, clip_boxes: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = classes if per_class_q else 1
    boxes = _boxes(rng, (batch, n, q, 4)) * 1.2 - 0.1
    scores = _scores(rng, (batch, n, classes))
    _exact(_combined(per_class, total, iou, score, pad_per_class, clip_boxes),
           [boxes, scores])
