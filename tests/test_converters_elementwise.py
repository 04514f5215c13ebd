"""Elementwise converters: numerics against TensorFlow, and layout handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.converter_layout import lower_one, node_info
from tftrt.converters import elementwise as ew
from tftrt.converters import special as sp
from tftrt.converters.context import NHWC_TO_NCHW
from tftrt.plugins.manager import get_registry
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


# -- FloorDiv / FloorMod -------------------------------------------------------------

DYN3 = tf.TensorSpec([None, None, 8], tf.float32)


def _signed_ints(shape: tuple[int, ...], seed: int, nonzero: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if nonzero:
        return (rng.integers(1, 8, shape) * rng.choice([-1, 1], shape)).astype(np.int32)
    return rng.integers(-50, 50, shape).astype(np.int32)


@pytest.mark.parametrize("fn", [tf.math.floordiv, tf.math.floormod], ids=["FloorDiv", "FloorMod"])
def test_floor_div_mod_float(fn) -> None:
    x = np.array([7.5, -7.5, 7.5, -7.5, 6.0, -6.0, 0.0, 1e-3], F32)
    y = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 3.0, -5.0, -4.0], F32)
    check_function(fn, [x, y], rtol=1e-6, atol=1e-6)
    d = rand((8,), seed=2)
    divisor = np.where(np.abs(d) < 0.1, 1.0, d).astype(F32)
    check_function(fn, [rand((2, 3, 8), seed=1), divisor],
                   specs=[DYN3, tf.TensorSpec([8], tf.float32)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn", [tf.math.floordiv, tf.math.floormod], ids=["FloorDiv", "FloorMod"])
def test_floor_div_mod_int32(fn) -> None:
    x, y = _signed_ints((4, 6), seed=3), _signed_ints((4, 6), seed=4, nonzero=True)
    check_function(fn, [x, y], rtol=0, atol=0)
    c = _signed_ints((6,), seed=5, nonzero=True)

    def with_const(a):
        return fn(a, tf.constant(c))

    check_function(with_const, [x], specs=[tf.TensorSpec([None, 6], tf.int32)], rtol=0, atol=0)


@pytest.mark.parametrize("op,conv,ref", [("FloorDiv", ew.convert_floor_div, np.floor_divide),
                                         ("FloorMod", ew.convert_floor_mod, np.mod)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32], ids=["float", "int32"])
def test_layout_floor_div_mod(op: str, conv, ref, dtype) -> None:
    x = (X * 10).astype(dtype)
    c = np.array([3, -2, 5], dtype)
    node = node_info(op, [x, c], consts=(1,))
    got, perm, ops = lower_one(conv, node, [x, c], [NCHW, None])
    np.testing.assert_allclose(got, ref(x, c), rtol=1e-6, atol=1e-5)
    assert perm == NCHW
    assert "Transpose" not in ops


# -- unary functions ------------------------------------------------------------------

def _inv(x):
    return tf.raw_ops.Inv(x=x)


# each function of an input in (-0.95, 0.95), mapped into its domain
UNARY_FUNCTIONS = [
    tf.math.sin, tf.math.cos, tf.math.tan, tf.math.sinh, tf.math.cosh, tf.math.asin,
    tf.math.acos, tf.math.atan, tf.math.asinh, tf.math.atanh, tf.math.round,
    lambda x: tf.math.acosh(tf.abs(x) + 1.0), lambda x: _inv(tf.abs(x) + 0.5),
    lambda x: tf.math.round(x * 4.0),
]


def test_unary_functions_dynamic() -> None:
    def f(x):
        return tuple(fn(x) for fn in UNARY_FUNCTIONS)

    x = (np.tanh(rand((2, 3, 8), seed=21)) * 0.95).astype(F32)
    check_function(f, [x], specs=[DYN3], rtol=1e-5, atol=1e-6)


def test_round_half_to_even_and_sign() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 3.51, 0.0, -0.0, np.nan, -np.inf], F32)

    def f(v):
        return tf.math.round(v), tf.math.sign(v)

    check_function(f, [x], rtol=0, atol=0)
    check_function(f, [_signed_ints((3, 4), seed=6)], rtol=0, atol=0)


def test_unary_float16() -> None:
    x = np.tanh(rand((3, 5), seed=22)).astype(np.float16)

    def f(v):
        return tf.math.sin(v) + tf.math.atanh(v * 0.9) + tf.math.erfc(v) + tf.math.expm1(v)

    check_function(f, [x], rtol=2e-3, atol=2e-3)


# -- Erfc, Expm1, Log1p: accurate on the whole range --------------------------------------

WIDE = np.concatenate([np.linspace(-9.0, 9.0, 181), np.geomspace(1e-8, 1.0, 40),
                       -np.geomspace(1e-8, 1.0, 40)]).astype(F32)
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], F32)


def test_erfc() -> None:
    # atol: TensorFlow flushes subnormal results to zero
    check_function(tf.math.erfc, [np.concatenate([WIDE, SPECIAL])], rtol=1e-5, atol=1e-37)


def test_expm1() -> None:
    x = np.concatenate([WIDE, [-100.0, 80.0, 100.0], SPECIAL]).astype(F32)
    check_function(tf.math.expm1, [x], rtol=2e-6, atol=0)


def test_log1p() -> None:
    x = np.concatenate([np.abs(WIDE), -np.geomspace(1e-8, 0.999, 40), [-1.0, -2.0, 1e30],
                        SPECIAL]).astype(F32)
    check_function(tf.math.log1p, [x], rtol=2e-6, atol=0)


def test_float_classification() -> None:
    x = np.array([[1.0, np.nan, np.inf], [-np.inf, 0.0, -3.0]], F32)

    def f(v):
        return tf.math.is_nan(v), tf.math.is_inf(v), tf.math.is_finite(v)

    check_function(f, [x])
    check_function(f, [x.astype(np.float16)])


@pytest.mark.parametrize("op,ref", [("IsNan", np.isnan), ("Erfc", np.vectorize(math.erfc)),
                                    ("Sign", np.sign), ("Expm1", np.expm1)])
def test_layout_new_unary_keeps_perm(op: str, ref) -> None:
    conv = {"IsNan": sp.convert_float_class, "Erfc": sp.convert_erfc,
            "Sign": ew.convert_sign, "Expm1": sp.convert_expm1}[op]
    x = X.copy()
    x[0, 0, 0, 0] = np.nan
    out = [np.bool_] if op == "IsNan" else None
    got, perm, ops = lower_one(conv, node_info(op, [x], out_dtypes=out), [x], [NCHW])
    np.testing.assert_allclose(got, ref(x), rtol=1e-5)
    assert perm == NCHW
    assert "Transpose" not in ops


# -- AddN -------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 5])
def test_add_n(n: int) -> None:
    def f(*xs):
        return tf.math.add_n(list(xs))

    spec = tf.TensorSpec([None, None, 8], tf.float32)
    check_function(f, [rand((2, 3, 8), seed=k) for k in range(n)], specs=[spec] * n)


def test_add_n_with_constant_and_int32() -> None:
    c = rand((3, 4), seed=9)

    def f(a, b):
        return tf.math.add_n([a, tf.constant(c), b])

    check_function(f, _inputs(None, (3, 4), (3, 4)))
    ints = [_signed_ints((2, 5), seed=k) for k in range(3)]

    def g(a, b, d):
        return tf.math.add_n([a, b, d])

    check_function(g, ints, rtol=0, atol=0)


def test_layout_add_n_mixed_layouts() -> None:
    y, c = rand(X.shape, seed=31), rand(X.shape, seed=32)
    values = [X, y, c]
    node = node_info("AddN", values, consts=(2,), N=3)
    got, perm, ops = lower_one(ew.convert_add_n, node, values, [NCHW, None, None])
    np.testing.assert_allclose(got, X + y + c, rtol=1e-6)
    assert perm == NCHW
    assert ops.count("Transpose") == 1


def test_add_n_refuses_one_input() -> None:
    assert ew.convert_add_n.validate(node_info("AddN", [X], N=1)) is not None
    assert ew.convert_add_n.validate(node_info("AddN", [X, X], N=2)) is None


# -- ClipByValue ----------------------------------------------------------------------------

def _clip(x, lo, hi):
    return tf.raw_ops.ClipByValue(t=x, clip_value_min=lo, clip_value_max=hi)


@pytest.mark.parametrize("lo,hi", [(-0.5, 0.5), (1.0, -1.0)], ids=["ordered", "min_above_max"])
def test_clip_by_value_const_scalars(lo: float, hi: float) -> None:
    def f(x):
        return _clip(x, tf.constant(lo), tf.constant(hi))

    check_function(f, [rand((2, 3, 8), seed=41)], specs=[DYN3])


def test_clip_by_value_tensor_bounds() -> None:
    x, lo = rand((3, 8), seed=42), rand((3, 8), seed=43) - 0.5
    check_function(_clip, [x, lo, lo + 1.0])
    check_function(_clip, [x, np.array(-0.3, F32), np.array(0.2, F32)])
    ints = _signed_ints((4, 5), seed=44)

    def int_clip(x):
        return _clip(x, tf.constant(-10), tf.constant(20))

    check_function(int_clip, [ints], rtol=0, atol=0)


@pytest.mark.parametrize("bounds", ["scalar", "full"])
def test_layout_clip_by_value(bounds: str) -> None:
    if bounds == "scalar":
        lo, hi = np.array(-0.5, F32), np.array(0.5, F32)
    else:
        lo, hi = rand(X.shape, seed=45) - 1.0, rand(X.shape, seed=46)
    values = [X, lo, hi]
    node = node_info("ClipByValue", values, consts=(1, 2))
    got, perm, ops = lower_one(ew.convert_clip_by_value, node, values, [NCHW, None, None])
    np.testing.assert_allclose(got, np.maximum(np.minimum(X, hi), lo), rtol=1e-6)
    assert perm == NCHW
    assert "Transpose" not in ops


def test_new_ops_refuse_other_dtypes() -> None:
    d = np.ones((2, 2), np.float64)
    i = np.ones((2, 2), np.int32)
    assert ew.convert_floor_div.validate(node_info("FloorDiv", [d, d])) is not None
    assert ew.convert_floor_mod.validate(node_info("FloorMod", [i, i])) is None
    assert ew.convert_unary.validate(node_info("Sin", [i])) is not None
    assert sp.convert_erfc.validate(node_info("Erfc", [d])) is not None
    assert ew.convert_sign.validate(node_info("Sign", [i])) is None


# -- property-based: random broadcastable shapes, operand kinds and ops -------------------

FLOAT_BINARY = {
    "AddV2": tf.add, "Sub": tf.subtract, "Mul": tf.multiply, "RealDiv": tf.math.truediv,
    "Maximum": tf.maximum, "Minimum": tf.minimum, "SquaredDifference": tf.math.squared_difference,
    "FloorDiv": tf.math.floordiv, "FloorMod": tf.math.floormod, "Pow": tf.pow,
    "Greater": tf.greater, "Less": tf.less, "GreaterEqual": tf.greater_equal,
    "LessEqual": tf.less_equal, "Equal": tf.equal, "NotEqual": tf.not_equal,
}
INT_BINARY = ["AddV2", "Sub", "Mul", "Maximum", "Minimum", "FloorDiv", "FloorMod", "Greater",
              "LessEqual", "Equal", "NotEqual"]
NP_BINARY = {
    "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply, "RealDiv": np.true_divide,
    "Maximum": np.maximum, "Minimum": np.minimum,
    "SquaredDifference": lambda a, b: np.square(a - b), "FloorDiv": np.floor_divide,
    "FloorMod": np.mod, "Pow": np.power, "Greater": np.greater, "Less": np.less,
    "GreaterEqual": np.greater_equal, "LessEqual": np.less_equal, "Equal": np.equal,
    "NotEqual": np.not_equal,
}
_DIVIDES = {"RealDiv", "FloorDiv", "FloorMod"}


@st.composite
def broadcast_pair(draw, min_rank: int = 1,
                   max_rank: int = 4) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two shapes that broadcast together (each dim of either may be 1 or absent)."""
    out = draw(st.lists(st.integers(1, 4), min_size=min_rank, max_size=max_rank))

    def operand() -> tuple[int, ...]:
        k = draw(st.integers(0, len(out)))
        return tuple(d if draw(st.booleans()) else 1 for d in out[len(out) - k:])

    return operand(), operand()


def _operands(op: str, shapes, dtype, seed: int) -> list[np.ndarray]:
    """Operands with ties (values on a 0.5 grid); divisors and Pow bases kept from 0."""
    rng = np.random.default_rng(seed)
    if dtype == np.int32:
        a = rng.integers(-20, 20, shapes[0])
        b = rng.integers(-20, 20, shapes[1])
        if op in _DIVIDES:
            b = np.where(b == 0, 3, b)
    else:
        a = np.round(rng.uniform(-3, 3, shapes[0]) * 2) / 2
        b = np.round(rng.uniform(-3, 3, shapes[1]) * 2) / 2
        if op in _DIVIDES:
            b = np.where(b == 0, -1.5, b)
        if op == "Pow":
            a = np.abs(a) + 0.5
    return [np.asarray(a, dtype), np.asarray(b, dtype)]


@settings(max_examples=25, deadline=None)
@given(pair=broadcast_pair(min_rank=0), op=st.sampled_from(sorted(FLOAT_BINARY)),
       is_int=st.booleans(), kind=st.sampled_from(["tensors", "const_left", "const_right"]),
       dynamic=st.booleans(), seed=st.integers(0, 2**16))
def test_property_binary_ops(pair, op: str, is_int: bool, kind: str, dynamic: bool,
                             seed: int) -> None:
    if is_int and op not in INT_BINARY:
        op = INT_BINARY[seed % len(INT_BINARY)]
    dtype = np.int32 if is_int else F32
    a, b = _operands(op, pair, dtype, seed)
    fn = FLOAT_BINARY[op]
    tol = {"rtol": 0, "atol": 0} if is_int else {"rtol": 1e-5, "atol": 1e-5}

    def spec(v: np.ndarray) -> tf.TensorSpec:
        return tf.TensorSpec([None] * v.ndim if dynamic else v.shape, tf.as_dtype(v.dtype))

    if kind == "tensors":
        check_function(fn, [a, b], specs=[spec(a), spec(b)], **tol)
    elif kind == "const_left":
        check_function(lambda y: fn(tf.constant(a), y), [b], specs=[spec(b)], **tol)
    else:
        check_function(lambda x: fn(x, tf.constant(b)), [a], specs=[spec(a)], **tol)


@settings(max_examples=25, deadline=None)
@given(other=st.lists(st.sampled_from([1, None]), min_size=0, max_size=4),
       op=st.sampled_from(sorted(FLOAT_BINARY)), held=st.sampled_from([NCHW, (0, 2, 3, 1)]),
       kind=st.sampled_from(["const", "tensor"]), x_first=st.booleans(),
       seed=st.integers(0, 2**16))
def test_property_binary_layout(other, op: str, held, kind: str, x_first: bool,
                                seed: int) -> None:
    # the other operand: some trailing dims of X, each kept (None) or 1
    dims = X.shape[4 - len(other):]
    shape = tuple(d if keep is None else 1 for d, keep in zip(dims, other, strict=True))
    x, y = _operands(op, [X.shape, shape], F32, seed)
    if op in _DIVIDES and not x_first:
        x = np.where(x == 0, 2.5, x).astype(F32)
    if op == "Pow" and not x_first:
        y = np.abs(y) + 0.5
    values = [x, y] if x_first else [y, x]
    conv = get_registry().converter(op)
    is_bool = op in ("Greater", "Less", "GreaterEqual", "LessEqual", "Equal", "NotEqual")
    node = node_info(op, values, consts=() if kind == "tensor" else ((1,) if x_first else (0,)),
                     out_dtypes=[np.bool_] if is_bool else None)
    perms = [held, None] if x_first else [None, held]
    got, perm, ops = lower_one(conv, node, values, perms)
    np.testing.assert_allclose(got, NP_BINARY[op](*values), rtol=1e-5, atol=1e-5)
    assert perm == held
    if kind == "const":
        assert "Transpose" not in ops


def test_scalar_tensor_with_scalar_constant_stays_scalar() -> None:
    def f(x):
        return tf.constant(np.float32(3.0)) * x - tf.constant(np.float32(1.0))

    check_function(f, [np.asarray(2.5, F32)])


@pytest.mark.parametrize("fn", [
    lambda x: x + tf.zeros([5]), lambda x: tf.zeros([4, 5]) + x, lambda x: x - tf.zeros([5]),
    lambda x: tf.ones([5]) * x, lambda x: x / tf.ones([1, 1, 5]), lambda x: _div(x, tf.ones([5])),
], ids=["add0", "0add", "sub0", "1mul", "div1", "intdiv1"])
def test_neutral_constants_pass_their_operand_through(fn) -> None:
    model = check_function(fn, _inputs(None, (2, 3, 4, 5)))
    assert {n.op_type for n in model.graph.node} <= {"Identity"}


@pytest.mark.parametrize("fn", [
    lambda x: x + tf.zeros([2, 3, 4, 5]),  # broadcasts x: not the identity
    lambda x: tf.zeros([5]) - x, lambda x: tf.ones([5]) / x,  # the constant on the wrong side
    lambda x: x * tf.constant([1.0, 1.0, 1.0, 1.0, 2.0]),
], ids=["broadcast", "0sub", "1div", "not-all-ones"])
def test_constants_that_change_the_operand_stay(fn) -> None:
    model = check_function(fn, _inputs(None, (4, 5)))
    assert {n.op_type for n in model.graph.node} - {"Identity"}
