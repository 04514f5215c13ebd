"""tftrt.testing: check_conversion / check_op run the real pipeline and say why a check fails."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf

from tests.test_quickstart import run_doc_blocks
from tftrt.converters import converter
from tftrt.plugins import get_registry, hookimpl, reset_registry
from tftrt.testing import (
    DEFAULT_TOLERANCES,
    Const,
    Report,
    Tolerance,
    _tolerance_for,
    available_backends,
    check_conversion,
    check_op,
)

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "converter-authors.md"


@pytest.fixture(autouse=True)
def _restore_registry():
    yield
    reset_registry()


def _plugin(*converters):
    class Plugin:
        @hookimpl
        def tftrt_op_converters(self):
            return list(converters)

    return Plugin()


@converter("Relu", priority=10)
def _relu_off_by_one(ctx, node):  # wrong on purpose: max(x, -1)
    x, perm = ctx.input_any(node, 0)
    ctx.set_output(node, 0, ctx.node("Max", [x, ctx.const(np.float32(-1))]), perm)


@converter("Relu", priority=10, validate=lambda node: "refused by the test's validator")
def _relu_refused(ctx, node):
    raise AssertionError("never lowered")


@converter("Relu", priority=10)
def _relu_bad_engine(ctx, node):  # a valid model whose engines cannot run it
    x = ctx.input(node, 0)
    ctx.set_output(node, 0, ctx.node("Reshape", [x, ctx.int64s([7, -1, 5])]))


@converter("AddV2", dtypes=None, priority=10)
def _add_plus_one(ctx, node):  # wrong on purpose for every dtype
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    one = ctx.const(np.ones((), node.attr("T")), "one")
    ctx.set_output(node, 0, ctx.node("Add", [ctx.node("Add", [a, b]), one]))


@pytest.fixture
def x(rng) -> np.ndarray:
    return rng.standard_normal((2, 3, 4, 5)).astype(np.float32)


# -- passing checks ----------------------------------------------------------------

def test_check_op_runs_every_available_backend(x) -> None:
    report = check_op("Relu", [x])
    assert isinstance(report, Report)
    assert report.backends == available_backends() and "onnxruntime" in report.backends
    assert report.converter_plugins["Relu"] == get_registry().converter_plugin("Relu")
    assert report.converters["Relu"] == get_registry().converter("Relu").name
    assert "Relu" in report.onnx_op_types
    np.testing.assert_array_equal(report.expected[0], np.maximum(x, 0))
    for result in report.results.values():
        np.testing.assert_array_equal(result.outputs[0], report.expected[0])
        assert result.precision == "FP32" and result.max_errors == (0.0,)
    assert report.engine in str(report)


def test_check_op_inputs_by_name_lists_consts_and_attrs(x) -> None:
    check_op("ConcatV2", {"values": [x, Const(x[:, :1])], "axis": Const(np.int32(1))},
             backends=["onnxruntime"])
    report = check_op("Cast", [x], {"DstT": tf.int32}, backends=["onnxruntime"])
    assert report.expected[0].dtype == np.int32
    report = check_op("AddV2", [x.astype(np.int32), Const(np.int32(3))])
    assert report.expected[0].dtype == np.int32


def test_check_conversion_with_several_outputs_and_dynamic_shapes(x) -> None:
    def fn(a, b):
        s = a + b
        return {"sum": s, "relu": tf.nn.relu(s)}

    specs = [tf.TensorSpec([None, 3, 4, 5], tf.float32)] * 2
    report = check_conversion(fn, [x, 2 * x], specs=specs, use_dynamic_shape=True)
    assert len(report.expected) == 2
    assert set(report.converter_plugins) == {"AddV2", "Relu"}


def test_nodes_no_output_uses_do_not_count(x) -> None:
    # Grappler rewrites t * t into Square and leaves the dead Mul node in the graph
    report = check_conversion(lambda t: tf.nn.relu(t * t + 0.5), [x])
    assert "Mul" not in report.converters and "Square" in report.converters


def test_a_third_party_converter_is_checked_like_a_builtin(x) -> None:
    @converter("Xdivy")
    def convert_xdivy(ctx, node):  # 0 where x == 0, else x / y
        a, b = ctx.input(node, 0), ctx.input(node, 1)
        zero = ctx.const(np.zeros((), node.attr("T")), "zero")
        ratio = ctx.node("Div", [a, b])
        ctx.set_output(node, 0, ctx.node("Where", [ctx.node("Equal", [a, zero]), zero, ratio]))

    registry = reset_registry(_plugin(convert_xdivy))
    a = np.where(x > 0.5, 0.0, x).astype(np.float32)
    y = np.where(x < -1.0, 0.0, x + 3).astype(np.float32)  # 0/0 must give 0, 1/0 inf
    report = check_op("Xdivy", [a, y], registry=registry)
    assert report.converters["Xdivy"].endswith("convert_xdivy")
    # with the process registry (reset_registry made it current) too
    check_conversion(tf.math.xdivy, [a, y])


# -- failing checks say why --------------------------------------------------------

def test_unconverted_nodes_are_listed_with_their_reasons(x) -> None:
    registry = reset_registry(_plugin(_relu_refused))
    with pytest.raises(AssertionError) as info:
        check_conversion(lambda a: tf.nn.relu(a * 2.0) + tf.math.igamma(a * a, a * a + 1.0),
                         [x], registry=registry)
    message = str(info.value)
    assert "did not convert into exactly one engine" in message
    assert "Relu (op Relu): refused by the test's validator" in message
    assert "Igamma (op Igamma): Op type Igamma is not supported." in message
    assert "Placeholder" not in message  # signature inputs/outputs are not reported


def test_several_engines_are_reported_with_their_nodes(x) -> None:
    with pytest.raises(AssertionError, match=r"2 engines(.|\n)*holds.*mul \(Mul\)"):
        check_conversion(lambda a, b: (a + b, tf.nn.relu(a * b)), [x, x])


def test_all_constant_inputs_are_refused(x) -> None:
    with pytest.raises(ValueError, match="at least one input that is not a Const"):
        check_op("Relu", [Const(x)])
    with pytest.raises(ValueError, match="no inputs"):
        check_op("Relu", {"x": x})
    with pytest.raises(ValueError, match="not a TensorFlow op"):
        check_op("NoSuchOp", [x])


def test_wrong_values_fail_with_the_error_and_its_bound(x) -> None:
    registry = reset_registry(_plugin(_relu_off_by_one))
    with pytest.raises(AssertionError, match=r"output 0 .*max \|error\| 1 exceeds"):
        check_op("Relu", [x], registry=registry)
    check_op("Relu", [x], registry=registry, tolerance=Tolerance(atol=1.0))
    with pytest.raises(AssertionError):
        check_op("Relu", [x], registry=registry, tolerance=0.1)  # 0.1 * max|x| < 1
    check_op("Relu", [x], registry=registry, tolerance={np.float32: Tolerance(atol=1.0)})


def test_integers_must_match_exactly(x) -> None:
    registry = reset_registry(_plugin(_add_plus_one))
    ints = (x * 10).astype(np.int32)
    with pytest.raises(AssertionError, match="exact match required"):
        check_op("AddV2", [ints, ints], registry=registry, backends=["onnxruntime"])
    with pytest.raises(AssertionError, match="exceeds"):
        check_op("AddV2", [x, x], registry=registry, backends=["onnxruntime"])


def test_an_engine_that_cannot_run_fails_instead_of_falling_back(x) -> None:
    registry = reset_registry(_plugin(_relu_bad_engine))
    with pytest.raises(AssertionError, match="did not run"):
        check_op("Relu", [x], registry=registry, backends=["onnxruntime"])


def test_backends_must_exist_and_be_available(x) -> None:
    report = check_op("Relu", [x], backends=["onnxruntime"])
    assert report.backends == ["onnxruntime"]
    with pytest.raises(ValueError, match="unknown engine backend"):
        check_op("Relu", [x], backends=["nosuch"])
    if "tensorrt" not in available_backends():
        with pytest.raises(ValueError, match="not available"):
            check_op("Relu", [x], backends=["tensorrt"])


def test_tolerances_per_dtype() -> None:
    f32, f16, i32 = np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.int32)
    assert _tolerance_for(f32, None) == DEFAULT_TOLERANCES[f32] == Tolerance(1e-5, 1e-6)
    assert _tolerance_for(f16, None).rtol == 1e-2
    assert _tolerance_for(i32, None) == Tolerance()
    assert _tolerance_for(f32, 1e-3) == Tolerance(1e-3, 1e-6)
    assert _tolerance_for(i32, 1e-3) == Tolerance()  # a float never loosens integers
    spec = {"float16": 0.1, tf.int32: Tolerance(atol=1)}
    assert _tolerance_for(f16, spec) == Tolerance(0.1, 1e-3)
    assert _tolerance_for(i32, spec) == Tolerance(atol=1)
    assert _tolerance_for(f32, spec) == DEFAULT_TOLERANCES[f32]


# -- the converter authors' guide runs ---------------------------------------------

def test_converter_authors_guide_runs(capsys) -> None:
    ns = run_doc_blocks(DOC)
    out = capsys.readouterr().out
    assert "The input 1 of CumulativeLogsumexp must be a constant" in out
    assert re.search(r"op 'CumulativeLogsumexp' has converters from .* at the same priority 0",
                     out)
    assert ns["report"].converters["Relu"].endswith("convert_relu_as_max")
    # the guide restored the registry
    assert get_registry().converter("CumulativeLogsumexp") is not ns["convert_logcumsumexp"]
