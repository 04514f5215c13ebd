"""Comparison, logical, selection and *Like converters: numerics, validation, layout."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.converter_layout import lower_one, node_info
from tftrt.converters import comparison as cmp
from tftrt.converters.context import NHWC_TO_NCHW
from tftrt.testing import check_function

F32 = np.float32
BOOL = np.bool_
NCHW = NHWC_TO_NCHW
DYN3 = tf.TensorSpec([None, None, 8], tf.float32)


def grid(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Floats on a 0.5 grid, so that comparisons see ties."""
    return np.asarray(np.round(np.random.default_rng(seed).uniform(-2, 2, shape) * 2) / 2, F32)


def ints(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).integers(-3, 4, shape), np.int32)


def bools(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).random(shape) > 0.5)


COMPARE = {"Greater": tf.greater, "Less": tf.less, "GreaterEqual": tf.greater_equal,
           "LessEqual": tf.less_equal, "Equal": tf.equal, "NotEqual": tf.not_equal}
NP_COMPARE = {"Greater": np.greater, "Less": np.less, "GreaterEqual": np.greater_equal,
              "LessEqual": np.less_equal, "Equal": np.equal, "NotEqual": np.not_equal}


def _all_comparisons(a, b):
    return tuple(COMPARE[op](a, b) for op in sorted(COMPARE))


def test_compare_float_dynamic() -> None:
    check_function(_all_comparisons, [grid((2, 3, 8), 1), grid((2, 3, 8), 2)],
                   specs=[DYN3, DYN3])
    check_function(_all_comparisons, [grid((2, 3, 8), 1), grid((3, 1), 3)],
                   specs=[DYN3, tf.TensorSpec([3, 1], tf.float32)])


def test_compare_int32_with_constants() -> None:
    c = ints((4,), 5)

    def f(x):
        return _all_comparisons(x, tf.constant(c)) + _all_comparisons(tf.constant(c[:1]), x)

    check_function(f, [ints((3, 4), 4)])


def test_compare_nan() -> None:
    x = np.array([np.nan, 1.0, np.nan, 2.0], F32)
    y = np.array([np.nan, np.nan, 1.0, 2.0], F32)
    check_function(_all_comparisons, [x, y])


def test_equal_bool_and_float16() -> None:
    check_function(tf.equal, [bools((3, 4), 1), bools((4,), 2)])
    check_function(tf.not_equal, [bools((3, 4), 1), bools((3, 4), 3)])
    check_function(tf.greater_equal, [grid((3, 4), 1).astype(np.float16),
                                      grid((3, 4), 2).astype(np.float16)])


def test_equal_incompatible_shape_error_false() -> None:
    x = grid((2, 3), 1)
    node = node_info("Equal", [x, x], incompatible_shape_error=False)
    assert cmp.convert_equality.validate(node) is None
    node = node_info("Equal", [x, x], shapes=[(None, 3), (2, 3)],
                     incompatible_shape_error=False)
    assert "incompatible_shape_error" in cmp.convert_equality.validate(node)
    node = node_info("NotEqual", [x, x[:, :1]], incompatible_shape_error=False)
    assert cmp.convert_equality.validate(node) is None
    assert cmp.convert_equality.validate(node_info("Equal", [x, x])) is None


def test_compare_refusals() -> None:
    d = np.ones((2, 2), np.float64)
    assert cmp.convert_ordering.validate(node_info("Greater", [d, d])) is not None
    b = np.ones((2, 2), BOOL)
    assert cmp.convert_ordering.validate(node_info("Less", [b, b])) is not None
    assert cmp.convert_equality.validate(node_info("Equal", [b, b])) is None
    f = np.ones((2, 2), F32)
    assert cmp.convert_logical_binary.validate(node_info("LogicalAnd", [f, f])) is not None


# -- logical ops -----------------------------------------------------------------------

def test_logical_ops() -> None:
    def f(a, b):
        return tf.logical_and(a, b), tf.logical_or(a, b), tf.logical_not(a)

    spec = tf.TensorSpec([None, None, 8], tf.bool)
    check_function(f, [bools((2, 3, 8), 1), bools((2, 3, 8), 2)], specs=[spec, spec])
    check_function(tf.logical_and, [bools((2, 3, 8), 1), bools((8,), 3)])


def test_logical_of_comparisons() -> None:
    def f(x):
        return tf.logical_or(tf.logical_not(x > 0.5), tf.logical_and(x < 1.0, x > -1.0))

    check_function(f, [grid((2, 3, 8), 4)], specs=[DYN3])


# -- Select / SelectV2 ----------------------------------------------------------------------

def _select(c, x, y):
    return tf.raw_ops.Select(condition=c, x=x, y=y)


def test_select_v2_broadcasts() -> None:
    x, y = grid((2, 3, 8), 1), grid((2, 3, 8), 2)
    check_function(tf.where, [bools((2, 3, 8), 3), x, y], specs=[
        tf.TensorSpec([None, None, 8], tf.bool), DYN3, DYN3])
    check_function(tf.where, [bools((3, 1), 4), x, grid((8,), 5)])

    def scalar_else(c, a):
        return tf.where(c, a, 0.0)

    check_function(scalar_else, [bools((2, 3, 8), 6), x])


@pytest.mark.parametrize("cond_shape", [(4,), (), (4, 3, 2)], ids=["rows", "scalar", "full"])
def test_select_tf1(cond_shape: tuple[int, ...]) -> None:
    x, y = grid((4, 3, 2), 1), grid((4, 3, 2), 2)
    cond = np.asarray(bools(cond_shape, 3))
    check_function(_select, [cond, x, y])


def test_select_rows_dynamic_and_int32() -> None:
    specs = [tf.TensorSpec([None], tf.bool), tf.TensorSpec([None, None, 8], tf.int32),
             tf.TensorSpec([None, None, 8], tf.int32)]
    check_function(_select, [bools((2,), 1), ints((2, 3, 8), 2), ints((2, 3, 8), 3)],
                   specs=specs)


def test_select_bool_data_and_const_condition() -> None:
    check_function(tf.where, [bools((3, 4), 1), bools((3, 4), 2), bools((4,), 3)])
    c = bools((3,), 4)

    def f(x, y):
        return _select(tf.constant(c), x, y)

    check_function(f, [grid((3, 5), 5), grid((3, 5), 6)])


def test_select_refusals() -> None:
    x = grid((4, 3, 2), 1)
    c = bools((4, 3), 2)
    node = node_info("Select", [c, x, x])
    assert "rank" in cmp.convert_select.validate(node)
    node = node_info("SelectV2", [c[:, :2], x, x])
    assert cmp.convert_select.validate(node) is None
    node = node_info("Select", [bools((4,), 3), x, x], shapes=[(4,), None, None])
    assert "known rank" in cmp.convert_select.validate(node)
    node = node_info("Select", [x, x, x])
    assert "bool" in cmp.convert_select.validate(node)


X = grid((2, 4, 5, 3), 11)  # NHWC


def test_layout_select_rows_keeps_perm() -> None:
    cond, y = bools((2,), 12), grid(X.shape, 13)
    values = [cond, X, y]
    node = node_info("Select", values, T=np.dtype(F32), out_dtypes=[F32])
    got, perm, ops = lower_one(cmp.convert_select, node, values, [None, NCHW, NCHW])
    np.testing.assert_array_equal(got, np.where(cond[:, None, None, None], X, y))
    assert perm == NCHW
    assert "Transpose" not in ops


@pytest.mark.parametrize("cond_shape", [(3,), (5, 3), (2, 4, 5, 3), ()], ids=str)
def test_layout_select_v2_condition_follows(cond_shape: tuple[int, ...]) -> None:
    cond = np.asarray(bools(cond_shape, 14))
    y = np.asarray(2.0, F32)
    values = [cond, X, y]
    node = node_info("SelectV2", values, consts=(2,), T=np.dtype(F32), out_dtypes=[F32])
    got, perm, ops = lower_one(cmp.convert_select, node, values, [None, NCHW, None])
    np.testing.assert_array_equal(got, np.where(cond, X, y))
    assert perm == NCHW
    assert ops.count("Transpose") == (1 if len(cond_shape) >= 2 else 0)


# -- ZerosLike / OnesLike -------------------------------------------------------------------

def test_zeros_ones_like_dynamic() -> None:
    dtypes = [tf.float32, tf.int32, tf.bool, tf.float16]

    def f(*xs):
        return tuple(like(x) for x in xs for like in (tf.zeros_like, tf.ones_like))

    check_function(f, [np.zeros((2, 3, 8), d.as_numpy_dtype) for d in dtypes],
                   specs=[tf.TensorSpec([None, None, 8], d) for d in dtypes])


def test_zeros_like_raw_static_and_scalar() -> None:
    def f(x):
        return tf.raw_ops.ZerosLike(x=x), tf.raw_ops.OnesLike(x=x) + x

    check_function(f, [grid((3, 4), 1)])
    check_function(f, [np.asarray(2.0, F32)])


@pytest.mark.parametrize("op,value", [("ZerosLike", 0), ("OnesLike", 1)])
def test_layout_fill_like_keeps_perm(op: str, value: int) -> None:
    got, perm, ops = lower_one(cmp.convert_fill_like, node_info(op, [X]), [X], [NCHW])
    np.testing.assert_array_equal(got, np.full(X.shape, value, F32))
    assert perm == NCHW
    assert "Transpose" not in ops


@pytest.mark.parametrize("op", sorted(COMPARE))
def test_layout_compare_keeps_perm(op: str) -> None:
    c = grid((5, 3), 15)
    node = node_info(op, [X, c], consts=(1,), out_dtypes=[BOOL])
    conv = cmp.convert_equality if op in ("Equal", "NotEqual") else cmp.convert_ordering
    got, perm, ops = lower_one(conv, node, [X, c], [NCHW, None])
    np.testing.assert_array_equal(got, NP_COMPARE[op](X, c))
    assert perm == NCHW
    assert "Transpose" not in ops


# -- property-based: selection over random broadcastable shapes ------------------------------

@st.composite
def where_shapes(draw) -> list[tuple[int, ...]]:
    out = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))

    def operand() -> tuple[int, ...]:
        k = draw(st.integers(0, len(out)))
        return tuple(d if draw(st.booleans()) else 1 for d in out[len(out) - k:])

    return [operand(), operand(), operand()]


@settings(max_examples=25, deadline=None)
@given(shapes=where_shapes(), dtype=st.sampled_from([np.float32, np.int32]),
       const_else=st.booleans(), seed=st.integers(0, 2**16))
def test_property_select_v2(shapes, dtype, const_else: bool, seed: int) -> None:
    cond = np.asarray(bools(shapes[0], seed))
    x = np.asarray(grid(shapes[1], seed + 1), dtype)
    y = np.asarray(grid(shapes[2], seed + 2), dtype)
    if const_else:
        check_function(lambda c, a: tf.where(c, a, tf.constant(y)), [cond, x])
    else:
        check_function(tf.where, [cond, x, y])


def test_lower_case_fill_like_aliases_lower_like_the_ops() -> None:
    import onnxruntime as ort

    from tftrt.converters.comparison import convert_fill_like
    from tftrt.converters.context import LoweringContext, NodeInfo

    for op, want in (("zeros_like", 0.0), ("ones_like", 1.0)):
        ctx = LoweringContext()
        ctx.bind("x:0", "X")
        f32 = np.dtype(np.float32)
        node = NodeInfo(name="n", op=op, attrs={"T": f32}, inputs=["x:0"], input_dtypes=[f32],
                        input_shapes=[(2, 3)], input_consts=[None], output_dtypes=[f32],
                        output_shapes=[(2, 3)])
        assert convert_fill_like.validate(node) is None
        convert_fill_like.convert(ctx, node)
        out, _ = ctx.lookup("n:0")
        model = ctx.make_model([("X", f32, (2, 3))], [(out, f32, (2, 3))], "t")
        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        got = sess.run(None, {"X": np.full((2, 3), 7.0, np.float32)})[0]
        np.testing.assert_array_equal(got, np.full((2, 3), want, np.float32))
