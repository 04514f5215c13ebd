"""Pass-through and constant converters against TensorFlow, and their layout handling."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.converter_layout import lower_one, node_info
from tftrt.converters.context import NHWC_TO_NCHW
from tftrt.plugins.manager import get_registry
from tftrt.testing import check_function


def _rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _op_types(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _conv(x: tf.Tensor, channels: int, seed: int) -> tf.Tensor:
    filt = tf.constant(_rand((1, 1, int(x.shape[-1]), channels), seed))
    return tf.raw_ops.Conv2D(input=x, filter=filt, strides=[1, 1, 1, 1], padding="VALID")


def test_identity_family() -> None:
    def fn(x):
        y = tf.raw_ops.Identity(input=x)
        y = tf.raw_ops.Snapshot(input=y)
        return tf.raw_ops.StopGradient(input=y) + tf.constant(1.0)

    check_function(fn, [_rand((2, 3))])


def test_identity_n_passes_every_input_through() -> None:
    def fn(a, b):
        x, y, z = tf.raw_ops.IdentityN(input=[a, b, a])
        return x * 2.0, y, z

    check_function(fn, [_rand((2, 3)), np.arange(4, dtype=np.int32)])
    specs = [tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None], tf.int32)]
    check_function(fn, [_rand((5, 3)), np.arange(2, dtype=np.int32)], specs=specs)


def test_identity_n_keeps_layouts() -> None:
    def fn(x):
        a, b = tf.raw_ops.IdentityN(input=[_conv(x, 4, 1), x])
        return _conv(a, 2, 2), _conv(b, 2, 3)

    model = check_function(fn, [_rand((2, 5, 4, 3))], rtol=1e-4, atol=1e-4)
    # x enters in NCHW once; each output leaves once: no transposes around IdentityN
    assert _op_types(model).count("Transpose") == 3


def test_identity_n_with_unused_outputs() -> None:
    def fn(a, b):
        return tf.raw_ops.IdentityN(input=[a, b])[1] + 1.0

    check_function(fn, [_rand((2,)), _rand((3,), 1)])


def test_copy_from_host_to_gpu_is_an_identity() -> None:
    # an internal op tf.function does not emit: convert it as a node in NCHW layout
    x = _rand((1, 3, 4, 2))
    conv = get_registry().converter("_CopyFromHostToGpu")
    node = node_info("_CopyFromHostToGpu", [x])
    got, perm, ops = lower_one(conv, node, [x], [NHWC_TO_NCHW])
    np.testing.assert_array_equal(got, x)
    assert perm == NHWC_TO_NCHW and ops == []


def test_const_of_each_dtype() -> None:
    def fn(x):
        return (x + tf.constant([[1.5, -2.0]]), tf.constant([3, 4], tf.int64),
                tf.constant([True, False]), tf.constant(7, tf.int32),
                tf.constant([0.5], tf.float16))

    check_function(fn, [_rand((3, 2))])
