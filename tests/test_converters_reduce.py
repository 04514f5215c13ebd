"""Reduction converters: numerics against TensorFlow, validation, and layout handling."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.converter_layout import lower_one, node_info
from tftrt.converters import reduce as red
from tftrt.converters.context import NHWC_TO_NCHW, NodeInfo
from tftrt.testing import check_function


def rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    # in [0.5, 1.5): keeps products well scaled
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(np.float32)


REDUCTIONS = {"Mean": tf.reduce_mean, "Sum": tf.reduce_sum, "Max": tf.reduce_max,
              "Min": tf.reduce_min, "Prod": tf.reduce_prod}
NP_REDUCTIONS = {"Mean": np.mean, "Sum": np.sum, "Max": np.max, "Min": np.min, "Prod": np.prod}
AXES = [[1, 2], [-1], [0, 3], [2], [0, 1, 2, 3], -3]


@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("keep_dims", [False, True], ids=["drop", "keep"])
def test_reduce(axes, keep_dims: bool) -> None:
    def f(x):
        return tuple(REDUCTIONS[op](x, axis=axes, keepdims=keep_dims)
                     for op in sorted(REDUCTIONS))

    check_function(f, [rand((2, 3, 4, 5), seed=1)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", sorted(REDUCTIONS))
def test_reduce_dynamic_batch(op: str) -> None:
    reduce_fn = REDUCTIONS[op]

    def f(x):
        return reduce_fn(x, axis=[1, 2])

    check_function(f, [rand((3, 4, 5, 6), seed=2)],
                   specs=[tf.TensorSpec([None, 4, 5, 6], tf.float32)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["Sum", "Max", "Min", "Prod"])
def test_reduce_int32(op: str) -> None:
    reduce_fn = REDUCTIONS[op]
    x = np.random.default_rng(3).integers(-4, 5, (3, 4, 2), dtype=np.int32)

    def f(x):
        return reduce_fn(x, axis=[0, 2], keepdims=True)

    check_function(f, [x], rtol=0, atol=0)


# -- validation ------------------------------------------------------------------

def _node(op: str, axes, shape=(2, 3, 4, 5), dtype=np.float32, consts=(1,)):
    x = np.zeros(shape or (2, 3, 4, 5), dtype)
    return node_info(op, [x, np.asarray(axes, np.int32)], consts=consts,
                     shapes=[shape, np.shape(axes)], keep_dims=False)


def test_refusals() -> None:
    assert red.convert_mean.validate(_node("Mean", [1, 2])) is None
    assert red.convert_mean.validate(_node("Mean", [1], shape=None)) is not None
    assert red.convert_mean.validate(_node("Mean", np.zeros(0, np.int32))) is not None
    assert red.convert_mean.validate(_node("Mean", [4])) is not None
    assert red.convert_mean.validate(_node("Mean", [1], consts=())) is not None
    assert red.convert_mean.validate(_node("Mean", [1], dtype=np.int32)) is not None
    assert red.convert_reduce.validate(_node("Sum", [1], dtype=np.int32)) is None


def test_reduced_perm() -> None:
    assert red.reduced_perm(NHWC_TO_NCHW, [1, 2], False) is None
    assert red.reduced_perm(NHWC_TO_NCHW, [1, 2], True) == NHWC_TO_NCHW
    assert red.reduced_perm(NHWC_TO_NCHW, [0], False) == (2, 0, 1)
    assert red.reduced_perm(NHWC_TO_NCHW, [3], False) is None
    assert red.reduced_perm(NHWC_TO_NCHW, [0, 1, 2, 3], False) is None
    assert red.reduced_perm(None, [1], False) is None


# -- layout: an NCHW-held NHWC tensor is reduced in place -----------------------------

X = rand((2, 4, 5, 3), seed=5)  # NHWC


@pytest.mark.parametrize("op", sorted(REDUCTIONS))
@pytest.mark.parametrize("axes", [[1, 2], [-3, -2], [0], [3], [1], [0, 1, 2, 3]], ids=str)
@pytest.mark.parametrize("keep_dims", [False, True], ids=["drop", "keep"])
def test_layout_reduce_in_place(op: str, axes: list[int], keep_dims: bool) -> None:
    node = _node(op, axes, shape=X.shape)
    node.attrs["keep_dims"] = keep_dims
    conv = red.convert_mean if op == "Mean" else red.convert_reduce
    got, perm, ops = lower_one(conv, node, [X, np.asarray(axes, np.int32)], [NHWC_TO_NCHW, None])
    want = NP_REDUCTIONS[op](X, axis=tuple(axes), keepdims=keep_dims)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert "Transpose" not in ops
    if keep_dims:
        assert perm == NHWC_TO_NCHW


def test_layout_global_average_pool() -> None:
    node = _node("Mean", [1, 2], shape=X.shape)
    got, perm, ops = lower_one(red.convert_mean, node, [X, np.array([1, 2], np.int32)],
                               [NHWC_TO_NCHW, None])
    np.testing.assert_allclose(got, X.mean(axis=(1, 2)), rtol=1e-6)
    assert got.shape == (2, 3)
    assert perm is None
    assert ops == ["ReduceMean"]


# -- All / Any ---------------------------------------------------------------------------

def bools(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).random(shape) > 0.3)


def test_all_any_dynamic() -> None:
    cases = [([1], False), ([0, -1], True), ([-2], True), ([0, 1, 2], False)]

    def f(x):
        return tuple(fn(x, axis=axes, keepdims=keep) for axes, keep in cases
                     for fn in (tf.reduce_all, tf.reduce_any))

    check_function(f, [bools((2, 3, 8), seed=1)],
                   specs=[tf.TensorSpec([None, None, 8], tf.bool)])


def test_all_any_of_comparison() -> None:
    def f(x):
        return tf.reduce_all(x > 0.6, axis=[1, 2]), tf.reduce_any(x > 1.4, axis=-1)

    check_function(f, [rand((3, 4, 5), seed=2)])


def test_all_refuses_non_bool() -> None:
    node = _node("All", [1], dtype=np.float32)
    assert "bool" in red.convert_logical_reduce.validate(node)
    node = _node("Any", [1], dtype=np.bool_)
    assert red.convert_logical_reduce.validate(node) is None


# -- ArgMax / ArgMin ------------------------------------------------------------------------

TIES = np.array([[1.0, 3.0, 3.0, 2.0, 3.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                 [5.0, -1.0, 5.0, -1.0, 4.0, -1.0]], np.float32)


def test_arg_max_min_first_index_on_ties() -> None:
    def f(x):
        return (tf.argmax(x, 1), tf.argmin(x, 1), tf.argmax(x, 0, output_type=tf.int32),
                tf.argmin(x, -2, output_type=tf.int32))

    check_function(f, [TIES])
    check_function(f, [TIES.astype(np.int32)])


def test_arg_max_dynamic() -> None:
    def f(x):
        return tuple(out for axis in (0, 1, -1)
                     for out in (tf.argmax(x, axis), tf.argmin(x, axis, output_type=tf.int32)))

    x = np.round(rand((2, 3, 8), seed=3) * 4)
    check_function(f, [x], specs=[tf.TensorSpec([None, None, 8], tf.float32)])


def _arg_node(op: str, axis, shape=(2, 3, 4), output_type=np.int64) -> NodeInfo:
    x = np.zeros((2, 3, 4), np.float32)
    return node_info(op, [x, np.asarray(axis, np.int32)], consts=(1,),
                     shapes=[shape, np.shape(axis)], output_type=np.dtype(output_type),
                     out_dtypes=[output_type])


def test_arg_max_refusals() -> None:
    conv = red.convert_arg_reduce
    assert conv.validate(_arg_node("ArgMax", 1)) is None
    assert conv.validate(_arg_node("ArgMax", -3)) is None
    assert "out of range" in conv.validate(_arg_node("ArgMax", 3))
    assert "scalar" in conv.validate(_arg_node("ArgMax", [0, 1]))
    assert "known rank" in conv.validate(_arg_node("ArgMin", 0, shape=None))
    assert "output_type" in conv.validate(_arg_node("ArgMax", 0, output_type=np.int16))
    node = _arg_node("ArgMax", 0)
    node.input_consts[1] = None
    assert "constant" in conv.validate(node)


# -- TopKV2 ---------------------------------------------------------------------------------

def test_top_k_ties_lower_index_first() -> None:
    def f(x):
        return tuple(out for k in (1, 4, 6) for out in tf.math.top_k(x, k))

    check_function(f, [TIES])
    check_function(f, [TIES.astype(np.int32)])


def test_top_k_dynamic_and_indices_only() -> None:
    x = np.round(rand((2, 3, 8), seed=4) * 4)

    def f(v):
        return tf.math.top_k(v, 3)

    check_function(f, [x], specs=[tf.TensorSpec([None, None, 8], tf.float32)])

    def indices(v):
        return tf.math.top_k(v, 2).indices

    check_function(indices, [x], specs=[tf.TensorSpec([None, None, None], tf.float32)])


def test_top_k_int64_indices() -> None:
    def f(v):
        return tf.raw_ops.TopKV2(input=v, k=tf.constant(3), sorted=True, index_type=tf.int64)

    check_function(f, [TIES])


def _top_k_node(k, shape=(2, 6), **attrs) -> NodeInfo:
    x = np.zeros((2, 6), np.float32)
    return node_info("TopKV2", [x, np.asarray(k, np.int32)], consts=(1,),
                     shapes=[shape, np.shape(k)], out_dtypes=[np.float32, np.int32], **attrs)


def test_top_k_refusals() -> None:
    conv = red.convert_top_k
    assert conv.validate(_top_k_node(3, sorted=True)) is None
    assert conv.validate(_top_k_node(3, shape=None)) is None
    assert conv.validate(_top_k_node(3, shape=(None, None))) is None
    assert "sorted" in conv.validate(_top_k_node(3, sorted=False))
    assert "exceeds" in conv.validate(_top_k_node(7))
    assert "scalar" in conv.validate(_top_k_node([3]))
    assert "rank" in conv.validate(_top_k_node(1, shape=()))
    assert "index_type" in conv.validate(_top_k_node(1, index_type=np.dtype(np.int16)))
    node = _top_k_node(2)
    node.input_consts[1] = None
    assert "constant" in conv.validate(node)


# -- Cumsum -----------------------------------------------------------------------------------

def test_cumsum_dynamic() -> None:
    def f(x):
        return tuple(tf.math.cumsum(x, axis, exclusive=exclusive, reverse=reverse)
                     for axis in (1, -1) for exclusive in (False, True)
                     for reverse in (False, True))

    check_function(f, [rand((2, 3, 8), seed=5)], specs=[tf.TensorSpec([None, None, 8],
                                                                       tf.float32)])


def test_cumsum_int32() -> None:
    x = np.random.default_rng(6).integers(-9, 9, (3, 5), dtype=np.int32)

    def f(v):
        return tf.math.cumsum(v, 0, reverse=True)

    check_function(f, [x], rtol=0, atol=0)


def test_cumsum_refusals() -> None:
    x = np.zeros((2, 3), np.float32)
    node = node_info("Cumsum", [x, np.asarray(2, np.int32)], consts=(1,))
    assert "out of range" in red.convert_cumsum.validate(node)
    node = node_info("Cumsum", [x, np.asarray(1, np.int32)], consts=(1,), shapes=[None, ()])
    assert "known rank" in red.convert_cumsum.validate(node)
    node = node_info("Cumsum", [x, np.asarray(1, np.int32)])
    assert "constant" in red.convert_cumsum.validate(node)


# -- layout: the new ops work in place on an NCHW-held NHWC tensor --------------------------------

@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, 3, -1])
def test_layout_arg_reduce(op: str, axis: int) -> None:
    x = np.round(X * 4)
    node = _arg_node(op, axis, shape=x.shape)
    got, perm, ops = lower_one(red.convert_arg_reduce, node, [x, np.asarray(axis, np.int32)],
                               [NHWC_TO_NCHW, None])
    want = (np.argmax if op == "ArgMax" else np.argmin)(x, axis=axis)
    np.testing.assert_array_equal(got, want)
    assert "Transpose" not in ops
    assert perm == red.reduced_perm(NHWC_TO_NCHW, [axis % 4], False)


@pytest.mark.parametrize("slot", [0, 1], ids=["values", "indices"])
def test_layout_top_k(slot: int) -> None:
    x = np.round(X * 4)
    node = node_info("TopKV2", [x, np.asarray(2, np.int32)], consts=(1,),
                     out_dtypes=[np.float32, np.int32], sorted=True)
    got, perm, ops = lower_one(red.convert_top_k, node, [x, np.asarray(2, np.int32)],
                               [NHWC_TO_NCHW, None], slot=slot)
    values, indices = tf.math.top_k(x, 2)
    np.testing.assert_array_equal(got, (values, indices)[slot].numpy())
    assert perm == NHWC_TO_NCHW
    assert "Transpose" not in ops


@pytest.mark.parametrize("axis", [1, 3])
def test_layout_cumsum(axis: int) -> None:
    node = node_info("Cumsum", [X, np.asarray(axis, np.int32)], consts=(1,), exclusive=True,
                     reverse=True)
    got, perm, ops = lower_one(red.convert_cumsum, node, [X, np.asarray(axis, np.int32)],
                               [NHWC_TO_NCHW, None])
    want = tf.math.cumsum(X, axis, exclusive=True, reverse=True).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert perm == NHWC_TO_NCHW
    assert "Transpose" not in ops


@pytest.mark.parametrize("op", ["All", "Any"])
def test_layout_logical_reduce(op: str) -> None:
    x = X > 1.0
    node = node_info(op, [x, np.array([1, 2], np.int32)], consts=(1,), keep_dims=False)
    got, perm, ops = lower_one(red.convert_logical_reduce, node,
                               [x, np.array([1, 2], np.int32)], [NHWC_TO_NCHW, None])
    np.testing.assert_array_equal(got, (np.all if op == "All" else np.any)(x, axis=(1, 2)))
    assert "Transpose" not in ops


# -- property-based: random ranks, axis subsets, keep_dims and reductions -----------------------

PROPERTY_OPS = {"Sum": tf.reduce_sum, "Mean": tf.reduce_mean, "Max": tf.reduce_max,
                "Min": tf.reduce_min, "Prod": tf.reduce_prod, "All": tf.reduce_all,
                "Any": tf.reduce_any, "ArgMax": None}


@st.composite
def reduction_case(draw) -> tuple[tuple[int, ...], list[int]]:
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    rank = len(shape)
    chosen = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
    axes = [a - rank if draw(st.booleans()) else a for a in chosen]
    return shape, axes


@settings(max_examples=25, deadline=None)
@given(case=reduction_case(), op=st.sampled_from(sorted(PROPERTY_OPS)),
       keep_dims=st.booleans(), dynamic=st.booleans(), seed=st.integers(0, 2**16))
def test_property_reductions(case, op: str, keep_dims: bool, dynamic: bool, seed: int) -> None:
    shape, axes = case
    if op in ("All", "Any"):
        x = bools(shape, seed)
    else:
        x = np.asarray(np.round(rand(shape, seed=seed) * 4) / 4, np.float32)  # ties for ArgMax
    spec = tf.TensorSpec([None] * len(shape) if dynamic else shape, tf.as_dtype(x.dtype))
    if op == "ArgMax":
        def f(v):
            return tf.argmax(v, axes[0])
    else:
        def f(v):
            return PROPERTY_OPS[op](v, axis=axes, keepdims=keep_dims)

    check_function(f, [x], specs=[spec], rtol=1e-5, atol=1e-5)
