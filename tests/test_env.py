"""Every environment variable tftrt reads does what docs/environment.md says (one test each).

``test_every_variable_has_its_test`` keeps it so: each variable and alias in
``tftrt.env.VARIABLES``, and each experimental feature, has a test here named after it.
"""

from __future__ import annotations

import logging
import pathlib
import re

import numpy as np
import onnx
import pytest
import tensorflow as tf
from onnx import TensorProto, helper

import tftrt
import tftrt.env as env
from tests.conftest import export_module
from tftrt import logs, progress
from tftrt import trt_convert as trt
from tftrt.compiler import calibration, capability, segment
from tftrt.compiler import ir as irmod
from tftrt.engines.topk_limit import limit_nms_top_k
from tftrt.errors import EngineError, EnvironmentVariableError
from tftrt.plugins import get_registry, reset_registry
from tftrt.runtime.engine_op import EngineOp
from tftrt.specs import TensorSpec
from tftrt.testing import lower_function, run_onnx, trace

ROOT = pathlib.Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(3)
W1 = RNG.standard_normal((6, 8)).astype(np.float32)
W2 = RNG.standard_normal((8, 4)).astype(np.float32)
F32 = np.dtype(np.float32)


def mlp(x):
    h = tf.nn.relu(tf.matmul(x, W1) + 1.0)
    h = tf.tanh(h) * 0.5
    return tf.nn.relu(tf.matmul(h, W2))


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("env") / "mlp"), mlp,
                         [tf.TensorSpec([None, 6], tf.float32)])


@pytest.fixture(autouse=True)
def said_again():
    """Each test sees the once-only messages afresh."""
    env.forget_notes()
    yield
    env.forget_notes()


def convert(path: str, **kw) -> trt.TrtGraphConverterV2:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, backend="onnxruntime", **kw)
    conv.convert()
    return conv


def relu_op(backend: str = "onnxruntime", native=None, **kw) -> EngineOp:
    """An engine op of one Relu, [batch, 4] float32."""
    x = helper.make_tensor_value_info("TensorRTInputPH_0", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("TensorRTOutputPH_0", TensorProto.FLOAT, ["n", 4])
    graph = helper.make_graph([helper.make_node("Relu", [x.name], [y.name])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    spec = (TensorSpec("x:0", F32, (None, 4)),)
    return EngineOp(name="TRTEngineOp_relu", onnx_model=model.SerializeToString(),
                    backend=get_registry().backend(backend), inputs=spec,
                    outputs=(TensorSpec("relu:0", F32, (None, 4)),),
                    native=native or (lambda xs: [np.maximum(xs[0], 0) * 1.0]), **kw)


class FailingBackend:
    name = "failing"

    def build(self, model_bytes, config):
        raise RuntimeError("no kernel for this op")


def warnings_about(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and text in r.getMessage()]


# -- the table itself -----------------------------------------------------------------

def test_every_variable_has_its_test() -> None:
    text = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    names = [n for v in env.VARIABLES.values() for n in (v.name, *v.aliases)]
    names += [f"TF_TRT_EXPERIMENTAL_FEATURES_{f}" for f in env.FEATURES]
    missing = [n for n in names if not re.search(rf"def test_{n.lower()}\w*\(", text)]
    assert not missing, f"variables without a test named after them: {missing}"


def test_environment_page_is_the_table() -> None:
    page = (ROOT / "docs" / "environment.md").read_text()
    assert env.markdown_table() in page, ("docs/environment.md is out of date: paste "
                                          "`python -m tftrt.report.environment` into it")


def test_malformed_values_name_the_variable(monkeypatch) -> None:
    for name, bad in (("TF_TRT_MAX_ALLOWED_ENGINES", "seven"),
                      ("TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION", "maybe"),
                      ("TFTRT_LOG", "segment=9")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(EnvironmentVariableError, match=f"{name}='{bad}' is malformed"):
            env.get(name)
        monkeypatch.delenv(name)


# -- conversion -------------------------------------------------------------------------

def test_tf_trt_op_denylist(mlp_dir, monkeypatch) -> None:
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", " MatMul ,Tanh")
    conv = convert(mlp_dir, minimum_segment_size=1)
    assert conv.nonconversion["MatMul"] == {capability.DENYLISTED: 2}
    assert conv.nonconversion["Tanh"] == {capability.DENYLISTED: 1}
    engine_ops = {n.op for f in conv.converted_graph_def.library.function for n in f.node_def}
    assert not {"MatMul", "Tanh"} & engine_ops


def test_tf_trt_max_allowed_engines(mlp_dir, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", "Tanh")  # two segments: Tanh splits the graph
    assert len(convert(mlp_dir, minimum_segment_size=1).engines) == 2
    monkeypatch.setenv("TF_TRT_MAX_ALLOWED_ENGINES", "1")
    with caplog.at_level(logging.WARNING, "tftrt"):
        assert len(convert(mlp_dir, minimum_segment_size=1).engines) == 1
    assert warnings_about(caplog, "only the 1 largest are converted")
    monkeypatch.setenv("TF_TRT_MAX_ALLOWED_ENGINES", "0")
    assert len(convert(mlp_dir, minimum_segment_size=1).engines) == 2
    assert env.get("TF_TRT_MAX_ALLOWED_ENGINES", {}) == 20


def test_tf_trt_show_detailed_report() -> None:
    mode = env.ReportMode
    cases = {"": mode(), "0": mode(), "1": mode(True), "12": mode(True), "-3": mode(),
             "1-2": mode(True), "report.csv": mode(True, "report.csv"), "a": mode(True, "a")}
    for value, want in cases.items():
        assert env.get("TF_TRT_SHOW_DETAILED_REPORT", {"TF_TRT_SHOW_DETAILED_REPORT": value}) \
            == want, value


def test_tf_trt_op_fakelist(mlp_dir, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TF_TRT_OP_FAKELIST", "Tanh")
    reset_registry()  # read once, when the registry is made, as TF-TRT does
    try:
        with caplog.at_level(logging.WARNING, "tftrt"):
            conv = convert(mlp_dir, minimum_segment_size=1)
    finally:
        monkeypatch.delenv("TF_TRT_OP_FAKELIST")
        reset_registry()
    assert not conv.engines  # Tanh looked convertible, so its segment was planned...
    (reason,) = conv.nonconversion["Tanh"]  # ...and failed to lower
    assert reason.startswith("Its segment could not be lowered: op Tanh is in "
                             "TF_TRT_OP_FAKELIST")
    assert warnings_about(caplog, "TF_TRT_OP_FAKELIST")


def test_tf_trt_enable_layout_optimizer(monkeypatch) -> None:
    w1 = RNG.standard_normal((3, 3, 3, 8)).astype(np.float32)
    w2 = RNG.standard_normal((3, 3, 8, 8)).astype(np.float32)

    def cnn(x):
        y = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME")), 2, 2, "VALID")
        return tf.reduce_mean(tf.nn.conv2d(y, w2, 1, "SAME") + 1.0, axis=[1, 2])

    x = RNG.random((2, 16, 16, 3), dtype=np.float32)
    spec = [tf.TensorSpec(x.shape, tf.float32)]
    default = lower_function(cnn, spec)
    monkeypatch.setenv("TF_TRT_ENABLE_LAYOUT_OPTIMIZER", "0")
    kept = lower_function(cnn, spec)

    def transposes(m: onnx.ModelProto) -> int:
        return sum(n.op_type == "Transpose" for n in m.graph.node)

    assert transposes(default) == 1  # NHWC -> NCHW once, at the input
    assert transposes(kept) == 6  # each conv and the pool transpose their input and output
    want = cnn(tf.constant(x)).numpy()
    (a,), (b,) = run_onnx(default, [x]), run_onnx(kept, [x])
    np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)  # the same up to float rounding


def _cast_fn(x):
    return tf.cast(tf.cast(x, tf.int32), tf.bool), tf.cast(x, tf.float16)


def test_tf_trt_experimental_features_reject_all_fp_cast_ops(monkeypatch) -> None:
    g, _, _ = trace(_cast_fn, [tf.TensorSpec([4], tf.float32)])
    casts = {n: g.nodes[n] for n in g.nodes if g.nodes[n]["op"] == "Cast"}

    def reasons() -> dict[str, str | None]:
        marked = capability.mark_supported(g, get_registry())
        return {n: marked.nodes[n]["reason"] for n in casts}

    assert set(reasons().values()) == {None}
    monkeypatch.setenv("TF_TRT_EXPERIMENTAL_FEATURES", "reject_all_fp_cast_ops")
    got = reasons()
    kinds = {n: (irmod.attrs(g, n)["SrcT"], irmod.attrs(g, n)["DstT"]) for n in casts}
    for n, (src, dst) in kinds.items():
        fp = np.dtype(src).kind == "f" or np.dtype(dst).kind == "f"
        assert got[n] == (capability.FP_CAST_REJECTED if fp else None), (src, dst)
    assert sum(r is None for r in got.values()) == 1  # int32 -> bool still converts


def test_tf_trt_experimental_features_disable_graph_freezing(mlp_dir, monkeypatch,
                                                              caplog) -> None:
    monkeypatch.setenv("TF_TRT_EXPERIMENTAL_FEATURES", "disable_graph_freezing")
    assert not trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, use_dynamic_shape=True,
                                       backend="onnxruntime")._freeze
    with caplog.at_level(logging.WARNING, "tftrt"):
        conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, backend="onnxruntime")
    assert conv._freeze and warnings_about(caplog, "needs use_dynamic_shape=True")
    # what an unfrozen conversion keeps is tested in tests/test_variables.py


def test_tf_trt_experimental_features_unknown_names_are_warned_once(caplog) -> None:
    value = {"TF_TRT_EXPERIMENTAL_FEATURES": "remove_native_segments, no_such_thing"}
    with caplog.at_level(logging.WARNING, "tftrt"):
        assert env.get("TF_TRT_EXPERIMENTAL_FEATURES", value) == {"remove_native_segments"}
        env.get("TF_TRT_EXPERIMENTAL_FEATURES", value)
    assert len(warnings_about(caplog, "unknown feature 'no_such_thing'")) == 1


WIDE = [RNG.standard_normal(s).astype(np.float32) * 0.1 for s in ((16, 256), (256, 16))]


def wide(x):
    return tf.matmul(tf.nn.relu(tf.matmul(x, WIDE[0])), WIDE[1])


def test_tf_trt_experimental_features_remove_native_segments(monkeypatch, tmp_path,
                                                             caplog) -> None:
    path = export_module(str(tmp_path / "wide"), wide, [tf.TensorSpec([None, 16], tf.float32)])
    x = RNG.random((3, 16), dtype=np.float32)
    sizes = {}
    for remove in (False, True):
        if remove:
            monkeypatch.setenv("TF_TRT_EXPERIMENTAL_FEATURES", "remove_native_segments")
        conv = convert(path)
        conv.build(lambda: [x])
        out = tmp_path / f"remove_{remove}"
        with caplog.at_level(logging.WARNING, "tftrt"):
            conv.save(str(out))
        sizes[remove] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert warnings_about(caplog, "saved without native segments")
    assert sizes[True] < 0.6 * sizes[False], sizes  # each segment held a copy of the weights
    loaded = tftrt.load(str(out))
    assert loaded.manifest["native_segments"] is False
    got = next(iter(loaded.signatures["serving_default"](x).values())).numpy()
    np.testing.assert_allclose(got, wide(x).numpy(), rtol=1e-5, atol=1e-5)
    assert all(op.native is None and op.stats.engine_calls == 1
               for op in loaded.engines.values())
    plain = tf.saved_model.load(str(out)).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="saved by tftrt without native"):
        plain(tf.constant(x))


def test_remove_native_segments_needs_buildable_engines(mlp_dir, monkeypatch, tmp_path) -> None:
    from tftrt.errors import SaveError

    monkeypatch.setenv("TF_TRT_EXPERIMENTAL_FEATURES", "remove_native_segments")
    conv = convert(mlp_dir, allow_build_at_runtime=False)
    with pytest.raises(SaveError, match="neither a built engine nor a native segment"):
        conv.save(str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_tf_trt_export_graph_viz_path_is_read_by_convert(mlp_dir, monkeypatch,
                                                         tmp_path) -> None:
    monkeypatch.setenv("TF_TRT_EXPORT_GRAPH_VIZ_PATH", str(tmp_path / "g.dot"))
    convert(mlp_dir)
    assert 'subgraph "cluster_TRTEngineOp_' in (tmp_path / "g.dot").read_text()
    # the clusters and the SVG: tests/test_golden_reports.py


# -- the runtime ------------------------------------------------------------------------

def test_tf_trt_allow_engine_native_segment_execution(monkeypatch) -> None:
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    op = relu_op()
    op.backend = FailingBackend()
    np.testing.assert_array_equal(op([x])[0], np.maximum(x, 0))
    assert op.stats.native_calls == 1 and op.stats.build_failures == 1
    monkeypatch.setenv("TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION", "false")
    with pytest.raises(EngineError, match="native segment execution is disallowed"):
        op([x])
    monkeypatch.setenv("TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION", "maybe")
    with pytest.raises(EnvironmentVariableError, match="expected 1/0, true/false"):
        op([x])


def _abort(name: str, monkeypatch) -> None:
    x = np.ones((2, 4), np.float32)
    monkeypatch.setenv(name, "1")
    op = relu_op()
    assert op([x])[0].shape == (2, 4)
    assert op.stats.build_failures == 1 and op.stats.native_calls == 1
    assert "TF_TRT_ABORT_CUDA_ENGINE_BUILD" in op.stats.last_error
    monkeypatch.setenv(name, "0")
    op = relu_op()
    op([x])
    assert op.stats.builds == 1 and op.stats.engine_calls == 1


def test_tf_trt_abort_cuda_engine_build(monkeypatch) -> None:
    _abort("TF_TRT_ABORT_CUDA_ENGINE_BUILD", monkeypatch)


def test_tf_trt_abort_engine_build(monkeypatch) -> None:
    _abort("TF_TRT_ABORT_ENGINE_BUILD", monkeypatch)  # the alias without CUDA in its name
    monkeypatch.setenv("TF_TRT_ABORT_CUDA_ENGINE_BUILD", "true")
    monkeypatch.setenv("TF_TRT_ABORT_ENGINE_BUILD", "1")
    assert env.get("TF_TRT_ABORT_CUDA_ENGINE_BUILD")  # two spellings, one value
    monkeypatch.setenv("TF_TRT_ABORT_ENGINE_BUILD", "0")
    with pytest.raises(EnvironmentVariableError, match="disagree"):
        env.get("TF_TRT_ABORT_CUDA_ENGINE_BUILD")


def test_tf_trt_export_trt_engines_path(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TF_TRT_EXPORT_TRT_ENGINES_PATH", str(tmp_path / "engines"))
    op = relu_op()
    op([np.ones((3, 4), np.float32)])
    (path,) = (tmp_path / "engines").iterdir()
    assert path.name == "TRTEngineOp_relu.1-3x4.onnx"
    assert onnx.load(str(path)).graph.node[0].op_type == "Relu"


# -- backend-specific variables ---------------------------------------------------------

def _nms(boxes, scores):
    return tf.raw_ops.CombinedNonMaxSuppression(
        boxes=boxes, scores=scores, max_output_size_per_class=tf.constant(20),
        max_total_size=tf.constant(30), iou_threshold=tf.constant(0.5, tf.float32),
        score_threshold=tf.constant(0.1, tf.float32), pad_per_class=False, clip_boxes=True)


def test_tf_trt_allow_nms_topk_override(monkeypatch, caplog) -> None:
    center, size = RNG.uniform(0, 1, (2, 40, 1, 2)), RNG.uniform(0.05, 0.3, (2, 40, 1, 2))
    boxes = np.concatenate([center - size / 2, center + size / 2], -1).astype(np.float32)
    scores = RNG.uniform(0, 1, (2, 40, 3)).astype(np.float32)
    want = [np.asarray(t) for t in _nms(tf.constant(boxes), tf.constant(scores))]
    assert (want[3] == 30).all()  # more detections than the limit below
    for dims in ((2, 40), (None, None)):
        specs = [tf.TensorSpec((*dims, 1, 4), tf.float32), tf.TensorSpec((*dims, 3), tf.float32)]
        model = lower_function(_nms, specs).SerializeToString()
        assert limit_nms_top_k(model, 64, override=False) == model  # within the limit
        with pytest.raises(EngineError, match="TF_TRT_ALLOW_NMS_TOPK_OVERRIDE=1 clamps it to 8"):
            limit_nms_top_k(model, 8, override=False)
        got = run_onnx(onnx.load_from_string(limit_nms_top_k(model, 8, override=True)),
                       [boxes, scores])
        assert [g.shape for g in got] == [w.shape for w in want]  # shapes kept
        for g, w in zip(got[:3], want[:3], strict=True):
            np.testing.assert_array_equal(g[:, :8], w[:, :8])  # the 8 best, as TensorFlow
            assert not g[:, 8:].any()  # then padding
        np.testing.assert_array_equal(got[3], [8, 8])
    # CPU backends have no top-k limit: setting the variable is said to mean nothing, once
    monkeypatch.setenv("TF_TRT_ALLOW_NMS_TOPK_OVERRIDE", "1")
    with caplog.at_level(logging.WARNING, "tftrt"):
        for _ in range(2):
            relu_op("onnxruntime")([np.ones((1, 4), np.float32)])
    assert warnings_about(caplog, "TF_TRT_ALLOW_NMS_TOPK_OVERRIDE") == [
        "TF_TRT_ALLOW_NMS_TOPK_OVERRIDE is set but means nothing for the onnxruntime backend "
        "(the backend has no top-k limit): ignored"]


def _means_nothing(name: str, value: str, monkeypatch, caplog) -> None:
    monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, "tftrt"):
        for backend in ("onnxruntime", "openvino", "onnxruntime", "tensorrt"):
            env.note_backend(backend)
    said = warnings_about(caplog, name)
    assert len(said) == 3 and all("means nothing" in m for m in said), said
    assert env.VARIABLES[name].why_not in said[0]


def test_tf_trt_fixed_algorithm_id(monkeypatch, caplog) -> None:
    _means_nothing("TF_TRT_FIXED_ALGORITHM_ID", "3", monkeypatch, caplog)
    monkeypatch.setenv("TF_TRT_FIXED_ALGORITHM_ID", "three")
    with pytest.raises(EnvironmentVariableError, match="expected an integer"):
        env.get("TF_TRT_FIXED_ALGORITHM_ID")


def test_tf_debug_trt_allow_inefficient_transpose(monkeypatch, caplog) -> None:
    _means_nothing("TF_DEBUG_TRT_ALLOW_INEFFICIENT_TRANSPOSE", "1", monkeypatch, caplog)


def test_tf_trt_force_bilinear_resize_war(monkeypatch, caplog) -> None:
    _means_nothing("TF_TRT_FORCE_BILINEAR_RESIZE_WAR", "1", monkeypatch, caplog)


def test_tf_trt_experimental_features_disable_logger_filtering(monkeypatch, caplog) -> None:
    monkeypatch.setenv("TF_TRT_EXPERIMENTAL_FEATURES", "disable_logger_filtering")
    with caplog.at_level(logging.WARNING, "tftrt"):
        env.note_backend("openvino")
        env.note_backend("openvino")
    assert warnings_about(caplog, "disable_logger_filtering") == [
        "TF_TRT_EXPERIMENTAL_FEATURES=disable_logger_filtering means nothing for the openvino "
        "backend (tftrt filters no backend messages): ignored"]


# -- tftrt's own ------------------------------------------------------------------------

def test_tftrt_calibration_method(monkeypatch) -> None:
    assert calibration.calibration_method(None) == "entropy"
    monkeypatch.setenv("TFTRT_CALIBRATION_METHOD", "MinMax")
    assert calibration.calibration_method(None) == "minmax"
    assert calibration.calibration_method("percentile") == "percentile"  # the argument wins
    monkeypatch.setenv("TFTRT_CALIBRATION_METHOD", "kl")
    with pytest.raises(EnvironmentVariableError, match="expected one of entropy, minmax"):
        calibration.calibration_method(None)


def test_tftrt_log(monkeypatch, capsys) -> None:
    from tests.test_segment import make_ir

    # a -> b directly and through the native n: merging b into a's segment would close a cycle
    g = make_ir([("in", "a"), ("a", "b"), ("a", "n"), ("n", "b"), ("b", "out")],
                {"a", "b"})
    handler_records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(record)

    keep = Keep()
    logging.getLogger("tftrt").addHandler(keep)
    try:
        segment.segment_graph(g, minimum_segment_size=1)
        assert not [r for r in handler_records if r.levelno < logging.WARNING]
        monkeypatch.setenv("TFTRT_LOG", "segment=2,lowering=1")
        assert logs.configure() == {"segment": logging.DEBUG, "lowering": logging.INFO}
        segment.segment_graph(g, minimum_segment_size=2)
        debug = [r.getMessage() for r in handler_records if r.name == "tftrt.segment"
                 and r.levelno == logging.DEBUG]
        assert any("segment cut: b stays out of the segment of a" in m for m in debug), debug
        assert any("below minimum_segment_size=2" in m for m in debug), debug
        assert logging.getLogger("tftrt.capability").getEffectiveLevel() == logging.WARNING
        assert logs.configure("2")["runtime"] == logging.DEBUG  # a bare level: every module
        with pytest.raises(EnvironmentVariableError, match="unknown module 'segmnt'"):
            monkeypatch.setenv("TFTRT_LOG", "segmnt=2")
            logs.configure()
        logs.configure_from_env()  # at import: a warning, not an error
        assert any("verbose logs stay off" in r.getMessage() for r in handler_records)
    finally:
        logging.getLogger("tftrt").removeHandler(keep)
        logs.configure("")


def test_tftrt_log_engine_calls_are_cheap_when_off(monkeypatch) -> None:
    op = relu_op()
    x = np.ones((1, 4), np.float32)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("tftrt.runtime")
    logger.addHandler(keep := Keep())
    try:
        op([x])
        assert not [m for m in seen if "ran on the engine" in m]
        logs.configure("runtime=2")
        op([x])
        assert "TRTEngineOp_relu: shapes [1, 4] ran on the engine for profiles [1,4]" in seen
    finally:
        logger.removeHandler(keep)
        logs.configure("")


def test_tftrt_progress(monkeypatch, capsys) -> None:
    for value, shown in (("1", True), ("0", False), ("auto", False)):  # pytest's stderr: a file
        monkeypatch.setenv("TFTRT_PROGRESS", value)
        assert progress.enabled() is shown
        with progress.bar("Building engines", 2, "engine") as bar:
            bar.update(2)
        err = capsys.readouterr().err
        assert ("Building engines" in err) is shown and ("2/2" in err) is shown
    monkeypatch.setenv("TFTRT_PROGRESS", "sometimes")
    with pytest.raises(EnvironmentVariableError, match="TFTRT_PROGRESS"):
        progress.enabled()


def test_tftrt_partitioner(monkeypatch) -> None:
    from tftrt.compiler.partition import partitioner_name

    assert partitioner_name(None) == "union-find"
    monkeypatch.setenv("TFTRT_PARTITIONER", " singletons ")
    assert partitioner_name(None) == "singletons"
    assert partitioner_name("cost") == "cost"  # the argument wins
    # converting with it: tests/test_partitioners.py


def test_tftrt_portable_layers(monkeypatch) -> None:
    from tftrt.compiler.layers import portable_only

    assert not portable_only("FP32") and portable_only("INT8")
    monkeypatch.setenv("TFTRT_PORTABLE_LAYERS", "1")
    assert portable_only("FP32")
    monkeypatch.setenv("TFTRT_PORTABLE_LAYERS", "2")
    with pytest.raises(EnvironmentVariableError, match="TFTRT_PORTABLE_LAYERS='2'"):
        portable_only("FP32")


def test_tftrt_triton_home(monkeypatch, tmp_path) -> None:
    from tftrt.serving.triton import default_home

    monkeypatch.delenv("TFTRT_TRITON_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_home().startswith(str(tmp_path / "cache" / "tftrt" / "triton-"))
    monkeypatch.setenv("TFTRT_TRITON_HOME", str(tmp_path / "triton"))
    assert default_home() == str(tmp_path / "triton")
