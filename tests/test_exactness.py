"""Integer paths: value ranges, what each backend declares it computes exactly, and the
capability pass that joins them (a converter knows no backend)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tensorflow as tf
from onnx import helper, numpy_helper

from tftrt.compiler import capability, constfold, intervals
from tftrt.engines.openvino_backend import OPENVINO_LIMITS
from tftrt.plugins.manager import get_registry
from tftrt.plugins.types import NumericLimits, numeric_limits
from tftrt.testing import check_conversion, trace


def _graph(fn, specs):
    """The traced function's IR, constants folded (as the pipeline does before capability)."""
    g, _, _ = trace(fn, specs)
    return constfold.fold_constants(g)


def _ranges_of(fn, specs):
    """(node name -> interval of its output 0, the graph)."""
    g = _graph(fn, specs)
    return {ref.split(":")[0]: iv for ref, iv in intervals.value_ranges(g).items()}, g


def test_position_arithmetic_has_known_ranges() -> None:
    def fn(x):
        n = tf.shape(x)[1]
        pos = tf.range(n)
        first = tf.argmax(x, axis=1, output_type=tf.int64)
        wrapped = tf.where(first < 0, first + tf.cast(n, tf.int64), first)
        return pos * 2 + 1, wrapped, pos + 1

    ranges, g = _ranges_of(fn, [tf.TensorSpec([2, None], tf.float32)])
    where = next(n for n, d in g.nodes(data=True) if d["op"] == "SelectV2")
    assert ranges[where] == (0.0, intervals.DIM_MAX - 1)  # argmax < 0 never holds
    adds = sorted(ranges[n] for n, d in g.nodes(data=True) if d["op"] == "AddV2"
                  and d["output_dtypes"][0] == np.int32)
    # pos + 1 stays within int32; pos * 2 + 1 may wrap around, so it can be anything
    assert adds == [(-2.0 ** 31, 2.0 ** 31 - 1), (1.0, intervals.DIM_MAX + 1)]


def test_a_select_branch_is_ranged_where_its_condition_holds() -> None:
    """DeBERTa's log buckets: where |rel| < 4 the branch is a constant, elsewhere log(|rel|)
    is taken of values >= 4, so the float log (and the int64 cast back) are bounded."""
    def fn(x):
        n = tf.shape(x, out_type=tf.int64)[1]
        rel = tf.range(n)[:, None] - tf.range(n)[None, :]
        mid = tf.constant(4, tf.int64)
        abs_pos = tf.where((rel < mid) & (rel > -mid), mid - 1, tf.abs(rel))
        log_pos = tf.math.ceil(tf.math.log(tf.cast(abs_pos, tf.float32) / 4.0) * 3.0)
        return tf.cast(log_pos, tf.int64) + mid

    ranges, g = _ranges_of(fn, [tf.TensorSpec([2, None], tf.float32)])
    (where,) = [n for n, d in g.nodes(data=True) if d["op"] == "SelectV2"]
    assert ranges[where] == (3.0, intervals.DIM_MAX)
    (log,) = [n for n, d in g.nodes(data=True) if d["op"] == "Log"]
    assert ranges[log][0] > -1.0  # log of values >= 3/4, not of 0
    out = [n for n, d in g.nodes(data=True) if d["op"] == "AddV2"
           and d["output_dtypes"][0] == np.int64]
    assert max(abs(v) for n in out for v in ranges[n]) < 100


def test_unbounded_inputs_have_their_dtype_range() -> None:
    ranges, g = _ranges_of(lambda i: i + 1, [tf.TensorSpec([3], tf.int64)])
    (add,) = [n for n, d in g.nodes(data=True) if d["op"] == "AddV2"]
    assert ranges[add][1] == float(np.iinfo(np.int64).max)


def _limits_reason(fn, specs, backend) -> dict[str, str | None]:
    g = _graph(fn, specs)
    marked = capability.mark_supported(g, get_registry(), backend=backend)
    return {d["op"]: d["reason"] for _, d in marked.nodes(data=True)
            if d["op"] not in ("Placeholder", "Const", "Identity")}


class _Declares:
    name = "narrow"

    def __init__(self, limits: NumericLimits) -> None:
        self._limits = limits

    def numeric_limits(self) -> NumericLimits:
        return self._limits


def test_a_backend_computing_int64_in_32_bits_keeps_unbounded_int64_native() -> None:
    reasons = _limits_reason(lambda i: (i * 3) - 1, [tf.TensorSpec([4], tf.int64)],
                             _Declares(OPENVINO_LIMITS))
    assert "computes int64 in 32 bits" in reasons["Mul"]
    unlimited = _limits_reason(lambda i: (i * 3) - 1, [tf.TensorSpec([4], tf.int64)],
                               _Declares(NumericLimits()))
    assert unlimited["Mul"] is None and unlimited["Sub"] is None


def test_int32_division_is_exact_only_where_the_backend_divides_integers() -> None:
    def fn(x):
        return tf.math.floordiv(x, 7)

    reasons = _limits_reason(fn, [tf.TensorSpec([4], tf.int32)], _Declares(OPENVINO_LIMITS))
    assert "computes integer Div" in reasons["FloorDiv"]

    def bounded(x):
        return tf.math.floordiv(tf.range(tf.shape(x)[0]) % 1000, 7)

    reasons = _limits_reason(bounded, [tf.TensorSpec([None], tf.float32)],
                             _Declares(OPENVINO_LIMITS))
    assert reasons["FloorDiv"] is None


def test_backends_without_a_declaration_are_exact() -> None:
    class Plain:
        name = "plain"

    assert numeric_limits(Plain()).unlimited
    assert numeric_limits(get_registry().backend("onnxruntime")).unlimited
    assert not numeric_limits(get_registry().backend("openvino")).unlimited


INT_EXPRESSIONS = {
    "floordiv": lambda x, y: tf.math.floordiv(x, y),
    "floormod": lambda x, y: tf.math.floormod(x, y),
    "abs_neg": lambda x, y: tf.abs(x) - tf.negative(y),
    "sign_max": lambda x, y: tf.sign(x) * tf.maximum(x, y),
    "compare": lambda x, y: tf.cast(x < y, x.dtype) + tf.cast(x >= y, x.dtype) * 2,
    "prod_of_shape": lambda x, y: tf.reduce_prod(tf.shape(x, out_type=x.dtype)) * y,
    "cumsum": lambda x, y: tf.cumsum(x, axis=1) - y,
    "select": lambda x, y: tf.where(x > y, x, y) + 1,
}


@pytest.mark.parametrize("name", sorted(INT_EXPRESSIONS))
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_arithmetic_matches_tensorflow(name: str, dtype) -> None:
    a = np.array([[7, -7, 13, 0, -1, 5]], dtype)
    b = np.array([[2, 2, -4, 3, 3, -5]], dtype)
    check_conversion(INT_EXPRESSIONS[name], [a, b])


def test_uint8_images_convert_through_their_cast() -> None:
    img = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    report = check_conversion(lambda x: tf.cast(x, tf.float32) * (1.0 / 255.0) + 0.5, [img])
    assert "Cast" in report.onnx_op_types


# -- OpenVINO keeps its declaration: measured, not assumed ------------------------------

def _run_openvino(nodes, inputs, inits, out_type):
    import openvino as ov

    ins = [helper.make_tensor_value_info(f"x{k}", helper.np_dtype_to_tensor_dtype(v.dtype),
                                         list(v.shape)) for k, v in enumerate(inputs)]
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", out_type,
                                                                              None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled(list(inputs))[0]


BIG = np.array([[(1 << 30) + 1, -(1 << 30) - 3, 16777217, -16777219, 5, 0]], np.int32)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Max", "Min", "Abs", "Neg", "Sign"])
def test_openvino_is_exact_on_int32_of_any_magnitude(op: str) -> None:
    assert op in OPENVINO_LIMITS.exact_integer_ops
    one_input = op in ("Abs", "Neg", "Sign")
    other = np.array([[3, 7, -1, 2, 1 << 20, -9]], np.int32)
    inputs = [BIG] if one_input else [BIG, other]
    node = helper.make_node(op, [f"x{k}" for k in range(len(inputs))], ["y"])
    got = _run_openvino([node], inputs, [], onnx.TensorProto.INT32)
    ref = {"Add": BIG + other, "Sub": BIG - other, "Mul": BIG * other,
           "Max": np.maximum(BIG, other), "Min": np.minimum(BIG, other), "Abs": np.abs(BIG),
           "Neg": -BIG, "Sign": np.sign(BIG)}[op]
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("op", ["Div", "Mod", "ReduceSum"])
def test_openvino_ops_outside_the_exact_list_are_exact_within_float_exact(op: str) -> None:
    assert op not in OPENVINO_LIMITS.exact_integer_ops
    limit = OPENVINO_LIMITS.float_exact
    x = np.array([[limit - 1, -(limit - 3), 12345, 7]], np.int32)
    d = np.array([[3, 7, -5, 2]], np.int32)
    if op == "ReduceSum":
        node = helper.make_node(op, ["x0", "axes"], ["y"], keepdims=0)
        inits = [numpy_helper.from_array(np.array([0], np.int64), "axes")]
        got = _run_openvino([node], [x], inits, onnx.TensorProto.INT32)
        assert np.array_equal(got, x.sum(0))
        return
    node = helper.make_node(op, ["x0", "x1"], ["y"])
    got = _run_openvino([node], [x, d], [], onnx.TensorProto.INT32)
    ref = np.fix(x / d).astype(np.int32) if op == "Div" else np.mod(x, d)
    assert np.array_equal(got, ref)


def test_openvino_runs_int64_in_32_bits_exactly_within_the_declared_range() -> None:
    limit = OPENVINO_LIMITS.narrowed[np.dtype(np.int64)]
    x = np.array([[limit - 5, -limit + 5, 3]], np.int64)
    node = helper.make_node("Add", ["x0", "x1"], ["y"])
    got = _run_openvino([node], [x, np.array([[4, -4, 1]], np.int64)], [],
                        onnx.TensorProto.INT64)
    assert np.array_equal(got, x + np.array([[4, -4, 1]]))

