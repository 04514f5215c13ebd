"""Small native stages run as eager ops (runtime/eager_stage.py), and the stages that
must stay functions do."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tftrt.runtime import eager_stage, tfgraph

RNG = np.random.default_rng(0)


def _graph(fn, *specs):
    """A function's GraphDef with Placeholders for its inputs, its output refs and graph."""
    concrete = tf.function(fn).get_concrete_function(*specs)
    gd = concrete.graph.as_graph_def()
    inputs = [t.op.name for t in concrete.inputs]
    outputs = [t.name for t in concrete.outputs]
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    return gd, inputs, outputs, graph


def _order(gd) -> list[str]:
    from tftrt.runtime.stages import _topological

    return _topological(gd)


def _build(fn, *specs):
    gd, inputs, outputs, graph = _graph(fn, *specs)
    return eager_stage.build(gd, _order(gd), inputs, outputs, graph), gd, inputs, outputs


def test_ops_with_every_kind_of_attribute_run_eagerly_and_match_the_function() -> None:
    kernel = RNG.standard_normal((3, 3, 4, 6)).astype(np.float32)

    def fn(x, y):
        h = tf.nn.conv2d(x, kernel, strides=[1, 2, 2, 1], padding="SAME")  # list, string
        a, b = tf.split(h, 3, axis=3)[0], tf.split(h, [2, 4], axis=3)[1]  # several outputs
        s = tf.strided_slice(b, [0, 0, 0, 0], [1, 2, 2, 3], shrink_axis_mask=1)  # ints
        r = tf.reshape(tf.cast(y, tf.float32), [1, 1, 1, 2])  # types
        return a * r, tf.reduce_sum(s, axis=[1], keepdims=True), tf.ones_like(a, tf.int32)

    specs = (tf.TensorSpec([1, 8, 8, 4], tf.float32), tf.TensorSpec([2], tf.int32))
    stage, gd, inputs, outputs = _build(fn, *specs)
    assert isinstance(stage, eager_stage.EagerStage)
    x = tf.constant(RNG.standard_normal((1, 8, 8, 4)).astype(np.float32))
    y = tf.constant([3, -2], tf.int32)
    want = tfgraph.graph_function(gd, [f"{n}:0" for n in inputs], outputs)(x, y)
    got = stage(x, y)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-6)


def test_an_op_error_is_raised_as_tensorflow_raises_it() -> None:
    stage, *_ = _build(lambda x: tf.reshape(x, [-1, 3]), tf.TensorSpec([None], tf.float32))
    assert stage is not None
    with pytest.raises(tf.errors.InvalidArgumentError, match="reshape"):
        stage(tf.constant(np.ones(4, np.float32)))


@pytest.mark.parametrize("why, fn", [
    ("stateful", lambda x: x + tf.random.uniform([2])),
    ("a function attribute", lambda x: tf.cond(x[0] > 0, lambda: x + 1, lambda: x - 1)),
    ("too many ops", lambda x: [x := x * 1.5 + 0.5 for _ in range(eager_stage.MAX_OPS)][-1]),
])
def test_stages_eager_ops_cannot_run_stay_functions(why, fn) -> None:
    stage, *_ = _build(fn, tf.TensorSpec([2], tf.float32))
    assert stage is None, why


def test_a_placeholder_nothing_feeds_keeps_the_function() -> None:
    gd, inputs, outputs, graph = _graph(lambda x, h: x + h, tf.TensorSpec([2], tf.float32),
                                        tf.TensorSpec([2], tf.float32))
    assert eager_stage.build(gd, _order(gd), inputs[:1], outputs, graph) is None
