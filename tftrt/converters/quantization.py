"""Quantization ops: FakeQuantWithMinMax{Args,Vars,VarsPerChannel}, QuantizeAndDequantizeV2-V4.

Each op becomes explicit quantization, a QuantizeLinear/DequantizeLinear pair,
when TensorFlow quantizes to an 8-bit grid that Q/DQ can express:

* FakeQuant with ``num_bits`` 8: int8 with zero point ``nudged_zero_point - 128``
  (0 for symmetric ranges such as narrow-range weights), the range clamped
  first when ``narrow_range`` leaves out the lowest level;
* QuantizeAndDequantize with a given range, ``num_bits`` 8 and rounding half to
  even: zero point 0, int8 (``signed_input``) or uint8.

The dequantized values are TensorFlow's bit for bit. Quantizing divides by the
scale where TensorFlow multiplies by its inverse (and for FakeQuant subtracts
the nudged minimum first and rounds half up), so an input lying within float
rounding of a midpoint between two levels, or exactly on one, may land one
level away from TensorFlow's. A constant input (weights) is quantized here with
TensorFlow's arithmetic and becomes an 8-bit initializer plus DequantizeLinear
(for ``num_bits`` up to 8), exact.

Everything else (other bit widths, rounding half up, a range taken from the
input at run time) is lowered to the float arithmetic of TensorFlow's kernel,
step for step, which reproduces it exactly.

The ops work on any layout: a tensor held NCHW stays NCHW, and the per-channel
axis follows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import numpy_helper

from tftrt.converters.base import converter, dtype_name, refusal
from tftrt.converters.context import LoweringContext, NodeInfo, Perm, invert_perm

F32 = np.float32
_FLOAT = np.dtype(np.float32)
_FLT_MAX = np.finfo(np.float32).max


# -- TensorFlow's parameters, in TensorFlow's float32 arithmetic ---------------------------

@dataclass(frozen=True)
class FakeQuantGrid:
    """TF's nudged FakeQuant parameters, one entry per channel (one for per-tensor).

    TF computes ``floor(v - quant_zero + 0.5) * scale`` with
    ``v = (clamp(x, nudged_min, nudged_max) - nudged_min) * inv_scale`` (``/ scale``
    for FakeQuantWithMinMaxVars); channels whose min and max are both 0 give 0.
    """

    nudged_min: np.ndarray
    nudged_max: np.ndarray
    scale: np.ndarray
    inv_scale: np.ndarray
    quant_zero: np.ndarray  # float: the integer level of real 0, counted from the lowest
    zero_point: np.ndarray  # int: TF's nudged zero point (quant_min-based)
    quant_min: int
    quant_max: int
    zero: np.ndarray  # bool: channels TF sets to 0


def _std_round(v: np.float32) -> int:
    """std::round: half away from zero."""
    return int(np.sign(v) * np.floor(abs(float(v)) + 0.5))


def fake_quant_grid(mins: np.ndarray, maxs: np.ndarray, num_bits: int,
                    narrow_range: bool) -> FakeQuantGrid:
    """TF's Nudge() for each (min, max) pair."""
    qmin, qmax = (1 if narrow_range else 0), (1 << num_bits) - 1
    qminf, qmaxf = F32(qmin), F32(qmax)
    fields: dict[str, list] = {k: [] for k in ("nudged_min", "nudged_max", "scale", "inv_scale",
                                               "quant_zero", "zero_point", "zero")}
    for lo, hi in zip(np.asarray(mins, F32).reshape(-1), np.asarray(maxs, F32).reshape(-1),
                      strict=True):
        zero = bool(lo == 0 and hi == 0)
        if zero:  # placeholders that turn every input into 0
            lo, hi = F32(0), F32(1)
        scale = F32(F32(hi - lo) / F32(qmaxf - qminf))
        inv = F32(F32(qmaxf - qminf) / F32(hi - lo))
        from_min = F32(qminf - F32(lo / scale))
        if from_min < qminf:
            zp = qmin
        elif from_min > qmaxf:
            zp = qmax
        else:
            zp = _std_round(from_min) & 0xFFFF  # a uint16 in TF
        nmin = F32(F32(qminf - F32(zp)) * scale)
        nmax = F32(F32(qmaxf - F32(zp)) * scale)
        qz = np.floor(F32(F32(-nmin * inv) + F32(0.5)))
        if zero:
            nmin = nmax = qz = F32(0)
            zp = qmin
        for k, v in (("nudged_min", nmin), ("nudged_max", nmax), ("scale", scale),
                     ("inv_scale", inv), ("quant_zero", qz), ("zero_point", zp),
                     ("zero", zero)):
            fields[k].append(v)
    arrays = {k: np.asarray(v, dtype=np.int64 if k == "zero_point" else
                            bool if k == "zero" else F32) for k, v in fields.items()}
    return FakeQuantGrid(quant_min=qmin, quant_max=qmax, **arrays)


def fake_quant_levels(x: np.ndarray, grid: FakeQuantGrid, divide: bool) -> np.ndarray:
    """TF's integer level ``floor(v - quant_zero + 0.5)`` of each element of ``x`` (last
    axis = channel), as float32; TF's output is this times ``grid.scale``."""
    x = np.asarray(x, F32)
    c = np.maximum(np.minimum(x, grid.nudged_max), grid.nudged_min)
    shifted = (c - grid.nudged_min).astype(F32)
    v = (shifted / grid.scale if divide else shifted * grid.inv_scale).astype(F32)
    levels = np.floor(((v - grid.quant_zero).astype(F32) + F32(0.5)).astype(F32))
    return np.where(grid.zero, F32(0), levels).astype(F32)


@dataclass(frozen=True)
class QdqRange:
    """TF's ComputeQuantizationRange for each channel: clamp range, scale, inverse."""

    min_range: np.ndarray
    max_range: np.ndarray
    scale: np.ndarray
    inv_scale: np.ndarray
    min_quantized: int
    max_quantized: int


def quantized_bounds(signed: bool, num_bits: int, narrow_range: bool) -> tuple[int, int]:
    if signed:
        low = -(1 << (num_bits - 1))
        return (low + 1 if narrow_range else low), (1 << (num_bits - 1)) - 1
    return 0, (1 << num_bits) - 1


def qdq_range(mins: np.ndarray, maxs: np.ndarray, signed: bool, num_bits: int,
              narrow_range: bool) -> QdqRange:
    """TF's ComputeQuantizationRange for each (min, max) pair."""
    minq, maxq = quantized_bounds(signed, num_bits, narrow_range)
    fminq, fmaxq = F32(minq), F32(maxq)
    out: dict[str, list] = {"min_range": [], "max_range": [], "scale": [], "inv_scale": []}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for lo, hi in zip(np.asarray(mins, F32).reshape(-1), np.asarray(maxs, F32).reshape(-1),
                          strict=True):
            from_min = F32(fminq / lo) if F32(fminq * lo) > 0 else _FLT_MAX
            from_max = F32(fmaxq / hi) if F32(fmaxq * hi) > 0 else _FLT_MAX
            if from_min < from_max:
                scale, inv = from_min, F32(lo / fminq)
                hi = F32(fmaxq * inv)
            else:
                scale, inv = from_max, F32(hi / fmaxq)
                lo = F32(fminq * inv)
            for k, v in (("min_range", lo), ("max_range", hi), ("scale", scale),
                         ("inv_scale", inv)):
                out[k].append(v)
    return QdqRange(min_quantized=minq, max_quantized=maxq,
                    **{k: np.asarray(v, F32) for k, v in out.items()})


def qdq_levels(x: np.ndarray, r: QdqRange, range_given: bool, half_to_even: bool
               ) -> np.ndarray:
    """TF's integer levels ``round(clamp(x) * scale)`` of ``x`` (last axis = channel), as
    float32; TF's output is this times ``r.inv_scale``. No clamping without a given range."""
    x = np.asarray(x, F32)
    if range_given:
        x = np.maximum(np.minimum(x, r.max_range), r.min_range)
    with np.errstate(over="ignore", invalid="ignore"):
        v = (x * r.scale).astype(F32)
        if half_to_even:
            return np.rint(v).astype(F32)
        return np.floor((v + F32(0.5)).astype(F32)).astype(F32)


# -- layout helpers -----------------------------------------------------------------------

def _channel_axis(perm: Perm, axis: int, rank: int | None) -> int:
    """ONNX axis of TF axis ``axis`` (negative counts from the end) of a tensor held
    with ``perm``."""
    if perm is not None:
        return invert_perm(perm)[axis % len(perm)]
    if axis < 0 and rank is not None:
        return axis + rank
    return axis


def _held_rank(ctx: LoweringContext, node: NodeInfo) -> int | None:
    perm = ctx.input_any(node, 0)[1]
    return len(perm) if perm is not None else node.rank(0)


def _per_channel(values: np.ndarray, onnx_axis: int, rank: int | None) -> np.ndarray:
    """``values`` ([d], or one value for per-tensor) shaped to broadcast along ``onnx_axis``."""
    values = np.asarray(values)
    if values.size == 1:
        return values.reshape(())
    if onnx_axis < 0:
        trailing = -onnx_axis - 1
    else:
        assert rank is not None, "per-channel values need the input rank"
        trailing = rank - 1 - onnx_axis
    return values.reshape((-1,) + (1,) * trailing)


# -- emitted graphs ------------------------------------------------------------------------

def _qparams(ctx: LoweringContext, scale: np.ndarray, zero_point: np.ndarray, onnx_axis: int,
             hint: str) -> tuple[str, str, dict[str, int]]:
    """Scale and zero-point initializers and the Q/DQ attrs: per tensor for one value,
    else per channel along ``onnx_axis``."""
    scale = np.asarray(scale, F32)
    if scale.size == 1:
        return (ctx.const(scale.reshape(()), f"{hint}/scale"),
                ctx.const(zero_point.reshape(()), f"{hint}/zero_point"), {})
    return (ctx.const(scale.reshape(-1), f"{hint}/scale"),
            ctx.const(zero_point.reshape(-1), f"{hint}/zero_point"), {"axis": onnx_axis})


def _qdq(ctx: LoweringContext, x: str, scale: np.ndarray, zero_point: np.ndarray,
         onnx_axis: int, hint: str) -> str:
    """QuantizeLinear then DequantizeLinear."""
    s, z, attrs = _qparams(ctx, scale, zero_point, onnx_axis, hint)
    q = ctx.node("QuantizeLinear", [x, s, z], hint=f"{hint}/q", **attrs)
    return ctx.node("DequantizeLinear", [q, s, z], hint=hint, **attrs)


def _held_const(node: NodeInfo, perm: Perm) -> np.ndarray | None:
    """Input 0 as a float32 constant in the layout ``perm``, if it is a constant."""
    value = node.const(0)
    if value is None:
        return None
    value = np.asarray(value, F32)
    return value if perm is None else np.transpose(value, perm)


def _channel_last(fn, held: np.ndarray, axis: int, per_channel: bool) -> np.ndarray:
    """``fn`` applied to ``held`` with its channel axis ``axis`` moved last and back."""
    if not per_channel:
        return fn(held)
    return np.moveaxis(fn(np.moveaxis(held, axis, -1)), -1, axis)


def _const_result(ctx: LoweringContext, levels: np.ndarray, scale: np.ndarray,
                  zero_point: np.ndarray | None, axis: int, hint: str) -> str:
    """TF's output ``levels * scale`` for a constant input: an 8-bit constant dequantized
    when ``zero_point`` is given (levels relative to it), else a float constant."""
    rank = levels.ndim
    if zero_point is not None:
        q = levels.astype(np.int64) + _per_channel(zero_point.astype(np.int64), axis, rank)
        return _dq_const(ctx, q.astype(zero_point.dtype), scale, zero_point, axis, hint)
    return ctx.const((levels * _per_channel(np.asarray(scale, F32), axis, rank)).astype(F32),
                     f"{hint}/value")


def _dq_const(ctx: LoweringContext, q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
              onnx_axis: int, hint: str) -> str:
    """DequantizeLinear of the quantized constant ``q``."""
    s, z, attrs = _qparams(ctx, scale, zero_point, onnx_axis, hint)
    return ctx.node("DequantizeLinear", [ctx.const(q, f"{hint}/levels"), s, z], hint=hint,
                    **attrs)


def _clamp(ctx: LoweringContext, x: str, lo: np.ndarray, hi: np.ndarray, onnx_axis: int,
           rank: int | None, hint: str) -> str:
    """``x`` clamped to [lo, hi] as TF does it: ``max(min(x, hi), lo)``."""
    upper = ctx.const(_per_channel(np.asarray(hi, F32), onnx_axis, rank), f"{hint}/hi")
    lower = ctx.const(_per_channel(np.asarray(lo, F32), onnx_axis, rank), f"{hint}/lo")
    x = ctx.node("Min", [x, upper], hint=f"{hint}/min")
    return ctx.node("Max", [x, lower], hint=f"{hint}/max")


def _zeros_like(ctx: LoweringContext, x: str, hint: str) -> str:
    shape = ctx.node("Shape", [x], hint=f"{hint}/shape")
    return ctx.node("ConstantOfShape", [shape], hint=hint,
                    value=numpy_helper.from_array(np.zeros(1, F32)))


# -- FakeQuant ----------------------------------------------------------------------------

def _num_bits(node: NodeInfo) -> int:
    return int(node.attr("num_bits", 8))


def _fake_quant_range(node: NodeInfo) -> tuple[np.ndarray, np.ndarray] | str:
    """The (min, max) arrays of a FakeQuant node, or why it cannot convert."""
    if node.op == "FakeQuantWithMinMaxArgs":
        lo, hi = F32(node.attr("min", -6.0)), F32(node.attr("max", 6.0))
        if not lo < hi:
            return f"FakeQuantWithMinMaxArgs needs min < max, got min={lo}, max={hi}"
        return np.asarray([lo]), np.asarray([hi])
    mins, maxs = node.const(1), node.const(2)
    if mins is None or maxs is None:
        return f"The min and max inputs of {node.op} must be constants"
    mins, maxs = np.asarray(mins, F32), np.asarray(maxs, F32)
    if node.op == "FakeQuantWithMinMaxVars":
        if mins.size != 1 or maxs.size != 1:
            return f"min and max of {node.op} must be scalars"
    else:
        if mins.ndim != 1 or mins.shape != maxs.shape:
            return (f"min and max of {node.op} must be vectors of one size, got "
                    f"{list(mins.shape)} and {list(maxs.shape)}")
        shape = node.input_shapes[0]
        if shape is not None and (not shape or shape[-1] not in (None, mins.shape[0])):
            return (f"min and max of {node.op} have {mins.shape[0]} entries; the last "
                    f"dimension of the input is {shape[-1] if shape else None}")
    mins, maxs = mins.reshape(-1), maxs.reshape(-1)
    bad = ~((mins < maxs) | ((mins == 0) & (maxs == 0)))
    if bad.any():
        k = int(np.argmax(bad))
        return f"{node.op} needs min < max (or both 0), got min={mins[k]}, max={maxs[k]}"
    return mins, maxs


def _validate_fake_quant(node: NodeInfo) -> str | None:
    dt = node.input_dtypes[0]
    if dt is not None and dt != _FLOAT:
        return f"{node.op} supports float32 only, got {dtype_name(dt)}"
    if not 2 <= _num_bits(node) <= 16:
        return f"num_bits of {node.op} must be in [2, 16], got {_num_bits(node)}"
    return refusal(_fake_quant_range(node))


@converter("FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars",
           "FakeQuantWithMinMaxVarsPerChannel", dtypes=None, validate=_validate_fake_quant,
           restrictions="min and max must be constant (attrs for Args) with min < max or both "
                        "0; float32; Q/DQ for num_bits 8, exact float arithmetic otherwise")
def convert_fake_quant(ctx: LoweringContext, node: NodeInfo) -> None:
    rng = _fake_quant_range(node)
    assert not isinstance(rng, str), rng
    grid = fake_quant_grid(*rng, _num_bits(node), bool(node.attr("narrow_range", False)))
    divide = node.op == "FakeQuantWithMinMaxVars"
    per_channel = node.op == "FakeQuantWithMinMaxVarsPerChannel"
    name = node.name
    x, perm = ctx.input_any(node, 0)
    rank = _held_rank(ctx, node)
    axis = _channel_axis(perm, -1, rank)
    eight_bit = _num_bits(node) == 8
    # the int8 grid: level k (relative to real 0) is k + zero_point_8
    zp8 = (grid.quant_zero.astype(np.int64) + grid.quant_min - 128).astype(np.int8)

    held = _held_const(node, perm)
    if held is not None:
        levels = _channel_last(lambda v: fake_quant_levels(v, grid, divide), held,
                               axis % held.ndim if held.ndim else 0, per_channel)
        y = _const_result(ctx, levels, grid.scale, zp8 if _num_bits(node) <= 8 else None,
                          axis, name)
        ctx.set_output(node, 0, y, perm)
        return

    if not per_channel and grid.zero.all():
        ctx.set_output(node, 0, _zeros_like(ctx, x, name), perm)
        return
    if eight_bit:
        if grid.quant_min > 0 or grid.zero.any():
            # narrow range: keep off the lowest int8 level
            x = _clamp(ctx, x, grid.nudged_min, grid.nudged_max, axis, rank, f"{name}/clamp")
        ctx.set_output(node, 0, _qdq(ctx, x, grid.scale, zp8, axis, name), perm)
        return

    def vec(values: np.ndarray, what: str) -> str:
        return ctx.const(_per_channel(np.asarray(values, F32), axis, rank), f"{name}/{what}")

    c = _clamp(ctx, x, grid.nudged_min, grid.nudged_max, axis, rank, f"{name}/clamp")
    shifted = ctx.node("Sub", [c, vec(grid.nudged_min, "nudged_min")], hint=f"{name}/shifted")
    if divide:
        v = ctx.node("Div", [shifted, vec(grid.scale, "scale")], hint=f"{name}/v")
    else:
        v = ctx.node("Mul", [shifted, vec(grid.inv_scale, "inv_scale")], hint=f"{name}/v")
    v = ctx.node("Sub", [v, vec(grid.quant_zero, "quant_zero")], hint=f"{name}/centered")
    v = ctx.node("Add", [v, ctx.const(np.array(0.5, F32), f"{name}/half")], hint=f"{name}/up")
    levels = ctx.node("Floor", [v], hint=f"{name}/levels")
    y = ctx.node("Mul", [levels, vec(grid.scale, "scale")], hint=name)
    ctx.set_output(node, 0, y, perm)


# -- QuantizeAndDequantizeV2 / V3 / V4 ------------------------------------------------------

@dataclass(frozen=True)
class _QdqAttrs:
    signed: bool
    num_bits: int
    range_given: bool
    narrow_range: bool
    half_to_even: bool
    axis: int


def _qdq_attrs(node: NodeInfo) -> _QdqAttrs | str:
    if node.op == "QuantizeAndDequantizeV3":
        bits = node.const(3) if len(node.inputs) > 3 else None
        if bits is None:
            return "The num_bits input of QuantizeAndDequantizeV3 must be a constant"
        if np.asarray(bits).size != 1:
            return "num_bits of QuantizeAndDequantizeV3 must be a scalar"
        num_bits = int(np.asarray(bits).reshape(()))
        mode = "HALF_TO_EVEN"
        range_given = bool(node.attr("range_given", True))
    else:
        num_bits = int(node.attr("num_bits", 8))
        mode = node.attr("round_mode", "HALF_TO_EVEN")
        range_given = bool(node.attr("range_given", False))
    if mode not in ("HALF_TO_EVEN", "HALF_UP"):
        return f"round_mode of {node.op} must be HALF_TO_EVEN or HALF_UP, got {mode!r}"
    signed = bool(node.attr("signed_input", True))
    if not 0 < num_bits < (62 if signed else 63):
        return f"num_bits of {node.op} is out of range: {num_bits}"
    return _QdqAttrs(signed, num_bits, range_given, bool(node.attr("narrow_range", False)),
                     mode == "HALF_TO_EVEN", int(node.attr("axis", -1)))


def _qdq_given_range(node: NodeInfo, attrs: _QdqAttrs) -> tuple[np.ndarray, np.ndarray] | str:
    mins, maxs = node.const(1), node.const(2)
    if mins is None or maxs is None:
        return f"{node.op} with range_given needs constant input_min and input_max"
    mins, maxs = np.asarray(mins, F32), np.asarray(maxs, F32)
    if attrs.axis == -1:
        if mins.size != 1 or maxs.size != 1:
            return f"input_min and input_max of {node.op} must be scalars when axis is -1"
        if mins.reshape(()) > maxs.reshape(()):
            return f"Invalid range for {node.op}: input_min {mins} > input_max {maxs}"
    elif node.op != "QuantizeAndDequantizeV3":
        # TF 2.21's V2/V4 kernel fails here: "input_min must be a scalar"
        return (f"{node.op} with range_given and an axis fails in TensorFlow (it requires "
                "a scalar input_min); QuantizeAndDequantizeV3 takes per-axis ranges")
    else:
        depth = (node.input_shapes[0] or ())[attrs.axis:attrs.axis + 1]
        if mins.ndim != 1 or mins.shape != maxs.shape:
            return f"input_min and input_max of {node.op} must be vectors of one size"
        if depth and depth[0] not in (None, mins.shape[0]):
            return (f"input_min and input_max of {node.op} have {mins.shape[0]} entries, "
                    f"axis {attrs.axis} has {depth[0]}")
    return mins.reshape(-1), maxs.reshape(-1)


def _validate_qdq(node: NodeInfo) -> str | None:
    dt = node.attr("T")
    if dt is not None and dt != _FLOAT:
        return f"{node.op} supports float32 only, got {dtype_name(dt)}"
    attrs = _qdq_attrs(node)
    if isinstance(attrs, str):
        return attrs
    if attrs.axis != -1:
        rank = node.rank(0)
        if rank is None:
            return f"{node.op} with an axis needs an input of known rank"
        if not 0 <= attrs.axis < rank:
            return f"axis {attrs.axis} of {node.op} is out of range for rank {rank}"
    if attrs.range_given:
        given = _qdq_given_range(node, attrs)
        if isinstance(given, str):
            return given
    return None


@converter("QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3", "QuantizeAndDequantizeV4",
           dtypes=None, validate=_validate_qdq,
           restrictions="float32; with range_given, input_min/input_max must be constant; "
                        "Q/DQ for 8 bits rounding half to even, exact float arithmetic "
                        "otherwise (including a range computed from the input)")
def convert_quantize_and_dequantize(ctx: LoweringContext, node: NodeInfo) -> None:
    attrs = _qdq_attrs(node)
    assert not isinstance(attrs, str), attrs
    name = node.name
    x, perm = ctx.input_any(node, 0)
    rank = _held_rank(ctx, node)
    axis = _channel_axis(perm, attrs.axis, rank) if attrs.axis != -1 else -1
    held = _held_const(node, perm)
    if held is not None:
        ctx.set_output(node, 0, _qdq_const(ctx, node, held, attrs, axis, name), perm)
        return
    if not attrs.range_given:
        ctx.set_output(node, 0, _qdq_dynamic(ctx, x, attrs, axis, rank, name), perm)
        return
    given = _qdq_given_range(node, attrs)
    assert not isinstance(given, str), given
    r = qdq_range(*given, attrs.signed, attrs.num_bits, attrs.narrow_range)

    def vec(values: np.ndarray, what: str) -> str:
        return ctx.const(_per_channel(np.asarray(values, F32), axis, rank), f"{name}/{what}")

    usable = bool(np.all(np.isfinite(r.scale)) and np.all(r.inv_scale > 0))
    if attrs.num_bits == 8 and attrs.half_to_even and usable:
        # zero point 0; int8 saturation equals TF's clamp except for the narrow range
        zp = np.zeros(r.scale.shape, np.int8 if attrs.signed else np.uint8)
        if attrs.narrow_range and attrs.signed:
            x = _clamp(ctx, x, r.min_range, r.max_range, axis, rank, f"{name}/clamp")
        ctx.set_output(node, 0, _qdq(ctx, x, r.inv_scale, zp, axis, name), perm)
        return
    c = _clamp(ctx, x, r.min_range, r.max_range, axis, rank, f"{name}/clamp")
    v = ctx.node("Mul", [c, vec(r.scale, "scale")], hint=f"{name}/scaled")
    levels = _round(ctx, v, attrs.half_to_even, name)
    ctx.set_output(node, 0, ctx.node("Mul", [levels, vec(r.inv_scale, "inv_scale")],
                                      hint=name), perm)


def _qdq_const(ctx: LoweringContext, node: NodeInfo, held: np.ndarray, attrs: _QdqAttrs,
               axis: int, name: str) -> str:
    """TF's QuantizeAndDequantize of a constant, computed here."""
    per_channel = axis != -1
    moved = np.moveaxis(held, axis, -1) if per_channel else held
    if attrs.range_given:
        given = _qdq_given_range(node, attrs)
        assert not isinstance(given, str), given
        mins, maxs = given
    elif per_channel:
        flat = moved.reshape(-1, moved.shape[-1])
        mins, maxs = flat.min(axis=0), flat.max(axis=0)
    else:
        mins, maxs = held.min(keepdims=True), held.max(keepdims=True)
    r = qdq_range(mins, maxs, attrs.signed, attrs.num_bits, attrs.narrow_range)
    levels = _channel_last(lambda v: qdq_levels(v, r, attrs.range_given, attrs.half_to_even),
                           held, axis, per_channel)
    zp = None
    if attrs.num_bits <= 8 and np.all(r.inv_scale > 0) and np.all(np.isfinite(levels)):
        zp = np.zeros(r.scale.shape, np.int8 if attrs.signed else np.uint8)
    return _const_result(ctx, levels, r.inv_scale, zp, axis, name)


def _round(ctx: LoweringContext, v: str, half_to_even: bool, name: str) -> str:
    if half_to_even:
        return ctx.node("Round", [v], hint=f"{name}/levels")
    up = ctx.node("Add", [v, ctx.const(np.array(0.5, F32), f"{name}/half")], hint=f"{name}/up")
    return ctx.node("Floor", [up], hint=f"{name}/levels")


def _qdq_dynamic(ctx: LoweringContext, x: str, attrs: _QdqAttrs, axis: int, rank: int | None,
                 name: str) -> str:
    """TF's QuantizeAndDequantize with the range taken from the input (no clamping)."""
    if axis == -1:
        reduce = {"keepdims": 0}
    else:
        assert rank is not None
        reduce = {"keepdims": 1, "axes": [a for a in range(rank) if a != axis]}
    lo = ctx.node("ReduceMin", [x], hint=f"{name}/input_min", **reduce)
    hi = ctx.node("ReduceMax", [x], hint=f"{name}/input_max", **reduce)
    minq, maxq = quantized_bounds(attrs.signed, attrs.num_bits, attrs.narrow_range)

    def c(value: float, what: str) -> str:
        return ctx.const(np.array(value, F32), f"{name}/{what}")

    zero, big = c(0.0, "zero"), c(_FLT_MAX, "flt_max")
    fmaxq = c(F32(maxq), "max_quantized")
    from_max = ctx.node("Where", [
        ctx.node("Greater", [ctx.node("Mul", [fmaxq, hi], hint=f"{name}/hi_q"), zero],
                 hint=f"{name}/hi_pos"),
        ctx.node("Div", [fmaxq, hi], hint=f"{name}/from_max"), big], hint=f"{name}/scale_hi")
    inv_max = ctx.node("Div", [hi, fmaxq], hint=f"{name}/inv_hi")
    if minq == 0:  # unsigned: min_quantized * min is never > 0
        scale, inv = from_max, inv_max
    else:
        fminq = c(F32(minq), "min_quantized")
        from_min = ctx.node("Where", [
            ctx.node("Greater", [ctx.node("Mul", [fminq, lo], hint=f"{name}/lo_q"), zero],
                     hint=f"{name}/lo_pos"),
            ctx.node("Div", [fminq, lo], hint=f"{name}/from_min"), big],
            hint=f"{name}/scale_lo")
        use_min = ctx.node("Less", [from_min, from_max], hint=f"{name}/use_min")
        scale = ctx.node("Where", [use_min, from_min, from_max], hint=f"{name}/scale")
        inv = ctx.node("Where", [use_min, ctx.node("Div", [lo, fminq], hint=f"{name}/inv_lo"),
                                 inv_max], hint=f"{name}/inv_scale")
    v = ctx.node("Mul", [x, scale], hint=f"{name}/scaled")
    levels = _round(ctx, v, attrs.half_to_even, name)
    return ctx.node("Mul", [levels, inv], hint=name)


__all__ = [
    "FakeQuantGrid",
    "QdqRange",
    "convert_fake_quant",
    "convert_quantize_and_dequantize",
    "fake_quant_grid",
    "fake_quant_levels",
    "qdq_range",
    "quantized_bounds",
]
