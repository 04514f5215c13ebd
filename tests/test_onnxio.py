"""ONNX models serialize one initializer at a time to exactly the library's bytes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from tftrt.compiler import onnxio


def _model(sizes: list[int], seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), f"w{k}")
             for k, n in enumerate(sizes)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [x], [y], inits, doc_string="the graph")
    graph.value_info.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]))
    graph.sparse_initializer.append(helper.make_sparse_tensor(
        numpy_helper.from_array(np.ones(2, np.float32), "s"),
        numpy_helper.from_array(np.array([0, 3], np.int64), ""), [4]))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              doc_string="a model", producer_name="tftrt-test")
    model.metadata_props.add(key="k", value="v")
    model.functions.add(name="f", domain="custom")
    return model


@pytest.mark.parametrize("model", [
    _model([16, 4, 1 << 20]),  # a 4 MB weight: a multi-byte length
    _model([]),
    onnx.ModelProto(),
    helper.make_model(helper.make_graph([], "empty", [], [])),
], ids=["weights", "no-weights", "no-graph", "empty-graph"])
def test_serialize_and_save_give_the_librarys_bytes(model, tmp_path) -> None:
    expected = model.SerializeToString()
    assert onnxio.serialize(model) == expected
    path = tmp_path / "m.onnx"
    onnxio.save(model, path)
    assert path.read_bytes() == expected
    assert onnx.load(str(path)) == model


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(0, 5000), max_size=8), seed=st.integers(0, 10))
def test_any_weights_serialize_to_the_librarys_bytes(sizes, seed) -> None:
    model = _model(sizes, seed)
    assert onnxio.serialize(model) == model.SerializeToString()


def test_a_model_with_fields_onnx_does_not_know_keeps_them() -> None:
    unknown = b"\xf8\x07\x01"  # field 127, varint 1: no ModelProto field
    model = onnx.ModelProto.FromString(_model([8]).SerializeToString() + unknown)
    assert onnxio.serialize(model) == model.SerializeToString()
    assert onnxio.serialize(model).endswith(unknown)


def test_without_protobufs_unknown_field_set_the_library_serializes(monkeypatch) -> None:
    import sys

    import google.protobuf

    monkeypatch.setitem(sys.modules, "google.protobuf.unknown_fields", None)  # protobuf < 4.24
    monkeypatch.delattr(google.protobuf, "unknown_fields", raising=False)
    model = _model([64])
    assert onnxio._has_unknown_fields(model)  # noqa: SLF001
    assert onnxio.serialize(model) == model.SerializeToString()
