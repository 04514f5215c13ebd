"""The built-in converter plugin: every op family module of this package."""

from __future__ import annotations

from tftrt.converters import (
    activations,
    comparison,
    control_flow,
    conv,
    elementwise,
    filling,
    image,
    indexing,
    matrix,
    nms,
    quantization,
    reduce,
    shape,
    slicing,
    special,
    spectral,
    splitting,
    structural,
    variables,
)
from tftrt.converters.base import collect
from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.types import OpConverter


@hookimpl
def tftrt_op_converters() -> list[OpConverter]:
    return collect(structural, elementwise, special, comparison, activations, conv, matrix, shape,
                   reduce, image, indexing, nms, quantization, variables, control_flow,
                   spectral, slicing, splitting, filling)
