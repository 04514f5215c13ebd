"""SavedModels that TF-TRT wrote: tftrt.load runs them, tftrt.migrate rewrites them.

The models are genuine TF 2.17.1 output (tests/data/legacy_tftrt) or derived from them
(tests/legacy_fixtures.py); references are the original models' outputs, computed by
TF 2.17.1.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

import tftrt
from tests import legacy_fixtures as lf
from tests.conftest import max_rel_err
from tftrt.compiler import calibration_table, legacy_model
from tftrt.errors import CalibrationError, SavedModelError, SaveError

FP32_TOL = 1e-5
FP16_TOL = 2e-2  # bf16/fp16 arithmetic through two small layers


def _tol(name: str) -> float:
    return FP16_TOL if "fp16" in name else FP32_TOL


def _run(model, inputs):
    out = model.signatures["serving_default"](**inputs)
    return {k: np.asarray(v) for k, v in out.items()}


def _check_outputs(got, want, tol):
    assert set(got) == set(want)
    for key in want:
        assert max_rel_err(got[key], want[key]) <= tol, key


def _tftrt_attrs(name: str) -> dict[str, legacy_model.LegacyEngine]:
    """The engines' attributes as the proto has them, by TF-TRT's engine name."""
    sm = lf.read(lf.path(name))
    return {n.name: legacy_model.engine_from_node(n, "") for n in lf.engine_nodes(sm)}


def _op_for(model, tftrt_name: str):
    record = next(r for r in model.migration.records if r.source.name == tftrt_name)
    return model.engines[record.name]


@pytest.mark.parametrize("name", [n for n in lf.GENUINE if n != "no_runtime_build_fp32"])
def test_genuine_model_runs_on_engines(name: str) -> None:
    inputs, want = lf.reference(name)
    model = tftrt.load(lf.path(name))
    _check_outputs(_run(model, inputs), want, _tol(name))
    attrs = _tftrt_attrs(name)
    assert len(model.engines) == len(attrs) >= 1
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    for tftrt_name, source in attrs.items():
        op = _op_for(model, tftrt_name)
        assert op.stats.engine_calls >= 1 and op.stats.native_calls == 0, op.stats
        # the node's attributes arrive at its engine
        assert op.precision_mode == source.precision_mode
        assert op.dynamic_shape == (not source.use_implicit_batch)
        assert op.max_cached_engines == source.max_cached_engines
        assert op.allow_build_at_runtime == source.allow_build_at_runtime
        if op.dynamic_shape:
            assert op.profile_strategy == source.profile_strategy
        declared = [s for s, dt in zip(source.input_shapes, source.in_dtypes, strict=True)
                    if dt is not None]  # freezing removes resource (variable) inputs
        assert [s.shape for s in op.inputs] == declared
        assert [s.shape for s in op.outputs] == list(source.output_shapes)
        assert f"precision: {source.precision_mode}" in text
        assert f"runs {op.precision} on {op.backend.name}" in text
    if "fp16" in name:
        assert all(op.precision in ("BF16", "FP16", "FP32") for op in model.engines.values())


def test_the_only_signature_is_found_under_its_own_key(tmp_path) -> None:
    name = "two_inputs_implicit_fp32"
    model_dir = lf.copy(name, str(tmp_path / "predict"))
    lf.rename_signature(model_dir, "serving_default", "predict")
    inputs, want = lf.reference(name)
    model = tftrt.load(model_dir)
    assert list(model.signatures) == ["predict"]
    _check_outputs({k: np.asarray(v) for k, v in model.signatures["predict"](**inputs).items()},
                   want, FP32_TOL)
    dst = str(tmp_path / "migrated")
    tftrt.migrate(model_dir, dst, print_fn=None)
    plain = tf.saved_model.load(dst).signatures["predict"](
        **{k: tf.constant(v) for k, v in inputs.items()})
    _check_outputs({k: v.numpy() for k, v in plain.items()}, want, FP32_TOL)
    with pytest.raises(SavedModelError, match="no signature 'serving'"):
        tftrt.migrate(model_dir, str(tmp_path / "other"), input_saved_model_signature_key="serving")


def test_three_engines_keep_their_cache_and_profile_settings() -> None:
    model = tftrt.load(lf.path("three_engines_dynamic_fp32"))
    ops = list(model.engines.values())
    assert len(ops) == 3
    assert {(op.dynamic_shape, op.profile_strategy, op.max_cached_engines) for op in ops} \
        == {(True, "Optimal", 2)}


def test_runtime_builds_off_runs_natively_until_migrated_with_build_data(tmp_path) -> None:
    name = "no_runtime_build_fp32"
    inputs, want = lf.reference(name)
    model = tftrt.load(lf.path(name))
    _check_outputs(_run(model, inputs), want, FP32_TOL)
    (op,) = model.engines.values()
    assert not op.allow_build_at_runtime
    assert (op.stats.builds, op.stats.native_calls) == (0, 1)
    dst = str(tmp_path / "migrated")
    tftrt.migrate(lf.path(name), dst, build_input_fn=lambda: [inputs], print_fn=None)
    again = tftrt.load(dst)
    _check_outputs(_run(again, inputs), want, FP32_TOL)
    (op,) = again.engines.values()
    assert (op.stats.builds, op.stats.engine_calls, op.stats.native_calls) == (0, 1, 0)
    assert again.manifest["options"]["allow_build_at_runtime"] is False


@pytest.mark.parametrize("name", ["tiny_dynshape_fp32", "two_engines_implicitbatch_fp16",
                                  "unfrozen_dynamic_fp32", "tf1_dynamic_op_fp32"])
def test_migrate_runs_in_plain_tensorflow_and_on_saved_engines(name: str, tmp_path) -> None:
    inputs, want = lf.reference(name)
    dst = str(tmp_path / "migrated")
    lines = []
    tftrt.migrate(lf.path(name), dst, build_input_fn=lambda: [inputs], print_fn=lines.append)
    text = "\n".join(lines)
    assert "engines ->" in text and "ops (" in text and "shapes:" in text
    plain = tf.saved_model.load(dst).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in inputs.items()})
    _check_outputs({k: v.numpy() for k, v in plain.items()}, want, FP32_TOL)
    loaded = tftrt.load(dst)
    _check_outputs(_run(loaded, inputs), want, _tol(name))
    for op in loaded.engines.values():
        assert (op.stats.builds, op.stats.native_calls) == (0, 0) and op.stats.engine_calls
    attrs = _tftrt_attrs(name)
    source = next(iter(attrs.values()))
    opts = loaded.manifest["options"]
    assert opts["precision_mode"] == source.precision_mode
    assert opts["use_dynamic_shape"] == (not source.use_implicit_batch)


def test_migrate_parameters_override_the_engines(tmp_path) -> None:
    name = "two_engines_implicitbatch_fp16"
    inputs, want = lf.reference(name)
    dst = str(tmp_path / "m")
    model = tftrt.migrate(lf.path(name), dst, precision_mode="fp32", use_dynamic_shape=True,
                          dynamic_shape_profile_strategy="optimal", print_fn=None)
    assert {(op.precision_mode, op.dynamic_shape, op.profile_strategy)
            for op in model.engines.values()} == {("FP32", True, "Optimal")}
    _check_outputs(_run(tftrt.load(dst), inputs), want, FP32_TOL)
    with pytest.raises(TypeError, match="unknown converter parameters"):
        tftrt.migrate(lf.path(name), str(tmp_path / "n"), precison_mode="FP32")
    assert not os.path.exists(tmp_path / "n")


def test_build_layout_resources_removed_engines_rebuilt_with_one_warning(tmp_path,
                                                                         caplog) -> None:
    name = "two_engines_implicitbatch_fp16"
    model_dir = lf.copy(name, str(tmp_path / "built"))
    lf.with_build_layout(model_dir)
    with pytest.raises(Exception, match="not registered"):
        tf.saved_model.load(model_dir)  # what TF 2.18+ users get
    inputs, want = lf.reference(name)
    with caplog.at_level(logging.WARNING, logger="tftrt"):
        model = tftrt.load(model_dir)
    rebuilt = [r for r in caplog.records if "rebuilt from their segments" in r.getMessage()]
    assert len(rebuilt) == 1 and "2 serialized TensorRT engine" in rebuilt[0].getMessage()
    _check_outputs(_run(model, inputs), want, FP16_TOL)
    assert all(op.stats.engine_calls == 1 for op in model.engines.values())
    dst = str(tmp_path / "migrated")
    tftrt.migrate(model_dir, dst, print_fn=None)
    plain = tf.saved_model.load(dst).signatures["serving_default"](x=tf.constant(inputs["x"]))
    _check_outputs({k: v.numpy() for k, v in plain.items()}, want, FP32_TOL)


def test_truncated_serialized_engine_is_skipped_and_the_model_runs(tmp_path, caplog) -> None:
    name = "tiny_dynshape_fp32"
    model_dir = lf.copy(name, str(tmp_path / "built"))
    lf.with_build_layout(model_dir)
    asset = os.path.join(model_dir, "assets", "trt-serialized-engine.TRTEngineOp_000_000")
    lf.truncate(asset, os.path.getsize(asset) - 7)
    inputs, want = lf.reference(name)
    with caplog.at_level(logging.WARNING, logger="tftrt"):
        model = tftrt.load(model_dir)
    assert any("trt-serialized-engine.TRTEngineOp_000_000" in r.getMessage()
               and "truncated" in r.getMessage() for r in caplog.records)
    _check_outputs(_run(model, inputs), want, FP32_TOL)


class _FakeTensorRT:
    """A backend named tensorrt that 'deserializes' plans it recognises (no TensorRT here):
    shows that TF-TRT's serialized engines reach the tensorrt backend, keyed by shape."""

    name = "tensorrt"

    def __init__(self):
        self.plans = []

    def available(self):
        return True

    def version(self):
        return "fake"

    def build(self, model_bytes, config):
        raise RuntimeError("this fake backend cannot build")

    def deserialize(self, data, config):
        if not data.startswith(b"fake TensorRT plan"):
            raise RuntimeError("not a plan")
        self.plans.append((data, tuple(config.input_shapes)))

        class Engine:
            backend, precision = "tensorrt", "FP32"

            def run(self, inputs):
                return [np.zeros((inputs[0].shape[0], 4), np.float32)]

            def serialize(self):
                return data

        return Engine()


def test_tensorrt_backend_gets_the_serialized_engines(tmp_path) -> None:
    from tftrt.compiler.migrate import load_legacy

    model_dir = lf.copy("two_inputs_implicit_fp32", str(tmp_path / "built"))
    lf.with_build_layout(model_dir, {"TRTEngineOp_001_000": [[4, 6], [4, 6]]})
    backend = _FakeTensorRT()
    model = load_legacy(model_dir, backend)
    (op,) = model.engines.values()
    assert backend.plans == [(b"fake TensorRT plan of TRTEngineOp_001_000", ((4, 6), (4, 6)))]
    assert op.engine_for([(4, 6), (4, 6)]) is not None and op.stats.builds == 0
    assert model.migration.serialized_unused == 0
    assert any("reused" in n for n in model.migration.records[0].serialized)


def test_segment_with_an_unconvertible_op_runs_natively(tmp_path) -> None:
    name = "tiny_dynshape_fp32"
    model_dir = lf.copy(name, str(tmp_path / "odd"))
    lf.add_unconvertible_op(model_dir, "TRTEngineOp_000_000_native_segment")
    inputs, want = lf.reference(name)
    want = {"output_0": tf.math.bessel_i0e(want["output_0"]).numpy()}
    model = tftrt.load(model_dir)
    assert model.engines == {}
    (record,) = model.migration.records
    assert not record.converted and "BesselI0e" in record.reason
    _check_outputs(_run(model, inputs), want, FP32_TOL)
    dst = str(tmp_path / "migrated")
    lines = []
    tftrt.migrate(model_dir, dst, print_fn=lines.append)
    assert "runs natively: node 'inserted_BesselI0e' (BesselI0e) cannot be converted" \
        in "\n".join(lines)
    plain = tf.saved_model.load(dst).signatures["serving_default"](x=tf.constant(inputs["x"]))
    _check_outputs({k: v.numpy() for k, v in plain.items()}, want, FP32_TOL)


def test_denylisted_op_keeps_only_that_engine_native(monkeypatch) -> None:
    name = "three_engines_dynamic_fp32"
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", "Tanh")
    inputs, want = lf.reference(name)
    model = tftrt.load(lf.path(name))
    native = [r for r in model.migration.records if not r.converted]
    assert [r.source.name for r in native] == ["TRTEngineOp_000_002"]
    assert "TF_TRT_OP_DENYLIST" in native[0].reason
    _check_outputs(_run(model, inputs), want, FP32_TOL)
    assert len(model.engines) == 2
    assert all(op.stats.engine_calls == 1 for op in model.engines.values())


# -- INT8 ---------------------------------------------------------------------------

def _segment_ranges(model_dir: str, segment: str, x: np.ndarray) -> dict[str, float]:
    """Each segment tensor's absolute maximum on ``x``, computed by TensorFlow, under the
    names TF-TRT gives TensorRT's tensors."""
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph

    fdef = lf.function(lf.read(model_dir), segment)
    fg = function_def_to_graph(fdef)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(fg.as_graph_def(), name="")
    tensors = {op.name: op.outputs[0] for op in graph.get_operations()
               if op.outputs and op.type not in ("Placeholder", "Const")}
    with tf.compat.v1.Session(graph=graph) as sess:
        values = sess.run(tensors, {fg.inputs[0].name: x})
    out = {k: float(np.abs(v).max()) for k, v in values.items()}
    out["TensorRTInputPH_0"] = float(np.abs(x).max())
    return out


def test_int8_scales_come_from_the_tensorrt_calibration_table(tmp_path) -> None:
    name = "tiny_dynshape_fp32"
    inputs, want = lf.reference(name)
    model_dir = lf.copy(name, str(tmp_path / "int8"))
    ranges = _segment_ranges(model_dir, "TRTEngineOp_000_000_native_segment", inputs["x"])
    table = calibration_table.format_table({k: v / 127 for k, v in ranges.items()})

    def int8(node):
        node.attr["precision_mode"].s = b"INT8"
        node.attr["use_calibration"].b = True
        node.attr["calibration_data"].s = table.encode()

    lf.edit_engines(model_dir, int8)
    model = tftrt.load(model_dir)
    (op,) = model.engines.values()
    (record,) = model.migration.records
    assert op.calibration["source"] == "tensorrt-table"
    assert op.calibration["tensors"] == len(ranges) == op.calibration["table_tensors"]
    assert f"scales for {len(ranges)} of its {len(ranges)} tensors" in record.calibration
    got = _run(model, inputs)["output_0"]
    assert max_rel_err(got, want["output_0"]) < 0.05
    assert op.precision == "INT8"


def test_int8_without_a_usable_table_asks_for_calibration_data(tmp_path) -> None:
    name = "tiny_dynshape_fp32"
    inputs, want = lf.reference(name)
    model_dir = lf.copy(name, str(tmp_path / "int8"))

    def int8(node):
        node.attr["precision_mode"].s = b"INT8"
        node.attr["use_calibration"].b = True
        node.attr["calibration_data"].s = (b"TRT-8601-EntropyCalibration2\n"
                                           b"not_in_segment: 3c000000\n")

    lf.edit_engines(model_dir, int8)
    with pytest.raises(CalibrationError, match="calibration_input_fn"):
        tftrt.load(model_dir)
    dst = str(tmp_path / "migrated")
    with pytest.raises(CalibrationError, match="calibration_input_fn"):
        tftrt.migrate(model_dir, dst, print_fn=None)
    assert not os.path.exists(dst)
    batches = [{"x": np.random.default_rng(k).standard_normal((3, 8)).astype(np.float32)}
               for k in range(4)] + [inputs]
    model = tftrt.migrate(model_dir, dst, calibration_input_fn=lambda: batches, print_fn=None)
    (record,) = model.migration.records
    assert "calibration on 5 batches" in record.calibration
    got = _run(tftrt.load(dst), inputs)["output_0"]
    assert max_rel_err(got, want["output_0"]) < 0.1


# -- bad input ------------------------------------------------------------------------

def test_missing_segment_func_names_the_engine(tmp_path) -> None:
    model_dir = lf.copy("two_engines_implicitbatch_fp16", str(tmp_path / "broken"))
    lf.drop_function(model_dir, "TRTEngineOp_000_001_native_segment")
    with pytest.raises(SavedModelError, match="TRTEngineOp_000_001.*"
                       "TRTEngineOp_000_001_native_segment.*missing"):
        tftrt.load(model_dir)


def test_non_empty_destination_is_refused_and_left_alone(tmp_path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(SaveError, match="not empty"):
        tftrt.migrate(lf.path("tiny_dynshape_fp32"), str(dst), print_fn=None)
    assert os.listdir(dst) == ["keep.txt"] and (dst / "keep.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["dst"]


def test_failed_build_leaves_nothing_behind(tmp_path) -> None:
    def broken():
        yield {"x": np.zeros((2, 8), np.float32)}
        raise RuntimeError("the build data ran out")

    with pytest.raises(RuntimeError, match="ran out"):
        tftrt.migrate(lf.path("tiny_dynshape_fp32"), str(tmp_path / "dst"),
                      build_input_fn=broken, print_fn=None)
    assert os.listdir(tmp_path) == []


def test_not_a_saved_model(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SavedModelError, match="no saved_model.pb"):
        tftrt.migrate(str(tmp_path / "empty"), str(tmp_path / "dst"), print_fn=None)
    with pytest.raises(SavedModelError):
        tftrt.load(str(tmp_path / "empty"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "saved_model.pb").write_bytes(b"\x08\xff\xff garbage")
    with pytest.raises(SavedModelError, match="not a readable SavedModel"):
        tftrt.migrate(str(tmp_path / "junk"), str(tmp_path / "dst"), print_fn=None)
    assert not os.path.exists(tmp_path / "dst")


def test_a_model_tf_trt_never_converted_is_refused(keras_mlp_dir, tmp_path) -> None:
    with pytest.raises(SavedModelError, match="holds no TRTEngineOp"):
        tftrt.migrate(keras_mlp_dir, str(tmp_path / "dst"), print_fn=None)


def test_cli_migrate_with_build_data(tmp_path, capsys) -> None:
    from tftrt import cli

    name = "three_engines_dynamic_fp32"
    inputs, want = lf.reference(name)
    data = tmp_path / "build.npz"
    np.savez(data, **{"x:0": inputs["x"], "x:1": inputs["x"][:2]})
    dst = str(tmp_path / "migrated")
    assert cli.main(["migrate", lf.path(name), dst, "--build-data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "3 engines -> 3 tftrt engines, 0 native" in out and "Optimal profiles" in out
    loaded = tftrt.load(dst)
    _check_outputs(_run(loaded, inputs), want, FP32_TOL)
    assert all(op.stats.builds == 0 for op in loaded.engines.values())


def test_calibration_table_parsing() -> None:
    scales = {"TensorRTInputPH_0": 0.0125, "scope/MatMul": 0.5, "scope/Split:1": 3.0}
    text = calibration_table.format_table(scales)
    assert text.startswith("TRT-8601-EntropyCalibration2\n")
    parsed = calibration_table.parse(text.encode())
    assert parsed.keys() == scales.keys()
    assert all(abs(parsed[k] - v) <= 1e-7 * v for k, v in scales.items())
    assert calibration_table.parse(b"") == {}
    assert calibration_table.parse(b"not a table\nx: 3c000000\n") == {}
    assert calibration_table.parse(b"TRT-8601-MinMax\nx: zz\n") == {}
    # non-positive or non-finite scales are no scales
    assert calibration_table.parse("TRT-1-X\na: 00000000\nb: 7fc00000\nc: 3f800000\n") \
        == {"c": 1.0}


def test_serialized_engine_files(tmp_path) -> None:
    from tftrt.compiler.legacy_assets import read_engine_file

    fname = str(tmp_path / "trt-serialized-engine.E")
    lf.write_engine_file(fname, [([[4, 8]], b"plan0"), ([[8, 8], [2]], b"plan1" * 50)])
    found = read_engine_file(fname)
    assert found.error is None
    assert [(e.input_shapes, e.plan) for e in found.engines] == [
        (((4, 8),), b"plan0"), (((8, 8), (2,)), b"plan1" * 50)]
    lf.truncate(fname, os.path.getsize(fname) - 100)  # inside the second record
    found = read_engine_file(fname)
    assert len(found.engines) == 1 and "truncated or corrupt after 1" in found.error
    with open(fname, "ab") as f:
        f.write(b"junk")
    assert "truncated or corrupt" in read_engine_file(fname).error
    assert read_engine_file(str(tmp_path / "absent")).error == "the file is missing"
