"""Complex numbers and Fourier transforms: Complex, Real, Imag, ComplexAbs, FFT/IFFT,
FFT2D/IFFT2D (what Keras' ``ops.fft``/``fft2`` and FNet's token mixing emit).

ONNX engines have no complex tensors: inside an engine a complex64 tensor is held as a
float32 tensor with a trailing axis of 2 (real, imaginary), the form ONNX ``DFT`` takes.
Complex tensors never cross an engine boundary (the capability pass keeps a complex
tensor's producer and consumers together, the lowering refuses complex ports).
"""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter
from tftrt.converters.context import LoweringContext, NodeInfo

COMPLEX64 = np.dtype(np.complex64)
F32 = np.dtype(np.float32)


def _validate_complex(node: NodeInfo) -> str | None:
    if node.attr("Tout", COMPLEX64) != COMPLEX64:
        return f"{node.op} supports complex64 only"
    if node.rank(0) is None or node.rank(1) is None:
        return f"{node.op} needs inputs of known rank"
    return None


@converter("Complex", dtypes=(F32,), validate=_validate_complex,
           restrictions="float32 parts, complex64 result")
def convert_complex(ctx: LoweringContext, node: NodeInfo) -> None:
    re, im = ctx.input(node, 0), ctx.input(node, 1)
    if node.input_shapes[0] != node.input_shapes[1] or None in (node.input_shapes[0] or ()):
        # the parts broadcast against each other: give both the result's shape
        zero = ctx.const(np.float32(0), "zero_f32")
        re, im = (ctx.node("Add", [re, ctx.node("Mul", [im, zero], hint=f"{node.name}_z0")],
                           hint=f"{node.name}_re"),
                  ctx.node("Add", [im, ctx.node("Mul", [re, zero], hint=f"{node.name}_z1")],
                           hint=f"{node.name}_im"))
    rank = max(node.rank(0), node.rank(1))
    pairs = [ctx.node("Unsqueeze", [p, ctx.int64s([rank])], hint=f"{node.name}_u{k}")
             for k, p in enumerate((re, im))]
    ctx.set_output(node, 0, ctx.node("Concat", pairs, axis=rank, hint=node.name))


def _validate_complex_input(node: NodeInfo) -> str | None:
    if node.input_dtypes[0] != COMPLEX64:
        return f"{node.op} supports complex64 input only"
    if node.rank(0) is None:
        return f"{node.op} needs an input of known rank"
    return None


def _part(ctx: LoweringContext, node: NodeInfo, k: int) -> str:
    rank = node.rank(0)
    part = ctx.node("Slice", [ctx.input(node, 0), ctx.int64s([k]), ctx.int64s([k + 1]),
                              ctx.int64s([rank])], hint=f"{node.name}_slice")
    return ctx.node("Squeeze", [part, ctx.int64s([rank])], hint=node.name)


@converter("Real", "Imag", dtypes=None, validate=_validate_complex_input,
           restrictions="complex64 input")
def convert_real_imag(ctx: LoweringContext, node: NodeInfo) -> None:
    ctx.set_output(node, 0, _part(ctx, node, 0 if node.op == "Real" else 1))


@converter("ComplexAbs", dtypes=None, validate=_validate_complex_input,
           restrictions="complex64 input")
def convert_complex_abs(ctx: LoweringContext, node: NodeInfo) -> None:
    x = ctx.input(node, 0)
    square = ctx.node("Mul", [x, x], hint=f"{node.name}_sq")
    total = ctx.node("ReduceSum", [square, ctx.int64s([node.rank(0)])], keepdims=0,
                     hint=f"{node.name}_sum")
    ctx.set_output(node, 0, ctx.node("Sqrt", [total], hint=node.name))


_FFT_AXES = {"FFT": 1, "IFFT": 1, "FFT2D": 2, "IFFT2D": 2, "FFT3D": 3, "IFFT3D": 3}


def _validate_fft(node: NodeInfo) -> str | None:
    if (reason := _validate_complex_input(node)) is not None:
        return reason
    if node.rank(0) < _FFT_AXES[node.op]:
        return f"{node.op} needs an input of rank >= {_FFT_AXES[node.op]}"
    return None


@converter(*_FFT_AXES, dtypes=None, validate=_validate_fft, restrictions="complex64 input")
def convert_fft(ctx: LoweringContext, node: NodeInfo) -> None:
    rank = node.rank(0)
    x = ctx.input(node, 0)
    inverse = int(node.op.startswith("I"))
    for axis in range(rank - _FFT_AXES[node.op], rank):
        x = ctx.node("DFT", [x], axis=axis, inverse=inverse, onesided=0,
                     hint=f"{node.name}_dft{axis}")
    ctx.set_output(node, 0, x)
