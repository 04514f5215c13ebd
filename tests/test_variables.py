"""Freezing disabled: variables stay variables; ReadVariableOp and VariableV2 convert."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

import tftrt
from tests.conftest import max_rel_err
from tftrt import trt_convert as trt
from tftrt.compiler.lowering import node_info
from tftrt.errors import SaveError
from tftrt.plugins.manager import get_registry
from tftrt.report.summary import original_op

RNG = np.random.default_rng(3)
UNFROZEN = {"TF_TRT_EXPERIMENTAL_FEATURES": "disable_graph_freezing"}


@pytest.fixture
def unfrozen(monkeypatch):
    for key, value in UNFROZEN.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def cnn_dir(tmp_path_factory) -> str:
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(5)])
    path = str(tmp_path_factory.mktemp("v") / "cnn")
    model.export(path, verbose=False)
    return path


class Scaled(tf.Module):
    """A variable read by a convertible op and by a deny-listed one."""

    def __init__(self) -> None:
        self.w = tf.Variable(RNG.standard_normal((6, 4)).astype(np.float32))
        self.b = tf.Variable(RNG.standard_normal(4).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
    def serve(self, x):
        h = tf.nn.relu(tf.matmul(x, self.w) + self.b)
        return {"y": tf.tanh(h) * 2.0, "z": tf.sin(self.b)}


@pytest.fixture(scope="module")
def scaled_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("v") / "scaled")
    module = Scaled()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="module")
def tf1_dir(tmp_path_factory) -> str:
    """A TF1 SavedModel whose weights are ref variables (VariableV2)."""
    path = str(tmp_path_factory.mktemp("v") / "tf1")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.compat.v1.Variable(RNG.standard_normal((4, 3)).astype(np.float32), name="w",
                                  use_resource=False)
        y = tf.nn.relu(tf.matmul(x, w) + 1.0, name="y")
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(path)
            sig = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(sess, ["serve"],
                                                 signature_def_map={"serving_default": sig})
            builder.save()
    return path


def reference(path: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
    fn = tf.saved_model.load(path).signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def engine_ops(conv: trt.TrtGraphConverterV2) -> dict[str, int]:
    """Op types inside the engines' native segments, as the summary counts them."""
    counts: dict[str, int] = {}
    for fn in conv.converted_graph_def.library.function:
        for nd in fn.node_def:
            counts[original_op(nd)] = counts.get(original_op(nd), 0) + 1
    return counts


def top_level_ops(conv: trt.TrtGraphConverterV2) -> list[str]:
    return [n.op for n in conv.converted_graph_def.node]


def test_keras_cnn_converts_reads_and_keeps_variables(unfrozen, cnn_dir, tmp_path) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=cnn_dir, use_dynamic_shape=True)
    fn = conv.convert()
    assert "ReadVariableOp" in [n.op for n in conv.frozen_graph_def.node]
    assert top_level_ops(conv).count("TRTEngineOp") == 1
    assert engine_ops(conv)["ReadVariableOp"] == 4  # conv kernel/bias, dense kernel/bias
    assert fn.runs_without_tensorflow  # every read is in the engine: no TF per call
    (arg,) = [s.name for s in fn.inputs]  # Keras numbers its input names per process
    x = {arg: RNG.standard_normal((3, 8, 8, 2)).astype(np.float32)}
    (key, want), = reference(cnn_dir, **x).items()
    assert max_rel_err(fn(**x)[key].numpy(), want) < 1e-5
    lines = []
    conv.summary(print_fn=lines.append)
    assert "ReadVariableOp: 4x" in lines[0]

    out = str(tmp_path / "out")
    conv.save(out)
    plain = tf.saved_model.load(out).signatures["serving_default"]
    assert max_rel_err(plain(**{arg: tf.constant(x[arg])})[key].numpy(), want) < 1e-5
    loaded = tftrt.load(out)
    got = loaded.signatures["serving_default"](**x)[key].numpy()
    assert max_rel_err(got, want) < 1e-5
    assert [op.stats.builds for op in loaded.engines.values()] == [0]


def test_native_reads_use_the_live_variable(unfrozen, scaled_dir, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", "Sin")
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=scaled_dir, use_dynamic_shape=True,
                                   minimum_segment_size=2)
    fn = conv.convert()
    assert top_level_ops(conv).count("TRTEngineOp") == 1
    assert "ReadVariableOp" in top_level_ops(conv)  # the Sin branch reads b natively
    assert engine_ops(conv)["ReadVariableOp"] == 2
    x = RNG.standard_normal((5, 6)).astype(np.float32)
    want = reference(scaled_dir, x=x)
    got = fn(x=x)
    for key in want:
        assert max_rel_err(got[key].numpy(), want[key]) < 1e-5, key

    out = str(tmp_path / "out")
    conv.save(out)
    got = tftrt.load(out).signatures["serving_default"](x=x)
    for key in want:
        assert max_rel_err(got[key].numpy(), want[key]) < 1e-5, key


def test_native_fallback_runs_the_baked_values(unfrozen, scaled_dir, monkeypatch) -> None:
    monkeypatch.setenv("TF_TRT_ABORT_CUDA_ENGINE_BUILD", "1")
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=scaled_dir, use_dynamic_shape=True,
                                   minimum_segment_size=2)
    fn = conv.convert()
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    want = reference(scaled_dir, x=x)
    got = fn(x=x)
    for key in want:
        assert max_rel_err(got[key].numpy(), want[key]) < 1e-6, key
    assert sum(op.stats.native_calls for op in conv.engines.values()) == 1


def test_tf1_ref_variables_convert(unfrozen, tf1_dir) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=tf1_dir, use_dynamic_shape=True,
                                   minimum_segment_size=1)
    fn = conv.convert()
    assert "VariableV2" in [n.op for n in conv.frozen_graph_def.node]
    assert engine_ops(conv)["VariableV2"] == 1
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    assert max_rel_err(fn(x=x)["y"].numpy(), reference(tf1_dir, x=x)["y"]) < 1e-6


def test_ref_variable_read_natively_cannot_be_saved(unfrozen, tf1_dir, monkeypatch,
                                                    tmp_path) -> None:
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", "MatMul")
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=tf1_dir, use_dynamic_shape=True,
                                   minimum_segment_size=1)
    fn = conv.convert()
    assert "VariableV2" in top_level_ops(conv)
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    assert max_rel_err(fn(x=x)["y"].numpy(), reference(tf1_dir, x=x)["y"]) < 1e-6
    out = tmp_path / "out"
    with pytest.raises(SaveError, match=r"ref variables \['w'\]"):
        conv.save(str(out))
    assert not out.exists() and os.listdir(tmp_path) == []


def test_freezing_stays_on_without_dynamic_shape(unfrozen, cnn_dir, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tftrt"):
        conv = trt.TrtGraphConverterV2(input_saved_model_dir=cnn_dir)
    assert "needs use_dynamic_shape=True" in caplog.text
    conv.convert()
    assert "ReadVariableOp" not in [n.op for n in conv.frozen_graph_def.node]


def test_read_of_an_unknown_variable_is_refused() -> None:
    from tftrt.compiler import ir

    graph = tf.Graph()
    with graph.as_default():
        handle = tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[2], name="v")
        tf.raw_ops.ReadVariableOp(resource=handle, dtype=tf.float32, name="read")
    g = ir.from_graph_def(graph.as_graph_def())
    conv = get_registry().converter("ReadVariableOp")
    assert "ReadVariableOp" in tftrt.supported_ops() and "VariableV2" in tftrt.supported_ops()
    assert "value is unknown" in conv.validate(node_info(g, "read", dynamic_shape=True))
    g = ir.from_graph_def(graph.as_graph_def(), variable_values={"v": np.ones(2, np.float32)})
    assert conv.validate(node_info(g, "read", dynamic_shape=True)) is None
    assert g.nodes["read"]["output_shapes"] == [(2,)]
