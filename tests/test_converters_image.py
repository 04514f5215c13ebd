"""ResizeBilinear and ResizeNearestNeighbor converters against TensorFlow."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from tftrt.compiler.lowering import node_info
from tftrt.plugins.manager import get_registry
from tftrt.testing import check_function, lower_function, run_onnx, trace

TOL = {"rtol": 1e-5, "atol": 1e-5}
OPS = ["ResizeBilinear", "ResizeNearestNeighbor"]
# every (align_corners, half_pixel_centers) TF accepts
MODES = [(False, False), (True, False), (False, True)]


def _rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _op_types(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _resize(op: str, size, align: bool, half: bool) -> Callable[[tf.Tensor], tf.Tensor]:
    def fn(x):
        return getattr(tf.raw_ops, op)(images=x, size=tf.constant(size, tf.int32),
                                       align_corners=align, half_pixel_centers=half)
    return fn


def _refusal(fn: Callable[..., object], specs: list[tf.TensorSpec], op: str) -> str | None:
    g, _, _ = trace(fn, specs)
    node = node_info(g, next(n for n in g.nodes if g.nodes[n]["op"] == op))
    return get_registry().converter(op).validate(node)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("align,half", MODES)
def test_resize_constant_size(op: str, align: bool, half: bool) -> None:
    for size in [(15, 11), (3, 2)]:  # up and down
        model = check_function(_resize(op, size, align, half), [_rand((2, 7, 5, 3))], **TOL)
    # NHWC in, NCHW resize, NHWC out
    assert _op_types(model).count("Transpose") == 2


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("align,half", MODES)
def test_resize_size_sweep(op: str, align: bool, half: bool) -> None:
    """Nearest rounding and bilinear weights: up, down, odd sizes and 1, on both axes."""
    def fn(x, size):
        return getattr(tf.raw_ops, op)(images=x, size=size, align_corners=align,
                                       half_pixel_centers=half)

    model = lower_function(fn, [tf.TensorSpec([1, None, None, 2], tf.float32),
                                tf.TensorSpec([2], tf.int32)])
    cases = [((h, 3), (24, 5)) for h in range(1, 13)] + [((12, 5), (h, 3)) for h in range(1, 25)]
    cases += [((3, 7), (3, w)) for w in (1, 2, 5, 9, 14, 21)]
    for (h, w), size in cases:
        x, size = _rand((1, h, w, 2), h * 31 + w), np.array(size, np.int32)
        got = run_onnx(model, [x, size])[0]
        want = fn(tf.constant(x), tf.constant(size)).numpy()
        np.testing.assert_allclose(got, want, err_msg=f"{(h, w)} -> {size}", **TOL)


@pytest.mark.parametrize("op", OPS)
def test_resize_size_tensor_and_dynamic_dims(op: str) -> None:
    def fn(x, size):
        return getattr(tf.raw_ops, op)(images=x, size=size, half_pixel_centers=True)

    specs = [tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([2], tf.int32)]
    check_function(fn, [_rand((2, 5, 6, 3)), np.array([9, 4], np.int32)], specs=specs, **TOL)
    check_function(fn, [_rand((1, 8, 3, 3), 1), np.array([3, 7], np.int32)], specs=specs, **TOL)


@pytest.mark.parametrize("op", OPS)
def test_resize_dynamic_batch_constant_size(op: str) -> None:
    fn = _resize(op, (11, 7), True, False)
    specs = [tf.TensorSpec([None, 4, 5, 2], tf.float32)]
    for batch in (1, 3):
        check_function(fn, [_rand((batch, 4, 5, 2), batch)], specs=specs, **TOL)


def test_resize_size_from_the_input_shape() -> None:
    def fn(x):  # double the spatial size, computed in the graph
        hw = tf.raw_ops.StridedSlice(input=tf.raw_ops.Shape(input=x), begin=tf.constant([1]),
                                     end=tf.constant([3]), strides=tf.constant([1]))
        return tf.raw_ops.ResizeNearestNeighbor(images=x, size=hw * 2, half_pixel_centers=True)

    specs = [tf.TensorSpec([None, None, None, 2], tf.float32)]
    check_function(fn, [_rand((1, 3, 5, 2))], specs=specs, **TOL)


def test_resize_half_and_int_inputs() -> None:
    x = _rand((1, 4, 5, 2))
    # ResizeBilinear gives float32 for any input type
    check_function(_resize("ResizeBilinear", (7, 3), False, True), [x.astype(np.float16)],
                   rtol=1e-3, atol=1e-3)
    check_function(_resize("ResizeNearestNeighbor", (7, 3), False, True),
                   [x.astype(np.float16)], **TOL)
    check_function(_resize("ResizeNearestNeighbor", (9, 8), True, False),
                   [(x * 10).astype(np.int32)])


def test_resize_between_convs_adds_no_transposes() -> None:
    f1, f2 = tf.constant(_rand((3, 3, 3, 4), 1)), tf.constant(_rand((1, 1, 4, 2), 2))

    def fn(x):
        y = tf.raw_ops.Conv2D(input=x, filter=f1, strides=[1, 1, 1, 1], padding="SAME")
        y = tf.raw_ops.ResizeBilinear(images=y, size=tf.constant([12, 10]),
                                      half_pixel_centers=True)
        y = tf.raw_ops.ResizeNearestNeighbor(images=y, size=tf.constant([5, 5]))
        return tf.raw_ops.Conv2D(input=y, filter=f2, strides=[1, 1, 1, 1], padding="SAME")

    model = check_function(fn, [_rand((2, 6, 5, 3))], rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 2


def test_refusals() -> None:
    spec = [tf.TensorSpec([1, 4, 4, 2], tf.float32)]
    cases = [
        (_resize("ResizeBilinear", (2, 2), True, True), spec, "ResizeBilinear",
         "align_corners=True and half_pixel_centers=True"),
        (lambda x: tf.raw_ops.ResizeBilinear(images=x, size=tf.constant([2, 2])),
         [tf.TensorSpec(None, tf.float32)], "ResizeBilinear", "must be 4-D"),
        (lambda x: tf.raw_ops.ResizeNearestNeighbor(images=x, size=tf.constant([2, 2])),
         [tf.TensorSpec([1, 4, 4, 2], tf.int64)], "ResizeNearestNeighbor",
         "Allowed input dtypes"),
    ]
    for fn, specs, op, expected in cases:
        reason = _refusal(fn, specs, op)
        assert reason is not None and expected in reason, (op, reason)
