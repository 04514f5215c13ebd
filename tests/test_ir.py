"""IR: GraphDef -> networkx -> GraphDef is lossless."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tftrt.compiler import ir
from tftrt.compiler.freeze import load_and_freeze


def _control_graph() -> graph_pb2.GraphDef:
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        a = tf.nn.relu(x, name="a")
        with tf.control_dependencies([a]):
            b = tf.identity(x * 2.0, name="b")
        s = tf.split(b, 2, axis=1, name="split")
        tf.add(s[1], a[:, :2], name="out")
    return g.as_graph_def()


def _assert_round_trip(gd: graph_pb2.GraphDef) -> ir.IR:
    g = ir.from_graph_def(gd)
    back = ir.to_graph_def(g)
    assert back == gd
    return g


def test_round_trip_with_control_edges_and_multi_output() -> None:
    gd = _control_graph()
    g = _assert_round_trip(gd)
    ctrl = [(u, v) for u, v, d in g.edges(data=True) if d["control"]]
    assert ("a", "mul/y") in ctrl
    assert ir.data_inputs(g, "out") == ["split:1", "strided_slice:0"]
    assert g.nodes["split"]["output_shapes"] == [(None, 2), (None, 2)]
    assert g.nodes["x"]["output_dtypes"] == [np.dtype(np.float32)]


def test_round_trip_keeps_library_and_versions() -> None:
    @tf.function
    def inner(x):
        return x * 3.0

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2], name="x")
        inner(x)
    gd = g.as_graph_def()
    assert len(gd.library.function) == 1
    _assert_round_trip(gd)


def test_round_trip_keeps_explicit_slot_zero_spelling() -> None:
    gd = graph_pb2.GraphDef()
    c = gd.node.add(name="c", op="Const")
    c.attr["dtype"].type = tf.float32.as_datatype_enum
    c.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.float32(1)))
    gd.node.add(name="i", op="Identity", input=["c:0"]).attr["T"].type = 1
    _assert_round_trip(gd)


def test_round_trip_on_frozen_saved_model(keras_mlp_dir: str) -> None:
    frozen = load_and_freeze(keras_mlp_dir, ["serve"], "serving_default")
    _assert_round_trip(frozen.graph_def)


def test_bad_graphs_are_named() -> None:
    gd = graph_pb2.GraphDef()
    gd.node.add(name="a", op="Identity", input=["missing"])
    with pytest.raises(ValueError, match="missing"):
        ir.from_graph_def(gd, infer_shapes=False)
    gd = graph_pb2.GraphDef()
    gd.node.add(name="a", op="NoOp")
    gd.node.add(name="a", op="NoOp")
    with pytest.raises(ValueError, match="two nodes named 'a'"):
        ir.from_graph_def(gd, infer_shapes=False)
