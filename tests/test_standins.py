"""Large constants stood in while Grappler runs: same graph, same values, as without."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tftrt.compiler import freeze, ir, standins, varconsts


def _graph(fn, *specs) -> tf.compat.v1.GraphDef:
    return tf.function(fn, input_signature=list(specs)).get_concrete_function().graph \
        .as_graph_def()


def _run(graph_def, feeds: dict, fetch: str) -> np.ndarray:
    out = tf.compat.v1.wrap_function(
        lambda: tf.graph_util.import_graph_def(graph_def, name=""), [])
    pruned = out.prune([out.graph.get_tensor_by_name(k) for k in feeds],
                       [out.graph.get_tensor_by_name(fetch)])
    return pruned(*[tf.constant(v) for v in feeds.values()])[0].numpy()


W = np.random.default_rng(0).standard_normal((128, 256)).astype(np.float32)  # 128 KiB
SMALL = np.arange(4, dtype=np.float32)


def test_stand_in_replaces_only_large_consts_and_restore_puts_them_back() -> None:
    gd = _graph(lambda x: tf.matmul(x, tf.constant(W)) + tf.reduce_sum(tf.constant(SMALL)),
                tf.TensorSpec([1, 128], tf.float32))
    small, consts = standins.stand_in(gd)
    assert sorted(n.op for n in small.node if n.name in consts) == ["Placeholder"]
    assert small.ByteSize() < 4096 < gd.ByteSize()
    (name,) = consts
    back = standins.restore(small, consts)
    node = next(n for n in back.node if n.name == name)
    assert node.op == "Const"
    np.testing.assert_array_equal(tf.make_ndarray(node.attr["value"].tensor), W)


def test_optimize_folds_ops_on_large_weights_as_grappler_does() -> None:
    def model(x):
        w = tf.transpose(tf.cast(tf.constant(W), tf.float16)) * tf.constant(2.0, tf.float16)
        return tf.identity(tf.matmul(tf.cast(x, tf.float16), w), name="y")

    gd = _graph(model, tf.TensorSpec([1, 256], tf.float32))
    fetches = ["y:0", "x:0"]
    plain = freeze.run_grappler(gd, fetches)
    ours = freeze.optimize(_graph(model, tf.TensorSpec([1, 256], tf.float32)), fetches)
    assert sorted(n.op for n in ours.node) == sorted(n.op for n in plain.node)
    assert not any(n.op in ("Transpose", "Mul") for n in ours.node)  # folded into a Const
    x = np.random.default_rng(1).standard_normal((1, 256)).astype(np.float32)
    np.testing.assert_array_equal(_run(ours, {"x:0": x}, "y:0"),
                                  _run(plain, {"x:0": x}, "y:0"))


def test_constant_closure_sees_through_forwarding_ops_only() -> None:
    gd = _graph(lambda x: tf.matmul(x, tf.identity(tf.constant(W))) +
                tf.reduce_sum(tf.square(tf.constant(W))),
                tf.TensorSpec([1, 128], tf.float32))
    large = {n.name for n in gd.node if standins.is_large(n)}
    closure = standins.constant_closure(gd, large)
    ops = {n.name: n.op for n in gd.node}
    assert sorted(ops[n] for n in closure) == ["Square", "Sum"]  # not the Identity


def test_attrs_are_decoded_once_and_read_only() -> None:
    gd = _graph(lambda x: tf.matmul(x, tf.constant(W)), tf.TensorSpec([1, 128], tf.float32))
    g = ir.from_graph_def(gd)
    (const,) = [n for n in g.nodes if g.nodes[n]["op"] == "Const"]
    first, second = ir.const_value(g, const), ir.const_value(g, const)
    assert first is second and not first.flags.writeable
    np.testing.assert_array_equal(first, W)
    ir.forget_decoded(g)
    assert ir.const_value(g, const) is not first


def test_grappler_stand_ins_keep_only_the_rank() -> None:
    """Grappler feeds each Placeholder a tensor of its shape: a stand-in of the weight's
    exact shape would cost as much memory as the weight."""
    gd = _graph(lambda x: tf.matmul(x, tf.constant(W)), tf.TensorSpec([1, 128], tf.float32))
    small, consts = standins.stand_in(gd, exact_shapes=False)
    (name,) = consts
    ph = next(n for n in small.node if n.name == name)
    assert [d.size for d in ph.attr["shape"].shape.dim] == [-1, -1]
    exact, _ = standins.stand_in(gd)
    assert [d.size for d in next(n for n in exact.node if n.name == name)
            .attr["shape"].shape.dim] == [128, 256]


def test_the_ir_shares_large_consts_with_the_graph_it_imports() -> None:
    gd = _graph(lambda x: tf.matmul(x, tf.constant(W)) + tf.constant(SMALL[:1]),
                tf.TensorSpec([1, 128], tf.float32))
    g = ir.from_graph_def(gd)
    large = next(n for n in gd.node if standins.is_large(n))
    small = next(n for n in gd.node if n.op == "Const" and not standins.is_large(n))
    large.attr["_probe"].i = 7  # an edit of the graph's NodeDef is the IR's: not a copy
    small.attr["_probe"].i = 7
    assert g.nodes[large.name]["node_def"].attr["_probe"].i == 7
    assert "_probe" not in g.nodes[small.name]["node_def"].attr
    np.testing.assert_array_equal(ir.const_value(g, large.name), W)


def test_freezing_reads_variables_without_copying_them() -> None:
    v = tf.Variable(W)
    fn = tf.function(lambda x: tf.matmul(x, v),
                     input_signature=[tf.TensorSpec([1, 128], tf.float32)]).get_concrete_function()
    from tensorflow.python.framework import convert_to_constants as c2c

    data = varconsts.converter_data(c2c, fn)
    (value,) = [t.numpy for t in data.tensor_data.values()]
    assert np.shares_memory(value, v.value()._numpy()) and not value.flags.writeable
    graph_def, _, weights = varconsts.replace_variables(c2c, data)
    (const,) = [n for n in graph_def.node if n.op == "Const" and standins.is_large(n)]
    np.testing.assert_array_equal(tf.make_ndarray(const.attr["value"].tensor), W)
    assert weights[const.name] is value  # what the IR takes as the Const's value
    g = ir.from_graph_def(graph_def, const_values=weights)
    assert ir.const_value(g, const.name) is value
    v.assign(W * 2)  # TensorFlow copies on write: what was frozen stays as it was
    np.testing.assert_array_equal(value, W)


def test_put_back_keeps_the_weights_where_they_are() -> None:
    gd = _graph(lambda x: tf.identity(tf.matmul(x, tf.constant(W)) * 2.0, name="y"),
                tf.TensorSpec([1, 128], tf.float32))
    small, consts = standins.stand_in(gd, exact_shapes=False)
    optimized = freeze.run_grappler(small, ["y:0", "x:0"])
    expected = standins.restore(freeze.run_grappler(small, ["y:0", "x:0"]), consts)
    (name,) = consts
    consts[name].attr["_probe"].i = 3  # an edit of the original is seen in the result
    out = standins.put_back(gd, optimized, consts)
    assert out is gd
    assert next(n for n in out.node if n.name == name).attr["_probe"].i == 3
    del next(n for n in out.node if n.name == name).attr["_probe"]
    assert sorted(n.SerializeToString(deterministic=True) for n in out.node) == \
        sorted(n.SerializeToString(deterministic=True) for n in expected.node)
    x = np.random.default_rng(2).standard_normal((1, 128)).astype(np.float32)
    np.testing.assert_allclose(_run(out, {"x:0": x}, "y:0"), x @ W * 2.0, rtol=1e-5, atol=1e-4)
