"""Elementwise converters: numerics against TensorFlow, and layout handling."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.converter_layout import lower_one, node_info
from tftrt.converters import elementwise as ew
from tftrt.converters.context import NHWC_TO_NCHW
from tftrt.testing import check_function

F32 = np.float32


def rand(shape: tuple[int, ...], seed: int = 0, low: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if low is not None:
        return rng.uniform(low, low + 2.0, shape).astype(F32)
    return rng.standard_normal(shape).astype(F32)


def _div(x, y):
    return tf.raw_ops.Div(x=x, y=y)


def _add_v1(x, y):
    return tf.raw_ops.Add(x=x, y=y)


BINARY = [
    ("AddV2", tf.add, None), ("Add", _add_v1, None), ("Sub", tf.subtract, None),
    ("Mul", tf.multiply, None), ("RealDiv", tf.math.truediv, None), ("Div", _div, None),
    ("Maximum", tf.maximum, None), ("Minimum", tf.minimum, None), ("Pow", tf.pow, 0.5),
    ("SquaredDifference", tf.math.squared_difference, None),
]


def _inputs(low: float | None, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    return [rand(s, seed=k, low=low) for k, s in enumerate(shapes)]


@pytest.mark.parametrize("op,fn,low", BINARY, ids=[b[0] for b in BINARY])
def test_binary_two_tensors(op: str, fn, low: float | None) -> None:
    model = check_function(fn, _inputs(low, (2, 3, 4, 5), (2, 3, 4, 5)), rtol=1e-5, atol=1e-5)
    assert "Transpose" not in [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("op,fn,low", BINARY, ids=[b[0] for b in BINARY])
def test_binary_broadcast_tensors(op: str, fn, low: float | None) -> None:
    check_function(fn, _inputs(low, (2, 3, 4, 5), (4, 1)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,fn,low", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("shape", [(), (5,), (4, 5), (1, 4, 1)], ids=str)
def test_binary_const_right(op: str, fn, low: float | None, shape: tuple[int, ...]) -> None:
    c = rand(shape, seed=7, low=low)

    def f(x):
        return fn(x, tf.constant(c))

    check_function(f, _inputs(low, (2, 3, 4, 5)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,fn,low", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("shape", [(5,), (3, 1, 5)], ids=str)
def test_binary_const_left(op: str, fn, low: float | None, shape: tuple[int, ...]) -> None:
    c = rand(shape, seed=8, low=low)

    def f(x):
        return fn(tf.constant(c), x)

    check_function(f, _inputs(low, (2, 3, 4, 5)), rtol=1e-5, atol=1e-5)


def test_binary_const_higher_rank_than_tensor() -> None:
    c = rand((2, 1, 5), seed=3)

    def f(x):
        return x * tf.constant(c)

    check_function(f, _inputs(None, (4, 5)))


def test_binary_both_const() -> None:
    a, b = rand((4, 5), seed=1), rand((5,), seed=2)

    def f(x):
        return x + tf.multiply(tf.constant(a), tf.constant(b))

    model = check_function(f, _inputs(None, (3, 4, 5)))
    assert [n.op_type for n in model.graph.node].count("Mul") == 1


INT_OPS = [tf.add, _add_v1, tf.subtract, tf.multiply, tf.maximum, tf.minimum]


@pytest.mark.parametrize("fn", INT_OPS, ids=["AddV2", "Add", "Sub", "Mul", "Maximum", "Minimum"])
def test_binary_int32(fn) -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(-100, 100, (3, 4), dtype=np.int32)
    y = rng.integers(-100, 100, (3, 4), dtype=np.int32)
    c = rng.integers(-100, 100, (4,), dtype=np.int32)

    def f(a, b):
        return fn(fn(a, b), tf.constant(c))

    check_function(f, [x, y], rtol=0, atol=0)


def test_binary_dynamic_batch() -> None:
    c = rand((3,), seed=5)

    def f(x, y):
        return tf.math.squared_difference(x * tf.constant(c), y) / (y * y + 1.0)

    spec = tf.TensorSpec([None, 4, 3], tf.float32)
    check_function(f, _inputs(None, (2, 4, 3), (2, 4, 3)), specs=[spec, spec])


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("const_bias", [True, False], ids=["const", "tensor"])
def test_bias_add(fmt: str, const_bias: bool) -> None:
    x = rand((2, 3, 4, 5), seed=1)
    bias = rand((5,) if fmt == "NHWC" else (3,), seed=2)
    if const_bias:
        def f(x):
            return tf.nn.bias_add(x, tf.constant(bias), data_format=fmt)

        check_function(f, [x])
    else:
        def g(x, b):
            return tf.nn.bias_add(x, b, data_format=fmt)

        check_function(g, [x, bias])


def test_bias_add_dynamic_batch() -> None:
    bias = rand((6,), seed=2)

    def f(x):
        return tf.nn.bias_add(x, tf.constant(bias))

    check_function(f, [rand((3, 6))], specs=[tf.TensorSpec([None, 6], tf.float32)])


UNARY = [
    (tf.math.rsqrt, 0.5), (tf.math.sqrt, 0.5), (tf.math.exp, None), (tf.math.log, 0.5),
    (tf.math.negative, None), (tf.math.abs, None), (tf.math.square, None),
    (tf.math.reciprocal, 0.5), (tf.math.erf, None), (tf.math.floor, None), (tf.math.ceil, None),
]


@pytest.mark.parametrize("fn,low", UNARY, ids=[u[0].__name__ for u in UNARY])
def test_unary(fn, low: float | None) -> None:
    check_function(fn, [rand((2, 3, 4), seed=6, low=low)], rtol=1e-5, atol=1e-5)


def test_unary_dynamic_batch() -> None:
    def f(x):
        return tf.math.rsqrt(tf.abs(x) + 1.0) * tf.exp(-tf.square(x))

    check_function(f, [rand((3, 4), seed=9)], specs=[tf.TensorSpec([None, 4], tf.float32)])


def test_float16_add() -> None:
    x = rand((2, 3), seed=1).astype(np.float16)
    y = rand((2, 3), seed=2).astype(np.float16)
    check_function(tf.add, [x, y], rtol=1e-3, atol=1e-3)


# -- validation ------------------------------------------------------------------

def test_refuses_int_division_and_pow() -> None:
    x = np.ones((2, 2), np.int32)
    assert ew.convert_binary_float.validate(node_info("Div", [x, x])) is not None
    assert ew.convert_binary_float.validate(node_info("Pow", [x, x])) is not None
    assert ew.convert_binary_arith.validate(node_info("Mul", [x, x])) is None
    d = np.ones((2, 2), np.float64)
    assert ew.convert_binary_arith.validate(node_info("AddV2", [d, d])) is not None


def test_bias_add_nchw_unknown_rank_refused() -> None:
    x, b = rand((2, 3, 4)), rand((3,))
    node = node_info("BiasAdd", [x, b], shapes=[None, (3,)], data_format="NCHW")
    assert ew.convert_bias_add.validate(node) is not None
    node = node_info("BiasAdd", [x, b], shapes=[None, (3,)], data_format="NHWC")
    assert ew.convert_bias_add.validate(node) is None


# -- layout: inputs held NCHW (perm (0, 3, 1, 2)) stay NCHW ------------------------

NCHW = NHWC_TO_NCHW
X = rand((2, 4, 5, 3), seed=11)  # NHWC


@pytest.mark.parametrize("shape", [(), (3,), (5, 3), (1, 5, 1), (1, 4, 5, 3)], ids=str)
@pytest.mark.parametrize("const_first", [False, True], ids=["x_op_c", "c_op_x"])
def test_layout_const_operand(shape: tuple[int, ...], const_first: bool) -> None:
    c = rand(shape, seed=12)
    values = [c, X] if const_first else [X, c]
    node = node_info("Sub", values, consts=(0,) if const_first else (1,))
    got, perm, ops = lower_one(ew.convert_binary_arith, node, values, [NCHW, NCHW])
    np.testing.assert_allclose(got, values[0] - values[1], rtol=1e-6)
    assert perm == NCHW
    assert "Transpose" not in ops


def test_layout_const_of_higher_rank_falls_back() -> None:
    c = rand((2, 1, 1, 1, 3), seed=12)
    node = node_info("Mul", [X, c], consts=(1,))
    got, perm, ops = lower_one(ew.convert_binary_arith, node, [X, c], [NCHW, None])
    np.testing.assert_allclose(got, X * c, rtol=1e-6)
    assert perm is None


def test_layout_two_tensors_same_perm() -> None:
    y = rand(X.shape, seed=13)
    node = node_info("SquaredDifference", [X, y])
    got, perm, ops = lower_one(ew.convert_squared_difference, node, [X, y], [NCHW, NCHW])
    np.testing.assert_allclose(got, (X - y) ** 2, rtol=1e-5, atol=1e-6)
    assert perm == NCHW
    assert "Transpose" not in ops


@pytest.mark.parametrize("shape,transposes", [((3,), 0), ((1, 1, 3), 0), ((5, 3), 1),
                                              ((2, 1, 1, 3), 0), ((1, 1, 1), 0),
                                              ((2, 4, 5, 3), 1)], ids=str)
def test_layout_tensor_brought_to_other_layout(shape: tuple[int, ...], transposes: int) -> None:
    y = rand(shape, seed=14)
    node = node_info("AddV2", [y, X])
    got, perm, ops = lower_one(ew.convert_binary_arith, node, [y, X], [None, NCHW])
    np.testing.assert_allclose(got, y + X, rtol=1e-6)
    assert perm == NCHW
    assert ops.count("Transpose") == transposes


def test_layout_both_tensors_to_tf_layout_when_rank_unknown() -> None:
    y = rand((3,), seed=14)
    node = node_info("Maximum", [X, y], shapes=[X.shape, None])
    got, perm, _ = lower_one(ew.convert_binary_arith, node, [X, y], [NCHW, None])
    np.testing.assert_allclose(got, np.maximum(X, y))
    assert perm is None


@pytest.mark.parametrize("const_bias", [True, False], ids=["const", "tensor"])
def test_layout_bias_add_nhwc(const_bias: bool) -> None:
    b = rand((3,), seed=15)
    node = node_info("BiasAdd", [X, b], consts=(1,) if const_bias else (), data_format="NHWC")
    got, perm, ops = lower_one(ew.convert_bias_add, node, [X, b], [NCHW, None])
    np.testing.assert_allclose(got, X + b, rtol=1e-6)
    assert perm == NCHW
    assert "Transpose" not in ops


@pytest.mark.parametrize("const_bias", [True, False], ids=["const", "tensor"])
def test_layout_bias_add_nchw_format(const_bias: bool) -> None:
    x = rand((2, 3, 4, 5), seed=16)  # TF tensor is NCHW; held as NHWC
    b = rand((3,), seed=15)
    node = node_info("BiasAdd", [x, b], consts=(1,) if const_bias else (), data_format="NCHW")
    got, perm, ops = lower_one(ew.convert_bias_add, node, [x, b], [(0, 2, 3, 1), None])
    np.testing.assert_allclose(got, x + b[:, None, None], rtol=1e-6)
    assert perm == (0, 2, 3, 1)
    assert "Transpose" not in ops


@pytest.mark.parametrize("op,ref", [("Rsqrt", lambda v: 1 / np.sqrt(v)), ("Square", np.square),
                                    ("Exp", np.exp), ("Abs", np.abs)])
def test_layout_unary_keeps_perm(op: str, ref) -> None:
    conv = {"Rsqrt": ew.convert_rsqrt, "Square": ew.convert_square}.get(op, ew.convert_unary)
    x = np.abs(X) + 0.5
    got, perm, ops = lower_one(conv, node_info(op, [x]), [x], [NCHW])
    np.testing.assert_allclose(got, ref(x), rtol=1e-5)
    assert perm == NCHW
    assert "Transpose" not in ops


def test_layout_lower_rank_tensor_with_unknown_dims() -> None:
    y = rand((2, 1, 1, 3), seed=17)
    node = node_info("Mul", [y, X], shapes=[(None, 1, 1, None), (None, 4, 5, 3)])
    got, perm, ops = lower_one(ew.convert_binary_arith, node, [y, X], [None, NCHW])
    np.testing.assert_allclose(got, y * X, rtol=1e-6)
    assert perm == NCHW
    assert "Transpose" not in ops
