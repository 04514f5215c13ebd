"""What freezing and the passes before capability give the converters: inlined calls
(also those marked for XLA), tables left native, folded constants."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import tftrt
from tests.conftest import export_module, max_rel_err
from tests.zoo import hand
from tftrt import trt_convert as trt
from tftrt.compiler import constfold, ir
from tftrt.compiler.freeze import load_and_freeze

RNG = np.random.default_rng(0)


def test_jit_compiled_calls_are_inlined(tmp_path) -> None:
    src = str(tmp_path / "jit")
    hand.build_jit_layer(src)
    frozen = load_and_freeze(src, ["serve"], "serving_default")
    ops = {n.op for n in frozen.graph_def.node}
    assert not ops & {"StatefulPartitionedCall", "PartitionedCall"}
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src)
    fn = conv.convert()
    assert len(conv.engines) == 1 and fn.runs_without_tensorflow
    x = hand.inputs_jit_layer(RNG, 3)
    want = tf.saved_model.load(src).signatures["serving_default"](x=tf.constant(x["x"]))
    got = fn(**x)
    assert max_rel_err(got["output_0"].numpy(), want["output_0"].numpy()) < 1e-5


def _table_model(path: str, table) -> str:
    emb = tf.Variable(RNG.standard_normal((6, 4)).astype(np.float32))

    def fn(words):
        ids = table.lookup(words) + 1
        return {"y": tf.nn.relu(tf.matmul(tf.gather(emb, ids), tf.ones((4, 3)))) * 2.0}

    module = tf.Module()
    module.table, module.emb = table, emb
    module.fn = tf.function(fn, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, path, signatures={"serving_default": module.fn})
    return path


def _static_table():
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        ["a", "b", "c"], tf.constant([0, 1, 2], tf.int64)), default_value=-1)


def test_a_table_stays_native_and_the_rest_converts(tmp_path) -> None:
    src = _table_model(str(tmp_path / "m"), _static_table())
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, use_dynamic_shape=True)
    fn = conv.convert()
    native = {n.op for n in conv.converted_graph_def.node} - {
        "Placeholder", "Identity", "Const", "NoOp", "TRTEngineOp"}
    assert native == {"LookupTableFindV2"}  # the static table's values bound the ids
    words = np.array([b"a", b"c", b"zz", b"b"], dtype=object)
    want = tf.saved_model.load(src).signatures["serving_default"](words=tf.constant(words))
    assert max_rel_err(fn(words=words)["y"].numpy(), want["y"].numpy()) < 1e-6
    conv.save(str(tmp_path / "out"))
    plain = tf.saved_model.load(str(tmp_path / "out")).signatures["serving_default"]
    assert max_rel_err(plain(words=tf.constant(words))["y"].numpy(), want["y"].numpy()) < 1e-6
    loaded = tftrt.load(str(tmp_path / "out")).signatures["serving_default"]
    assert max_rel_err(loaded(words=words)["y"].numpy(), want["y"].numpy()) < 1e-6


def test_a_mutable_table_gives_no_value_range(tmp_path) -> None:
    table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=-1)
    table.insert(tf.constant(["a", "b"]), tf.constant([0, 1], tf.int64))
    src = _table_model(str(tmp_path / "m"), table)
    frozen = load_and_freeze(src, ["serve"], "serving_default")
    assert not frozen.table_ranges and len(frozen.variables) == 1
    static = load_and_freeze(_table_model(str(tmp_path / "s"), _static_table()), ["serve"],
                             "serving_default")
    assert list(static.table_ranges.values()) == [(0.0, 2.0)]
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, use_dynamic_shape=True,
                                   backend="onnxruntime")
    fn = conv.convert()
    words = np.array([b"a", b"b", b"q"], dtype=object)
    want = tf.saved_model.load(src).signatures["serving_default"](words=tf.constant(words))
    assert max_rel_err(fn(words=words)["y"].numpy(), want["y"].numpy()) < 1e-6


def test_constant_subgraphs_grappler_leaves_are_folded(tmp_path) -> None:
    """The uint8 detector's first convolution: Grappler folds the input scale into the
    filter as a Mul of two constants, which capability must see as a constant."""
    src = str(tmp_path / "ssd")
    hand.build_ssd(src)
    frozen = load_and_freeze(src, ["serve"], "serving_default")
    g = ir.from_graph_def(frozen.graph_def)
    folded = constfold.foldable_nodes(g)
    assert [g.nodes[n]["op"] for n in folded] == ["Mul"]
    (conv2d,) = [n for n, d in g.nodes(data=True) if d["op"] == "Conv2D"
                 and ir.parse_input(ir.data_inputs(g, n)[1])[0] == folded[0]]
    out = constfold.fold_constants(g)
    assert out.nodes[folded[0]]["op"] == "Const"
    assert ir.const_value(out, folded[0]).shape == (3, 3, 3, 16)
    assert len(out) == len(g) - 2  # the two constants it was made of are gone
    assert out.nodes[conv2d]["op"] == "Conv2D"


def test_folding_keeps_variable_reads_of_an_unfrozen_graph(tmp_path, monkeypatch) -> None:
    v = tf.Variable(np.float32(3.0))

    def fn(x):
        return {"y": x * (v * 2.0) + tf.constant(1.0) * tf.constant(2.0)}

    src = export_module(str(tmp_path / "m"), fn, [tf.TensorSpec([None], tf.float32)], [v])
    monkeypatch.setenv("TF_TRT_EXPERIMENTAL_FEATURES", "disable_graph_freezing")
    frozen = load_and_freeze(src, ["serve"], "serving_default", freeze=False)
    g = ir.from_graph_def(frozen.graph_def, variable_values=frozen.variable_values)
    out = constfold.fold_constants(g, fold_variable_reads=False)
    assert any(d["op"] == "ReadVariableOp" for _, d in out.nodes(data=True))
    assert not any(d["op"] == "Mul" and all(ir.is_const_like(out, ir.parse_input(r)[0])
                                            for r in ir.data_inputs(out, n))
                   and "variable_value" not in out.nodes[ir.parse_input(
                       ir.data_inputs(out, n)[0])[0]]
                   for n, d in out.nodes(data=True))


def test_folding_a_node_with_several_outputs() -> None:
    @tf.function
    def fn(x):
        a, b = tf.split(tf.reshape(tf.range(8.0), (2, 4)), 2, axis=1)
        return x * a + b

    gd = fn.get_concrete_function(tf.TensorSpec([2, 2])).graph.as_graph_def()
    g = ir.from_graph_def(gd)
    out = constfold.fold_constants(g, keep=frozenset({"x"}))
    assert not any(d["op"] in ("Split", "Range", "Reshape") for _, d in out.nodes(data=True))
    folded = sorted(n for n in out.nodes if "/folded_" in n)
    assert len(folded) == 2
    assert np.array_equal(ir.const_value(out, folded[1]), [[2.0, 3.0], [6.0, 7.0]])


def test_calls_marked_noinline_are_inlined_too(tmp_path) -> None:
    inner = tf.function(lambda x: tf.nn.relu(x * 3.0) - 1.0,
                        experimental_attributes={"_noinline": True})

    def fn(x):
        return {"y": inner(x) + inner(x * 2.0)}

    src = export_module(str(tmp_path / "m"), fn, [tf.TensorSpec([None, 4], tf.float32)])
    frozen = load_and_freeze(src, ["serve"], "serving_default")
    assert not {n.op for n in frozen.graph_def.node} & {"StatefulPartitionedCall",
                                                        "PartitionedCall"}
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src)
    assert conv.convert().runs_without_tensorflow
