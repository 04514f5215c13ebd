"""INT8 calibration feeds ONNX Runtime's calibrators one sample at a time where it may,
and runs them in as little memory as gives the same ranges."""

from __future__ import annotations

import os
import platform
import weakref

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationMethod, create_calibrator

from tftrt.compiler.calibration import _lean_calibrators, _samples, release_memory
from tftrt.compiler.collector import _malloc_trim


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


def _conv_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class _Batches:
    def __init__(self, batches: list[np.ndarray]) -> None:
        self._it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {"x": x}


def _ranges(path: str, tmp: str, method: CalibrationMethod,
            calls: list[list[np.ndarray]]) -> dict:
    """The calibrator's ranges and session options, ``collect_data`` called once per item
    of ``calls``, with those batches."""
    calibrator = create_calibrator(path, ["Conv", "Relu"], os.path.join(tmp, "aug.onnx"),
                                   calibrate_method=method)
    for batches in calls:
        calibrator.collect_data(_Batches(batches))
    options = calibrator.infer_session.get_session_options()
    data = calibrator.compute_data()
    return {"arena": options.enable_cpu_mem_arena, "pattern": options.enable_mem_pattern,
            "ranges": {k: tuple(np.asarray(v).tolist() for v in data[k].range_value)
                       for k in data}}


@pytest.mark.parametrize("method", [CalibrationMethod.MinMax, CalibrationMethod.Entropy,
                                    CalibrationMethod.Percentile])
def test_lean_calibrators_give_the_ranges_of_one_sample_at_a_time(tmp_path, method) -> None:
    path = str(tmp_path / "m.onnx")
    onnx.save(_conv_model(), path)
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((3, 3, 8, 8)).astype(np.float32) * (k + 1) for k in range(2)]
    one_by_one = [[b[i:i + 1]] for b in batches for i in range(len(b))]
    plain = _ranges(path, str(tmp_path), method, one_by_one)
    with _lean_calibrators():
        lean = _ranges(path, str(tmp_path), method, [batches])
    assert lean["ranges"] == plain["ranges"]
    assert (plain["arena"], plain["pattern"]) == (True, True)
    assert (lean["arena"], lean["pattern"]) == (False, False)
    if method == CalibrationMethod.MinMax:  # minima and maxima do not depend on the batching
        assert _ranges(path, str(tmp_path), method, [batches])["ranges"] == lean["ranges"]


def test_the_calibrators_are_restored_afterwards() -> None:
    from onnxruntime.quantization import calibrate

    before = (calibrate.HistogramCalibrater.collect_data, calibrate.MinMaxCalibrater.collect_data,
              calibrate.CalibraterBase.create_inference_session)
    with pytest.raises(RuntimeError), _lean_calibrators():
        raise RuntimeError("boom")
    assert (calibrate.HistogramCalibrater.collect_data, calibrate.MinMaxCalibrater.collect_data,
            calibrate.CalibraterBase.create_inference_session) == before


def test_release_memory_collects_cycles_and_trims_the_c_heap_on_glibc() -> None:
    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    del a, b
    release_memory()
    assert ref() is None
    if platform.libc_ver()[0] == "glibc":
        assert _malloc_trim() is not None
