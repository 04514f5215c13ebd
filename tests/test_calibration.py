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

from tftrt.compiler.collector import _malloc_trim, release_memory
from tftrt.compiler.ort_quantize import _lean_calibrators, _Reader, _samples, quantize


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

    def state() -> tuple:
        return tuple(getattr(cls, name) for cls in (calibrate.HistogramCalibrater,
                                                    calibrate.MinMaxCalibrater)
                     for name in ("collect_data", "augment_graph", "create_inference_session"))

    before = state()
    with pytest.raises(RuntimeError), _lean_calibrators():
        raise RuntimeError("boom")
    assert state() == before


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


def _scaled_conv_model(c: int = 4) -> bytes:
    """Conv (``c`` channels) -> Mul -> Add -> Relu -> Conv: pre-processing folds the scale
    and shift."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w", (c, 3, 3, 3)), ("scale", (1, c, 1, 1)), ("shift", (1, c, 1, 1)),
                          ("w2", (2, c, 1, 1)))]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 6, 6])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Mul", ["c", "scale"], ["m"]),
             helper.make_node("Add", ["m", "shift"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]
                             ).SerializeToString()


def _plain_quantize(model: bytes, batches: list[list[np.ndarray]], method: str, tmp) -> bytes:
    """What ONNX Runtime's own quant_pre_process and quantize_static make of the model
    (under the lean calibrators, as before)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    from tftrt.compiler.ort_quantize import _fold_and_save

    src, pre, out = (str(tmp / f) for f in ("in.onnx", "pre.onnx", "q.onnx"))
    _fold_and_save(model, src)
    quant_pre_process(src, pre, skip_symbolic_shape=True, skip_onnx_shape=True)
    methods = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
               "percentile": CalibrationMethod.Percentile}
    with _lean_calibrators():
        quantize_static(pre, out, _Reader(["x"], batches), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=methods[method],
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return (tmp / "q.onnx").read_bytes()


def test_pre_processing_writes_the_file_quant_pre_process_writes(tmp_path) -> None:
    from onnxruntime.quantization import quant_pre_process

    from tftrt.compiler.ort_quantize import _fold_and_save, _pre_process

    src = str(tmp_path / "in.onnx")
    _fold_and_save(_scaled_conv_model(), src)
    quant_pre_process(src, str(tmp_path / "ort.onnx"), skip_symbolic_shape=True,
                      skip_onnx_shape=True)
    _pre_process(src, str(tmp_path / "ours.onnx"))
    ours = (tmp_path / "ours.onnx").read_bytes()
    assert ours == (tmp_path / "ort.onnx").read_bytes()
    assert [n.op_type for n in onnx.load_from_string(ours).graph.node] == ["Conv", "Relu", "Conv"]


@pytest.mark.parametrize("method", ["entropy", "minmax", "percentile"])
def test_quantize_makes_the_model_onnx_runtimes_quantizer_makes(tmp_path, method) -> None:
    """Pre-processing, calibration and quantization in less memory: the same bytes."""
    rng = np.random.default_rng(3)
    batches = [[rng.standard_normal((3, 3, 8, 8)).astype(np.float32) * (k + 1)] for k in range(2)]
    model = _scaled_conv_model()
    ours = quantize(model, batches, method)
    assert ours == _plain_quantize(model, batches, method, tmp_path)
    assert sum(n.op_type == "QuantizeLinear" for n in onnx.load_from_string(ours).graph.node) >= 2


def test_without_a_calibration_cache_quantize_static_calibrates_itself(tmp_path,
                                                                       monkeypatch) -> None:
    """ONNX Runtime before calibration caches: quantize_static calibrates, same model."""
    from tftrt.compiler import ort_quantize

    rng = np.random.default_rng(4)
    batches = [[rng.standard_normal((2, 3, 8, 8)).astype(np.float32)]]
    model = _scaled_conv_model()
    split = quantize(model, batches, "entropy")
    monkeypatch.setattr(ort_quantize, "_ranges_cache_supported", lambda: False)
    monkeypatch.setattr(ort_quantize, "_calibrate_ranges", None)  # not called
    assert quantize(model, batches, "entropy") == split


def test_the_lean_calibrators_keep_the_model_without_its_weights(tmp_path) -> None:
    """The calibrator's session has the weights (from a side file); its model does not."""
    path = str(tmp_path / "m.onnx")
    onnx.save(onnx.load_from_string(_scaled_conv_model(16)), path)  # w: 1.7 kB
    with _lean_calibrators():
        calibrator = create_calibrator(path, ["Conv", "Relu"], str(tmp_path / "aug.onnx"))
        calibrator.collect_data(_Batches([np.ones((2, 3, 8, 8), np.float32)]))
    (w,) = (t for t in calibrator.model.graph.initializer if t.name == "w")
    assert not w.raw_data and w.data_location == TensorProto.EXTERNAL
    (side,) = tmp_path.glob("*.data")
    assert side.stat().st_size >= 16 * 3 * 3 * 3 * 4
    assert calibrator.compute_data()["y"].range_value[1] > 0
