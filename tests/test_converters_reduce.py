"""Reduction converters: numerics against TensorFlow, validation, and layout handling."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.converter_layout import lower_one, node_info
from tftrt.converters import reduce as red
from tftrt.converters.context import NHWC_TO_NCHW
from tftrt.testing import check_function


def rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    # in [0.5, 1.5): keeps products well scaled
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape).astype(np.float32)


REDUCTIONS = {"Mean": tf.reduce_mean, "Sum": tf.reduce_sum, "Max": tf.reduce_max,
              "Min": tf.reduce_min, "Prod": tf.reduce_prod}
NP_REDUCTIONS = {"Mean": np.mean, "Sum": np.sum, "Max": np.max, "Min": np.min, "Prod": np.prod}
AXES = [[1, 2], [-1], [0, 3], [2], [0, 1, 2, 3], -3]


@pytest.mark.parametrize("op", sorted(REDUCTIONS))
@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("keep_dims", [False, True], ids=["drop", "keep"])
def test_reduce(op: str, axes, keep_dims: bool) -> None:
    reduce_fn = REDUCTIONS[op]

    def f(x):
        return reduce_fn(x, axis=axes, keepdims=keep_dims)

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
