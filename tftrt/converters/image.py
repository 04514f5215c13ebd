"""Image resizing: ResizeBilinear and ResizeNearestNeighbor.

The NHWC images are resized in ONNX's NCHW layout and left that way, so a
resize between convolutions adds no transposes.
"""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter, dtype_name
from tftrt.converters.context import (
    FLOAT_DTYPES,
    NHWC_TO_NCHW,
    LoweringContext,
    NodeInfo,
    onnx_dtype,
)

_INDEX_DTYPES = frozenset({np.dtype(np.int32), np.dtype(np.int64)})

# (align_corners, half_pixel_centers) -> (coordinate_transformation_mode, nearest_mode).
# TF nearest: asymmetric floor(x*scale); align_corners round-half-up(x*scale);
# half-pixel floor((x+0.5)*scale) == round-half-up((x+0.5)*scale - 0.5).
# TF bilinear samples at x*scale, x*scale (align_corners) or (x+0.5)*scale - 0.5.
_MODES: dict[tuple[bool, bool], tuple[str, str]] = {
    (False, False): ("asymmetric", "floor"),
    (True, False): ("align_corners", "round_prefer_ceil"),
    (False, True): ("half_pixel", "round_prefer_ceil"),
}


def _validate_resize(node: NodeInfo) -> str | None:
    align = bool(node.attr("align_corners", False))
    half = bool(node.attr("half_pixel_centers", False))
    if (align, half) not in _MODES:
        return f"{node.op} with align_corners=True and half_pixel_centers=True is invalid"
    if node.rank(0) != 4:
        return f"The input of {node.op} must be 4-D (NHWC), got shape {node.input_shapes[0]}"
    size = node.const(1)
    if size is not None:
        values = [int(v) for v in np.asarray(size).reshape(-1)]
        if len(values) != 2 or min(values) < 1:
            return f"{node.op} size must be 2 positive values, got {values}"
        return None
    if node.input_dtypes[1] not in _INDEX_DTYPES:
        return (f"The size input of {node.op} must be int32 or int64, "
                f"got {dtype_name(node.input_dtypes[1])}")
    shape = node.input_shapes[1]
    if shape is None or len(shape) != 1 or shape[0] not in (None, 2):
        return f"The size input of {node.op} must be a vector of 2 values, got shape {shape}"
    return None


def _onnx_sizes(ctx: LoweringContext, node: NodeInfo, x: str) -> str:
    """The ONNX Resize ``sizes`` [N, C, new_height, new_width] of NCHW tensor ``x``."""
    n, _, _, c = node.input_shapes[0]
    size = node.const(1)
    if size is not None:
        hw = [int(v) for v in np.asarray(size).reshape(-1)]
        if n is not None and c is not None:
            return ctx.int64s([n, c, *hw], f"{node.name}/sizes")
        spatial = ctx.int64s(hw, f"{node.name}/size")
    else:
        spatial = ctx.input(node, 1)
        if node.input_dtypes[1] != np.int64:
            spatial = ctx.node("Cast", [spatial], hint=f"{node.name}/size",
                               to=onnx_dtype(np.int64))
    if n is not None and c is not None:
        lead = ctx.int64s([n, c], f"{node.name}/batch_channels")
    else:
        lead = ctx.node("Shape", [x], hint=f"{node.name}/shape", end=2)
    return ctx.node("Concat", [lead, spatial], hint=f"{node.name}/sizes", axis=0)


def _resize(ctx: LoweringContext, node: NodeInfo, mode: str) -> None:
    x = ctx.input_as(node, 0, NHWC_TO_NCHW)
    if mode == "linear" and node.attr("T") != np.float32:  # ResizeBilinear gives float32
        x = ctx.node("Cast", [x], hint=f"{node.name}/cast", to=onnx_dtype(np.float32))
    transform, nearest = _MODES[(bool(node.attr("align_corners", False)),
                                 bool(node.attr("half_pixel_centers", False)))]
    y = ctx.node("Resize", [x, "", "", _onnx_sizes(ctx, node, x)], hint=node.name, mode=mode,
                 coordinate_transformation_mode=transform,
                 nearest_mode=nearest if mode == "nearest" else None)
    ctx.set_output(node, 0, y, NHWC_TO_NCHW)


@converter("ResizeBilinear", validate=_validate_resize,
           restrictions="NHWC; size constant or a 1-D int32/int64 tensor")
def convert_resize_bilinear(ctx: LoweringContext, node: NodeInfo) -> None:
    _resize(ctx, node, "linear")


@converter("ResizeNearestNeighbor", dtypes=FLOAT_DTYPES | {np.dtype(np.int32)},
           validate=_validate_resize,
           restrictions="NHWC; size constant or a 1-D int32/int64 tensor")
def convert_resize_nearest(ctx: LoweringContext, node: NodeInfo) -> None:
    _resize(ctx, node, "nearest")
