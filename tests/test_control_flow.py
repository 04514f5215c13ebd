"""While/If: whole loops and conditionals as ONNX Loop/If inside engines, and control flow
that does not convert entirely lowered into the graph with its body segmented."""

from __future__ import annotations

import numpy as np
import onnx
import tensorflow as tf

from tests.conftest import export_module, max_rel_err
from tftrt import trt_convert as trt
from tftrt.compiler import ir, shapes
from tftrt.testing import check_conversion

RNG = np.random.default_rng(0)
W = (RNG.standard_normal((8, 8)) * 0.4).astype(np.float32)
X = RNG.standard_normal((3, 8)).astype(np.float32)


W_VAR = tf.Variable(W)


def _rnn(x):
    def body(i, h):
        return i + 1, tf.tanh(tf.matmul(h, W_VAR) + 0.1)

    return tf.while_loop(lambda i, h: i < 5, body, (tf.constant(0), x))[1]


def test_while_loop_is_an_onnx_loop_in_one_engine() -> None:
    report = check_conversion(_rnn, [X], specs=[tf.TensorSpec([None, 8], tf.float32)],
                              use_dynamic_shape=True)
    assert "Loop" in report.onnx_op_types
    (loop,) = [n for n in report.onnx_model.graph.node if n.op_type == "Loop"]
    body = loop.attribute[0].g
    # carried: TF's loop counter, i and h; the weight (a loop variable of TF's While) and
    # the iteration limit are loop-invariant: read from the enclosing graph
    assert len(loop.input) == 2 + 3
    weights = {t.name for t in report.onnx_model.graph.initializer if list(t.dims) == [8, 8]}
    (matmul,) = [n for n in body.node if n.op_type == "MatMul"]
    assert set(matmul.input) & weights
    assert {n.op_type for n in body.node} >= {"MatMul", "Tanh", "Less"}


def test_while_loop_with_data_dependent_trip_count() -> None:
    def fn(x):
        def body(h):
            return (h * 0.5 + 0.1,)

        return tf.while_loop(lambda h: tf.reduce_max(tf.abs(h)) > 0.3, body, (x,))[0]

    check_conversion(fn, [X * 4.0])


def test_cond_is_an_onnx_if_and_runs_either_branch() -> None:
    def fn(x):
        return tf.cond(tf.reduce_sum(x) > 0.0, lambda: tf.sigmoid(tf.matmul(x, W)),
                       lambda: tf.tanh(x) * 3.0) + 1.0

    for x in (X, -np.abs(X)):
        report = check_conversion(fn, [x])
        assert "If" in report.onnx_op_types


def test_cond_inside_a_loop() -> None:
    def fn(x):
        def body(i, h):
            h = tf.cond(i % 2 == 0, lambda: h * 2.0, lambda: tf.nn.relu(h) - 1.0)
            return i + 1, h

        return tf.while_loop(lambda i, h: i < 4, body, (tf.constant(0), x))[1]

    report = check_conversion(fn, [X])
    body = next(n for n in report.onnx_model.graph.node if n.op_type == "Loop").attribute[0].g
    assert "If" in {n.op_type for n in body.node}


def _lgamma_loop(path: str) -> str:
    def fn(x):
        def body(i, h):
            z = tf.tanh(tf.matmul(h, W) + 0.5)
            return i + 1, z * 2.0 + 0.01 * tf.math.lgamma(tf.abs(z) + 1.0)

        return {"h": tf.while_loop(lambda i, h: i < 3, body, (tf.constant(0), x))[1]}

    return export_module(path, fn, [tf.TensorSpec([None, 8], tf.float32)])


def test_loop_whose_body_does_not_convert_keeps_its_body_ops_in_engines(tmp_path) -> None:
    src = _lgamma_loop(str(tmp_path / "m"))
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, use_dynamic_shape=True)
    fn = conv.convert()
    gd = conv.converted_graph_def
    ops = [n.op for n in gd.node]
    assert "Lgamma" in ops and "Merge" in ops and "NextIteration" in ops  # native loop
    assert "MatMul" not in ops and "Tanh" not in ops  # its body's compute is in engines
    assert len(conv.engines) >= 1
    want = tf.saved_model.load(src).signatures["serving_default"](x=tf.constant(X))["h"]
    got = fn(x=X)["h"]
    assert max_rel_err(got.numpy(), want.numpy()) < 1e-5
    for op in conv.engines.values():
        assert op.stats.engine_calls >= 3 and op.stats.native_calls == 0  # once per iteration
        assert op.stats.run_failures == 0


def test_loop_shapes_are_what_every_iteration_has(tmp_path) -> None:
    """A lowered loop's body gets known shapes (TensorFlow alone gives unknown ranks)."""
    src = _lgamma_loop(str(tmp_path / "m"))
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, use_dynamic_shape=True)
    conv.convert()
    g = conv._conversion.ir  # noqa: SLF001
    merges = [n for n, d in g.nodes(data=True) if d["op"] == "Merge"]
    shapes_seen = {g.nodes[m]["output_shapes"][0] for m in merges}
    assert (None, 8) in shapes_seen and () in shapes_seen
    plain = ir.infer_shapes(ir.to_graph_def(g))
    assert any(plain[m][1][0] is None for m in merges)  # what TF infers without help


def test_break_loops_relaxes_a_growing_loop_variable() -> None:
    graph = tf.Graph()
    with graph.as_default():
        from tensorflow.python.ops import control_flow_util

        saved = control_flow_util.ENABLE_CONTROL_FLOW_V2
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = False
        try:
            x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
            tf.compat.v1.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, tf.concat(
                [h, h], 0)), (tf.constant(0), x),
                shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, 3])))
        finally:
            control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved
    gd = graph.as_graph_def()
    view = shapes.break_loops(gd, ir.infer_shapes)
    facts = ir.infer_shapes(view)
    merges = [n.name for n in gd.node if n.op == "Merge"]
    got = sorted((facts[m][1][0] for m in merges), key=str)
    assert got == [(), (None, 3)]


def test_saved_loop_model_runs_in_plain_tensorflow(tmp_path) -> None:
    def fn(x):
        return {"h": _rnn(x)}

    src = export_module(str(tmp_path / "m"), fn, [tf.TensorSpec([None, 8], tf.float32)],
                        [W_VAR])
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, use_dynamic_shape=True)
    fn_conv = conv.convert()
    assert fn_conv.runs_without_tensorflow
    want = fn_conv(x=X)["h"].numpy()
    conv.save(str(tmp_path / "out"))
    plain = tf.saved_model.load(str(tmp_path / "out")).signatures["serving_default"]
    assert max_rel_err(plain(x=tf.constant(X))["h"].numpy(), want) < 1e-5
    model = onnx.load(str(tmp_path / "out" / "assets" / "tftrt" / "engines" /
                          f"{next(iter(conv.engines))}.onnx"))
    assert "Loop" in {n.op_type for n in model.graph.node}
