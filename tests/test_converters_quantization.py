"""Quantization converters against TensorFlow: FakeQuant* and QuantizeAndDequantizeV2-V4.

The float lowerings repeat TensorFlow's kernels and must match bit for bit.
The QuantizeLinear/DequantizeLinear lowerings dequantize exactly but quantize
with ONNX's arithmetic: an element may be one quantization step away from
TensorFlow's when it lies (within float rounding) on a midpoint between two
levels, which random inputs hit about once in 10^5 elements.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec

import numpy as np
import onnx
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tftrt.compiler.lowering import node_info
from tftrt.plugins.manager import get_registry
from tftrt.testing import check_function, lower_function, run_onnx, trace

F32 = tf.float32
RANGES = [(-6.0, 6.0), (-1.3, 4.7), (0.5, 3.0), (-5.0, -1.0), (-0.02, 0.3)]


# -- helpers ------------------------------------------------------------------------------

def _inputs(rng: np.random.Generator, shape: tuple[int, ...], lo: float, hi: float,
            step: float, midpoints: bool = True) -> np.ndarray:
    """Values spread beyond [lo, hi], plus values on the levels (multiples of ``step``: 0
    is a level) and, with ``midpoints``, exactly between two levels."""
    width = hi - lo
    x = rng.uniform(lo - width / 2, hi + width / 2, shape)
    flat = x.reshape(-1)
    k = rng.integers(int(lo / step) - 3, int(hi / step) + 3, flat.size // 4)
    half = rng.choice([0.0, 0.5], k.size) if midpoints else 0.0
    flat[: k.size] = (k + half) * step
    return x.astype(np.float32)


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _within_a_step(fn: Callable[..., object], inputs: list[np.ndarray], step: float | np.ndarray,
                   specs: list[tf.TensorSpec] | None = None) -> onnx.ModelProto:
    """Lower ``fn`` and require TF's outputs, one ``step`` off for at most 1 in 1000
    elements (or 2)."""
    specs = specs or [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)) for x in inputs]
    model = lower_function(fn, specs)
    onnx.checker.check_model(model)
    got = run_onnx(model, inputs)[0]
    want = np.asarray(fn(*[tf.constant(x) for x in inputs]))
    assert got.shape == want.shape and got.dtype == want.dtype
    _assert_within_a_step(got, want, step)
    return model


def _assert_within_a_step(got: np.ndarray, want: np.ndarray, step: float | np.ndarray) -> None:
    diff = np.abs(got.astype(np.float64) - want)
    step = np.broadcast_to(np.asarray(step, np.float64), diff.shape)
    off = diff > 1e-6 * np.abs(want).max()
    assert (diff <= step * (1 + 1e-4) + 1e-6 * np.abs(want).max()).all(), diff.max()
    assert off.sum() <= max(2, 1e-3 * off.size), f"{off.sum()} of {off.size} elements differ"


def _exact(fn: Callable[..., object], inputs: list[np.ndarray],
           specs: list[tf.TensorSpec] | None = None) -> onnx.ModelProto:
    return check_function(fn, inputs, specs=specs, rtol=0.0, atol=0.0)


def _refusal(fn: Callable[..., object], specs: list[tf.TensorSpec], op: str) -> str | None:
    g, _, _ = trace(fn, specs)
    node = node_info(g, next(n for n in g.nodes if g.nodes[n]["op"] == op))
    return get_registry().converter(op).validate(node)


def _fq_step(lo: float, hi: float, bits: int, narrow: bool) -> float:
    return (hi - lo) / ((1 << bits) - 1 - int(narrow))


def _args(lo: float, hi: float, bits: int = 8, narrow: bool = False):
    return lambda x: tf.quantization.fake_quant_with_min_max_args(
        x, min=lo, max=hi, num_bits=bits, narrow_range=narrow)


def _vars(lo: float, hi: float, bits: int = 8, narrow: bool = False):
    return lambda x: tf.quantization.fake_quant_with_min_max_vars(
        x, min=tf.constant(lo, F32), max=tf.constant(hi, F32), num_bits=bits,
        narrow_range=narrow)


def _per_channel(lo: np.ndarray, hi: np.ndarray, bits: int = 8, narrow: bool = False):
    return lambda x: tf.quantization.fake_quant_with_min_max_vars_per_channel(
        x, tf.constant(lo, F32), tf.constant(hi, F32), num_bits=bits, narrow_range=narrow)


# -- FakeQuantWithMinMaxArgs / Vars ------------------------------------------------------

@pytest.mark.parametrize("op", ["args", "vars"])
@pytest.mark.parametrize("lo,hi", RANGES)
@pytest.mark.parametrize("narrow", [False, True])
def test_fake_quant_8_bits_is_qdq(op: str, lo: float, hi: float, narrow: bool) -> None:
    rng = np.random.default_rng(0)
    step = _fq_step(lo, hi, 8, narrow)
    fn = (_args if op == "args" else _vars)(lo, hi, 8, narrow)
    model = _within_a_step(fn, [_inputs(rng, (40, 50), lo, hi, step, midpoints=False)], step)
    assert _ops(model).count("QuantizeLinear") == 1 and "Floor" not in _ops(model)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    zero_point = next(t for t in model.graph.initializer if t.name == q.input[2])
    assert zero_point.data_type == onnx.TensorProto.INT8


@pytest.mark.parametrize("op", ["args", "vars"])
@pytest.mark.parametrize("lo,hi", RANGES)
@pytest.mark.parametrize("bits", [2, 4, 7, 12, 16])
@pytest.mark.parametrize("narrow", [False, True])
def test_fake_quant_other_bits_is_exact(op: str, lo: float, hi: float, bits: int,
                                        narrow: bool) -> None:
    rng = np.random.default_rng(bits)
    fn = (_args if op == "args" else _vars)(lo, hi, bits, narrow)
    model = _exact(fn, [_inputs(rng, (30, 40), lo, hi, _fq_step(lo, hi, bits, narrow))])
    assert "QuantizeLinear" not in _ops(model)


@pytest.mark.parametrize("op", ["args", "vars"])
def test_fake_quant_qdq_rounds_midpoints_to_even(op: str) -> None:
    """TF rounds a value exactly between two levels up, QuantizeLinear to the even level:
    those values (and only those) may come out one step lower."""
    step = 8.0 / 256  # the nudged grid of [-4, 3.96875] is exactly k/32
    levels = np.arange(-140, 140, dtype=np.float64)
    x = np.concatenate([levels * step, (levels + 0.5) * step]).astype(np.float32)
    fn = (_args if op == "args" else _vars)(-4.0, 3.96875)
    got = run_onnx(lower_function(fn, [tf.TensorSpec(x.shape, F32)]), [x])[0]
    want = np.asarray(fn(x))
    off = got != want
    assert off.any() and not off[: levels.size].any()
    np.testing.assert_allclose((want - got)[off], step)


def test_fake_quant_symmetric_narrow_range_has_zero_point_zero() -> None:
    """Narrow-range [-a, a] (the usual weight quantization) is symmetric int8."""
    x = np.random.default_rng(11).uniform(-3, 3, 5000).astype(np.float32)
    model = _within_a_step(_vars(-2.0, 2.0, narrow=True), [x], 4.0 / 254)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    zero_point = next(t for t in model.graph.initializer if t.name == q.input[2])
    assert onnx.numpy_helper.to_array(zero_point) == 0


def test_fake_quant_vars_zero_range_gives_zeros() -> None:
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    _exact(_vars(0.0, 0.0), [x])


def test_fake_quant_dynamic_batch() -> None:
    rng = np.random.default_rng(2)
    specs = [tf.TensorSpec([None, 16], F32)]
    for rows in (1, 7):
        x = _inputs(rng, (rows, 16), -1.0, 3.0, 4 / 255, midpoints=False)
        _within_a_step(_args(-1.0, 3.0), [x], 4 / 255, specs=specs)
        _exact(_vars(-1.0, 3.0, bits=5), [x], specs=specs)


# -- FakeQuantWithMinMaxVarsPerChannel --------------------------------------------------------

def _channel_ranges(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray]:
    lo = -rng.uniform(0.0, 3.0, d)
    hi = lo + rng.uniform(0.1, 5.0, d)
    lo[:2], hi[:2] = (-1.5, 0.7), (-0.5, 2.0)  # ranges without 0
    return lo.astype(np.float32), hi.astype(np.float32)


@pytest.mark.parametrize("shape", [(6,), (5, 6), (2, 3, 4, 6)])
@pytest.mark.parametrize("narrow", [False, True])
def test_fake_quant_per_channel(shape: tuple[int, ...], narrow: bool) -> None:
    rng = np.random.default_rng(len(shape))
    lo, hi = _channel_ranges(rng, shape[-1])
    x = rng.uniform(-5.0, 5.0, shape).astype(np.float32)
    step = (hi - lo) / (255 - int(narrow))
    model = _within_a_step(_per_channel(lo, hi, 8, narrow), [x], step)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    assert {a.name: a.i for a in q.attribute}["axis"] == len(shape) - 1
    _exact(_per_channel(lo, hi, 4, narrow), [x])


def test_fake_quant_per_channel_zero_channel_and_dynamic_batch() -> None:
    rng = np.random.default_rng(3)
    lo, hi = _channel_ranges(rng, 5)
    lo[2] = hi[2] = 0.0  # TF writes 0 in that channel
    specs = [tf.TensorSpec([None, 5], F32)]
    for rows in (3, 11):
        x = rng.uniform(-4.0, 4.0, (rows, 5)).astype(np.float32)
        _within_a_step(_per_channel(lo, hi), [x], np.maximum(hi - lo, 1) / 255, specs=specs)
        _exact(_per_channel(lo, hi, 6, True), [x], specs=specs)


def test_fake_quant_per_channel_keeps_nchw_layout() -> None:
    """After a convolution (held NCHW), the channel axis of the Q/DQ is ONNX axis 1."""
    rng = np.random.default_rng(4)
    filt = tf.constant(rng.standard_normal((1, 1, 3, 4)).astype(np.float32))
    lo, hi = _channel_ranges(rng, 4)

    def fn(x):
        y = tf.raw_ops.Conv2D(input=x, filter=filt, strides=[1, 1, 1, 1], padding="VALID")
        return _per_channel(lo, hi)(y)

    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    model = _within_a_step(fn, [x], (hi - lo) / 255)
    ops = _ops(model)
    assert ops.index("Conv") < ops.index("QuantizeLinear")
    assert "Transpose" not in ops[ops.index("Conv"):ops.index("DequantizeLinear")]
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    assert {a.name: a.i for a in q.attribute}["axis"] == 1


@pytest.mark.parametrize("bits", [8, 4])
def test_fake_quant_constant_weights_become_exact_int8(bits: int) -> None:
    """A fake-quantized constant is quantized at conversion time with TF's arithmetic."""
    rng = np.random.default_rng(5)
    weights = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    lo, hi = _channel_ranges(rng, 6)

    def only_weights(x):
        return x + _per_channel(lo, hi, bits, narrow=True)(tf.constant(weights))

    x = np.zeros_like(weights)
    model = _exact(only_weights, [x])
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert "QuantizeLinear" not in _ops(model) and len(dq) == 1
    levels = next(t for t in model.graph.initializer if t.name == dq[0].input[0])
    assert levels.data_type == onnx.TensorProto.INT8


# -- QuantizeAndDequantizeV2 / V3 / V4 ------------------------------------------------------

def _qdq(op: str, lo, hi, *, signed: bool = True, bits: int = 8, range_given: bool = True,
         mode: str = "HALF_TO_EVEN", narrow: bool = False, axis: int = -1):
    def fn(x):
        args = dict(input=x, input_min=tf.constant(lo, F32), input_max=tf.constant(hi, F32),
                    signed_input=signed, range_given=range_given, narrow_range=narrow, axis=axis)
        if op == "QuantizeAndDequantizeV3":
            return tf.raw_ops.QuantizeAndDequantizeV3(num_bits=tf.constant(bits), **args)
        raw = getattr(tf.raw_ops, op)
        return raw(num_bits=bits, round_mode=mode, **args)
    return fn


def _qdq_step(lo: float, hi: float, signed: bool, bits: int, narrow: bool) -> float:
    minq = (-(1 << (bits - 1)) + int(narrow)) if signed else 0
    maxq = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    steps = [hi / maxq] if hi > 0 else []
    if minq and lo < 0:
        steps.append(lo / minq)
    return max(steps)


@pytest.mark.parametrize("op", ["QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3",
                                "QuantizeAndDequantizeV4"])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("narrow", [False, True])
@pytest.mark.parametrize("lo,hi", [(-2.5, 3.5), (0.5, 3.0), (-4.0, -1.0), (-0.3, 0.3)])
def test_quantize_and_dequantize_8_bits_is_qdq(op: str, signed: bool, narrow: bool,
                                               lo: float, hi: float) -> None:
    rng = np.random.default_rng(6)
    fn = _qdq(op, lo, hi, signed=signed, narrow=narrow)
    width = max(abs(lo), abs(hi))
    x = rng.uniform(-1.5 * width, 1.5 * width, (30, 40)).astype(np.float32)
    step = _qdq_step(lo, hi, signed, 8, narrow) if (hi > 0 or (signed and lo < 0)) else 1.0
    model = _within_a_step(fn, [x], step)
    assert ("QuantizeLinear" in _ops(model)) == (hi > 0 or (signed and lo < 0))


@pytest.mark.parametrize("op", ["QuantizeAndDequantizeV2", "QuantizeAndDequantizeV4"])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("narrow", [False, True])
@pytest.mark.parametrize("mode", ["HALF_TO_EVEN", "HALF_UP"])
@pytest.mark.parametrize("bits", [8, 4, 12])
def test_quantize_and_dequantize_float_paths_are_exact(op: str, signed: bool, narrow: bool,
                                                       mode: str, bits: int) -> None:
    rng = np.random.default_rng(bits)
    x = rng.uniform(-4.0, 5.0, (30, 40)).astype(np.float32)
    x[0, :20] = np.arange(-10, 10) * _qdq_step(-2.5, 3.5, signed, bits, narrow) / 2  # ties
    # a range taken from the input at run time is always float arithmetic
    _exact(_qdq(op, -2.5, 3.5, signed=signed, bits=bits, narrow=narrow, mode=mode,
                range_given=False), [x])
    if bits != 8 or mode == "HALF_UP":
        model = _exact(_qdq(op, -2.5, 3.5, signed=signed, bits=bits, narrow=narrow,
                            mode=mode), [x])
        assert "QuantizeLinear" not in _ops(model)


def test_quantize_and_dequantize_v3_bits_input() -> None:
    x = np.random.default_rng(7).uniform(-3, 3, (10, 10)).astype(np.float32)
    _exact(_qdq("QuantizeAndDequantizeV3", -1.0, 2.0, bits=5), [x])
    _exact(_qdq("QuantizeAndDequantizeV3", -1.0, 2.0, bits=8, range_given=False), [x])


@pytest.mark.parametrize("axis", [0, 1, 3])
@pytest.mark.parametrize("range_given", [True, False])
def test_quantize_and_dequantize_per_axis(axis: int, range_given: bool) -> None:
    rng = np.random.default_rng(axis)
    shape = (3, 4, 2, 5)
    x = rng.uniform(-3.0, 4.0, shape).astype(np.float32)
    lo = -rng.uniform(0.5, 3.0, shape[axis]).astype(np.float32)
    hi = rng.uniform(0.5, 3.0, shape[axis]).astype(np.float32)
    if not range_given:
        for mode, signed in (("HALF_TO_EVEN", True), ("HALF_UP", False)):
            _exact(_qdq("QuantizeAndDequantizeV4", lo, hi, axis=axis, range_given=False,
                        mode=mode, signed=signed), [x])
        return
    # TF 2.21 takes per-axis ranges in V3 only (V2/V4 demand a scalar input_min)
    step = np.maximum(-lo / 128, hi / 127).reshape((-1,) + (1,) * (3 - axis))
    model = _within_a_step(_qdq("QuantizeAndDequantizeV3", lo, hi, axis=axis), [x], step)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    assert {a.name: a.i for a in q.attribute}["axis"] == axis
    _exact(_qdq("QuantizeAndDequantizeV3", lo, hi, axis=axis, bits=7, narrow=True), [x])
    reason = _refusal(_qdq("QuantizeAndDequantizeV4", lo, hi, axis=axis),
                      [tf.TensorSpec(shape, F32)], "QuantizeAndDequantizeV4")
    assert reason is not None and "QuantizeAndDequantizeV3" in reason


def test_quantize_and_dequantize_dynamic_batch() -> None:
    rng = np.random.default_rng(8)
    specs = [tf.TensorSpec([None, 8], F32)]
    for rows in (2, 9):
        x = rng.uniform(-3, 3, (rows, 8)).astype(np.float32)
        _within_a_step(_qdq("QuantizeAndDequantizeV2", -1.0, 2.0), [x], 1.0 / 128, specs=specs)
        _exact(_qdq("QuantizeAndDequantizeV2", -1.0, 2.0, range_given=False), [x], specs=specs)


@pytest.mark.parametrize("qdq", [
    _qdq("QuantizeAndDequantizeV3", np.array([-1.5, -1.5, 0.2], np.float32),
         np.full(3, 1.5, np.float32), narrow=True, axis=1),
    _qdq("QuantizeAndDequantizeV2", np.zeros(3, np.float32), np.ones(3, np.float32),
         range_given=False, narrow=True, axis=1),
    _qdq("QuantizeAndDequantizeV4", -1.5, 1.5, range_given=False, mode="HALF_UP"),
    _qdq("QuantizeAndDequantizeV2", -1.5, 1.5, signed=False, bits=6)],
    ids=["v3-per-axis", "v2-range-from-input", "v4-half-up", "v2-unsigned-6-bits"])
def test_quantize_and_dequantize_constant_is_exact(qdq: Callable[[tf.Tensor], tf.Tensor]
                                                   ) -> None:
    """A quantized constant becomes an 8-bit initializer and a DequantizeLinear."""
    weights = np.random.default_rng(9).standard_normal((4, 3)).astype(np.float32)

    def fn(x):
        return x + qdq(tf.constant(weights))

    model = _exact(fn, [np.zeros_like(weights)])
    assert "QuantizeLinear" not in _ops(model) and "DequantizeLinear" in _ops(model)


# -- refusals ----------------------------------------------------------------------------

def test_refusals() -> None:
    specs = [tf.TensorSpec([4, 3], F32)]
    reason = _refusal(_args(2.0, 1.0), specs, "FakeQuantWithMinMaxArgs")
    assert reason is not None and "min < max" in reason

    def tensor_min(x, lo):
        return tf.quantization.fake_quant_with_min_max_vars(x, min=lo, max=tf.constant(1.0))

    reason = _refusal(tensor_min, specs + [tf.TensorSpec([], F32)], "FakeQuantWithMinMaxVars")
    assert reason is not None and "constant" in reason
    lo, hi = np.array([-1, 2, 0], np.float32), np.array([1, 1, 0], np.float32)
    reason = _refusal(_per_channel(lo, hi), specs, "FakeQuantWithMinMaxVarsPerChannel")
    assert reason is not None and "min=2.0, max=1.0" in reason

    def tensor_bits(x, bits):
        return tf.raw_ops.QuantizeAndDequantizeV3(input=x, input_min=tf.constant(-1.0),
                                                  input_max=tf.constant(1.0), num_bits=bits)

    reason = _refusal(tensor_bits, specs + [tf.TensorSpec([], tf.int32)],
                      "QuantizeAndDequantizeV3")
    assert reason is not None and "num_bits" in reason

    def tensor_range(x, hi):
        return tf.raw_ops.QuantizeAndDequantizeV2(input=x, input_min=tf.constant(-1.0),
                                                  input_max=hi, range_given=True)

    reason = _refusal(tensor_range, specs + [tf.TensorSpec([], F32)], "QuantizeAndDequantizeV2")
    assert reason is not None and "constant" in reason
    reason = _refusal(_qdq("QuantizeAndDequantizeV2", 2.0, 1.0), specs,
                      "QuantizeAndDequantizeV2")
    assert reason is not None and "range" in reason.lower()

    def double(x):
        return tf.raw_ops.QuantizeAndDequantizeV2(input=tf.cast(x, tf.float64),
                                                  input_min=tf.constant(-1.0, tf.float64),
                                                  input_max=tf.constant(1.0, tf.float64))

    reason = _refusal(double, specs, "QuantizeAndDequantizeV2")
    assert reason is not None and "float32" in reason


# -- other engines ------------------------------------------------------------------------

@pytest.mark.skipif(find_spec("openvino") is None, reason="openvino is not installed")
def test_quantization_on_openvino() -> None:
    from tftrt.engines.openvino_backend import OpenVinoBackend
    from tftrt.plugins.types import BuildConfig

    rng = np.random.default_rng(10)
    lo, hi = _channel_ranges(rng, 8)
    x = rng.uniform(-4, 4, (16, 8)).astype(np.float32)
    cases = [(_args(-1.3, 4.7), 6.0 / 255), (_vars(-2.0, 2.0, 8, True), 4.0 / 254),
             (_per_channel(lo, hi, 8, True), (hi - lo) / 254), (_vars(-2.0, 3.0, 4), 5 / 15),
             (_qdq("QuantizeAndDequantizeV2", -2.5, 3.5), 2.5 / 128),
             (_qdq("QuantizeAndDequantizeV2", -2.5, 3.5, mode="HALF_UP", bits=6), 2.5 / 32)]
    for fn, step in cases:
        model = lower_function(fn, [tf.TensorSpec(x.shape, F32)])
        got = OpenVinoBackend().build(model.SerializeToString(), BuildConfig()).run([x])[0]
        _assert_within_a_step(got, np.asarray(fn(x)), step)


# -- random ranges -------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(lo=st.floats(-50.0, 10.0), width=st.floats(0.01, 60.0), bits=st.integers(2, 16),
       narrow=st.booleans(), op=st.sampled_from(["args", "vars"]), seed=st.integers(0, 2**16))
def test_fake_quant_random_ranges(lo: float, width: float, bits: int, narrow: bool, op: str,
                                  seed: int) -> None:
    lo, hi = float(np.float32(lo)), float(np.float32(lo + width))
    if not lo < hi:
        return
    rng = np.random.default_rng(seed)
    step = _fq_step(lo, hi, bits, narrow)
    x = _inputs(rng, (20, 30), lo, hi, step, midpoints=bits != 8)
    fn = (_args if op == "args" else _vars)(lo, hi, bits, narrow)
    if bits == 8:
        _within_a_step(fn, [x], step)
    else:
        _exact(fn, [x])


@settings(max_examples=30, deadline=None)
@given(lo=st.floats(-20.0, 5.0), width=st.floats(0.01, 40.0), bits=st.integers(2, 16),
       signed=st.booleans(), narrow=st.booleans(), range_given=st.booleans(),
       mode=st.sampled_from(["HALF_TO_EVEN", "HALF_UP"]), seed=st.integers(0, 2**16))
def test_quantize_and_dequantize_random_ranges(lo: float, width: float, bits: int, signed: bool,
                                               narrow: bool, range_given: bool, mode: str,
                                               seed: int) -> None:
    hi = lo + width
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo - width, hi + width, (20, 30)).astype(np.float32)
    fn = _qdq("QuantizeAndDequantizeV4", lo, hi, signed=signed, bits=bits, narrow=narrow,
              range_given=range_given, mode=mode)
    qdq = range_given and bits == 8 and mode == "HALF_TO_EVEN"
    if qdq and (hi > 0 or (signed and lo < 0)):
        _within_a_step(fn, [x], _qdq_step(lo, hi, signed, 8, narrow))
    else:
        _exact(fn, [x])
