"""Indexing converters against TensorFlow on every backend: gathers with batch dimensions,
scatters, one-hot, band masks, rolls, bucketizing and XLA's dynamic slices."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla

from tftrt.testing import Const, check_conversion, check_op

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("axis,batch_dims", [(1, 1), (2, 1), (3, 2), (2, 2), (3, -1)])
def test_gather_with_batch_dims(axis: int, batch_dims: int) -> None:
    irank = 3 if batch_dims != -1 else 4
    idx_shape = (2, 3, 2, 2)[:irank] if batch_dims != -1 else (2, 3, 4, 2)
    dim = X.shape[axis]
    idx = RNG.integers(0, dim, idx_shape).astype(np.int32)
    check_op("GatherV2", [X, idx, Const(np.int32(axis))], {"batch_dims": batch_dims})


def test_gather_batch_dims_int64_params_and_indices() -> None:
    params = RNG.integers(-50, 50, (3, 7)).astype(np.int64)
    idx = RNG.integers(0, 7, (3, 4)).astype(np.int64)
    check_op("GatherV2", [params, idx, Const(np.int64(1))], {"batch_dims": 1})


def test_tensor_scatter_update() -> None:
    idx = np.array([[0, 1], [1, 2]], np.int32)
    updates = RNG.standard_normal((2, 4, 5)).astype(np.float32)
    check_op("TensorScatterUpdate", [X, idx, updates])


def test_sparse_to_dense_with_static_shape() -> None:
    def fn(values):
        return tf.sparse.to_dense(tf.SparseTensor([[0, 1], [2, 3]], values, [4, 5]))

    check_conversion(lambda v: tf.raw_ops.SparseToDense(
        sparse_indices=tf.constant([[0, 1], [2, 3]], tf.int64), output_shape=[4, 5],
        sparse_values=v, default_value=tf.constant(-1.0)) * 2.0,
        [np.array([3.0, 4.0], np.float32)])
    check_conversion(lambda v: fn(v) + 1.0, [np.array([3.0, 4.0], np.float32)])


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot_negative_and_out_of_range_indices_are_off(axis: int) -> None:
    idx = np.array([[0, 3, -1], [5, 2, 1]], np.int32)  # -1 and 5 are outside depth 4
    check_op("OneHot", [idx, Const(np.int32(4)), Const(np.float32(2.0)),
                        Const(np.float32(-1.0))], {"axis": axis})


@pytest.mark.parametrize("lower,upper", [(-1, 0), (0, -1), (1, 2), (0, 0), (-1, -1)])
def test_matrix_band_part(lower: int, upper: int) -> None:
    check_op("MatrixBandPart", [X, Const(np.int64(lower)), Const(np.int64(upper))])


def test_matrix_band_part_causal_mask_dynamic_length() -> None:
    def mask(x):
        n = tf.shape(x)[1]
        band = tf.linalg.band_part(tf.ones((n, n), tf.bool), -1, 0)
        return tf.where(band[None], x, -1e9)

    check_conversion(mask, [RNG.standard_normal((2, 6, 6)).astype(np.float32)],
                     specs=[tf.TensorSpec([None, None, None], tf.float32)],
                     use_dynamic_shape=True)


@pytest.mark.parametrize("shift,axis", [(2, 1), (-1, 3), ([1, 2], [0, 2]), ([7, -9], [1, 1])])
def test_roll_constant(shift, axis) -> None:
    check_op("Roll", [X, Const(np.array(shift, np.int32)), Const(np.array(axis, np.int32))])


def test_roll_computed_shift() -> None:
    check_conversion(lambda x, s: tf.roll(x * 1.0, s[0], axis=2),
                     [X, np.array([3], np.int32)])


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
def test_bucketize(dtype) -> None:
    x = (RNG.standard_normal((3, 7)) * 10).astype(dtype)
    x[0, :3] = [-5, 0, 10]  # on the boundaries
    check_op("Bucketize", [x], {"boundaries": [-5.0, -0.5, 0.0, 2.5, 10.0]})


def test_xla_dynamic_slice_clamps_like_xla() -> None:
    for start in ([0, 1, 2, 0], [1, 2, 3, 4], [-3, 0, 9, 1]):
        check_conversion(lambda x, s: xla.dynamic_slice(x, s, [1, 2, 2, 3]),
                         [X, np.array(start, np.int32)])


def test_xla_dynamic_update_slice_clamps_like_xla() -> None:
    update = RNG.standard_normal((1, 2, 3, 2)).astype(np.float32)
    for start in ([0, 0, 0, 0], [1, 1, 1, 3], [5, -2, 9, 9]):
        check_conversion(lambda x, u, s: xla.dynamic_update_slice(x, u, s),
                         [X, update, np.array(start, np.int32)])


def test_keras_slice_update() -> None:
    import keras

    def fn(x, u, s):
        return keras.ops.slice_update(x, s, u) * 2.0

    update = RNG.standard_normal((2, 1, 4, 5)).astype(np.float32)
    check_conversion(fn, [X, update, np.array([0, 2, 0, 0], np.int32)])
