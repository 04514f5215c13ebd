"""INT8 calibration feeds ONNX Runtime's calibrators one sample at a time where it may."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from tftrt.compiler.calibration import _samples


def _model(batch: int | str) -> object:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph)


def test_a_batch_is_split_into_samples_where_the_batch_is_dynamic() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    parts = _samples({"x": x}, _model("N"))
    assert [p["x"].shape for p in parts] == [(1, 4)] * 3
    np.testing.assert_array_equal(np.concatenate([p["x"] for p in parts]), x)


def test_a_fixed_batch_or_unbatched_inputs_stay_whole() -> None:
    x = np.zeros((3, 4), np.float32)
    assert len(_samples({"x": x}, _model(3))) == 1
    assert len(_samples({"x": np.zeros((), np.float32)}, _model("N"))) == 1
    assert len(_samples({"x": x, "z": np.zeros((2, 4), np.float32)}, _model("N"))) == 1
