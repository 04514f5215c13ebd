"""Convolution, pooling and inference batch normalization.

These ops run in ONNX's NCHW layout. An NHWC op takes its input permuted by
``NHWC_TO_NCHW`` and leaves its output that way, so a chain of NHWC ops lowers
with transposes only at the chain's ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tftrt.converters.base import converter
from tftrt.converters.context import NHWC_TO_NCHW, LoweringContext, NodeInfo, Perm

# data_format -> (perm taking the TF tensor to NCHW, spatial axes, channel axis)
_FORMATS: dict[str, tuple[Perm, tuple[int, int], int]] = {
    "NHWC": (NHWC_TO_NCHW, (1, 2), 3),
    "NCHW": (None, (2, 3), 1),
}


@dataclass(frozen=True)
class _Window:
    """A conv/pool window resolved into ONNX attributes."""

    layout: Perm  # perm taking the TF input (and output) to NCHW
    channel_axis: int  # TF channel axis
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    padding: dict[str, Any]  # {"pads": [...]} or {"auto_pad": "SAME_UPPER"}


def _spatial_attr(node: NodeInfo, key: str, default: list[int]) -> tuple[int, int] | str:
    """The two spatial entries of a 4-entry attribute whose batch/channel entries must be 1."""
    _, spatial, channel = _FORMATS[node.attr("data_format", "NHWC")]
    values = list(node.attr(key) or default)
    if len(values) != 4:
        return f"{node.op} {key} must have 4 entries, got {values}"
    if values[0] != 1 or values[channel] != 1:
        return f"{node.op} {key} on the batch and channel dimensions must be 1, got {values}"
    if min(values) < 1:
        return f"{node.op} {key} must be positive, got {values}"
    return values[spatial[0]], values[spatial[1]]


def _padding(node: NodeInfo, kernel: tuple[int, int], strides: tuple[int, int],
             dilations: tuple[int, int]) -> dict[str, Any] | str:
    """ONNX padding attributes equal to the node's TF padding, or why there are none."""
    _, spatial, channel = _FORMATS[node.attr("data_format", "NHWC")]
    padding = node.attr("padding")
    if padding == "VALID":
        return {"pads": [0, 0, 0, 0]}
    if padding == "EXPLICIT":
        flat = list(node.attr("explicit_paddings") or [])
        if len(flat) != 8:
            return f"{node.op} explicit_paddings must have 8 entries, got {flat}"
        pairs = [flat[2 * k:2 * k + 2] for k in range(4)]
        if pairs[0] != [0, 0] or pairs[channel] != [0, 0]:
            return f"{node.op} explicit_paddings on the batch and channel dimensions must be 0"
        (top, bottom), (left, right) = pairs[spatial[0]], pairs[spatial[1]]
        if min(top, bottom, left, right) < 0:
            return f"{node.op} explicit_paddings must be non-negative, got {flat}"
        return {"pads": [top, left, bottom, right]}
    if padding != "SAME":
        return f"{node.op} padding {padding!r} is not supported"
    shape = node.input_shapes[0]
    begins, ends = [], []
    dynamic = False
    for d in range(2):
        size, k, s = shape[spatial[d]], (kernel[d] - 1) * dilations[d] + 1, strides[d]
        if size is not None:
            total = max((-(-size // s) - 1) * s + k - size, 0)
        elif s == 1 or k == 1:  # the padding does not depend on the size
            total = k - 1 if s == 1 else 0
        else:
            dynamic = True
            continue
        begins.append(total // 2)
        ends.append(total - total // 2)
    if not dynamic:
        return {"pads": begins + ends}
    # SAME_UPPER is TF's rule, but applies to both axes and runtimes differ on its corners
    ks = [(kernel[d] - 1) * dilations[d] + 1 for d in range(2)]
    if max(dilations) > 1:
        return (f"{node.op} SAME padding with dilations {list(dilations)} and strides "
                f"{list(strides)} needs known spatial dimensions, got shape {list(shape)}")
    if any(k < s for k, s in zip(ks, strides, strict=True)):
        return (f"{node.op} SAME padding with a window {list(kernel)} smaller than the strides "
                f"{list(strides)} needs known spatial dimensions, got shape {list(shape)}")
    return {"auto_pad": "SAME_UPPER"}


def _window(node: NodeInfo, kernel: tuple[int, int] | None) -> _Window | str:
    """The node's window (``kernel`` None: from the ksize attribute), or why it can't lower."""
    fmt = node.attr("data_format", "NHWC")
    if fmt not in _FORMATS:
        return f"{node.op} data_format {fmt!r} is not supported (only NHWC and NCHW)"
    if node.rank(0) != 4:
        return f"The input of {node.op} must be 4-D, got shape {node.input_shapes[0]}"
    if kernel is None:
        kernel = _spatial_attr(node, "ksize", [])
        if isinstance(kernel, str):
            return kernel
    strides = _spatial_attr(node, "strides", [])
    if isinstance(strides, str):
        return strides
    dilations = _spatial_attr(node, "dilations", [1, 1, 1, 1])
    if isinstance(dilations, str):
        return dilations
    padding = _padding(node, kernel, strides, dilations)
    if isinstance(padding, str):
        return padding
    layout, _, channel = _FORMATS[fmt]
    return _Window(layout, channel, kernel, strides, dilations, padding)


def _filter_window(node: NodeInfo) -> _Window | str:
    filt = node.const(1)
    if filt.ndim != 4:
        return f"The filter of {node.op} must be 4-D, got shape {list(filt.shape)}"
    return _window(node, (int(filt.shape[0]), int(filt.shape[1])))


def _resolved(window: _Window | str) -> _Window:
    assert not isinstance(window, str), window
    return window


def _emit_conv(ctx: LoweringContext, node: NodeInfo, window: _Window, weights: np.ndarray,
               group: int) -> None:
    x = ctx.input_as(node, 0, window.layout)
    w = ctx.const(weights, f"{node.name}/weights")
    y = ctx.node("Conv", [x, w], hint=node.name, kernel_shape=list(window.kernel),
                 strides=list(window.strides), dilations=list(window.dilations), group=group,
                 **window.padding)
    ctx.set_output(node, 0, y, window.layout)


# -- Conv2D ----------------------------------------------------------------------

def _conv2d_groups(node: NodeInfo, window: _Window) -> int | str:
    channels = node.input_shapes[0][window.channel_axis]
    filt = node.const(1)
    in_per_group, out = int(filt.shape[2]), int(filt.shape[3])
    if channels is None:
        return "Conv2D needs a known input channel dimension"
    if channels % in_per_group or out % (channels // in_per_group):
        return (f"Conv2D filter {list(filt.shape)} does not fit an input with "
                f"{channels} channels")
    return channels // in_per_group


def _validate_conv2d(node: NodeInfo) -> str | None:
    window = _filter_window(node)
    if isinstance(window, str):
        return window
    groups = _conv2d_groups(node, window)
    return groups if isinstance(groups, str) else None


@converter("Conv2D", const_inputs=(1,), validate=_validate_conv2d,
           restrictions="filter must be constant; NHWC or NCHW; known input channels")
def convert_conv2d(ctx: LoweringContext, node: NodeInfo) -> None:
    window = _resolved(_filter_window(node))
    groups = _conv2d_groups(node, window)
    assert isinstance(groups, int), groups
    # HWIO -> OIHW
    _emit_conv(ctx, node, window, np.transpose(node.const(1), (3, 2, 0, 1)), groups)


# -- DepthwiseConv2dNative -------------------------------------------------------------

def _validate_depthwise(node: NodeInfo) -> str | None:
    window = _filter_window(node)
    if isinstance(window, str):
        return window
    channels = node.input_shapes[0][window.channel_axis]
    filt = node.const(1)
    if channels is not None and channels != filt.shape[2]:
        return (f"DepthwiseConv2dNative filter {list(filt.shape)} does not fit an input with "
                f"{channels} channels")
    return None


@converter("DepthwiseConv2dNative", const_inputs=(1,), validate=_validate_depthwise,
           restrictions="filter must be constant; NHWC or NCHW")
def convert_depthwise(ctx: LoweringContext, node: NodeInfo) -> None:
    window = _resolved(_filter_window(node))
    filt = node.const(1)
    h, w, c, m = filt.shape
    # [H, W, C, M] -> [C*M, 1, H, W]: output channel c*M + m reads input channel c
    weights = np.transpose(filt.reshape(h, w, c * m), (2, 0, 1))[:, None]
    _emit_conv(ctx, node, window, np.ascontiguousarray(weights), int(c))


# -- MaxPool / AvgPool ------------------------------------------------------------------

def _validate_pool(node: NodeInfo) -> str | None:
    if node.op == "AvgPool" and node.attr("padding") == "EXPLICIT":
        return "AvgPool padding 'EXPLICIT' is not supported"
    window = _window(node, None)
    if isinstance(window, str):
        return window
    pads = window.padding.get("pads", [0, 0, 0, 0])
    if any(p >= window.kernel[k % 2] for k, p in enumerate(pads)):
        return f"{node.op} paddings {pads} must be smaller than the window {list(window.kernel)}"
    return None


@converter("MaxPool", "AvgPool", validate=_validate_pool,
           restrictions="pooling over batch or channels is not supported; NHWC or NCHW")
def convert_pool(ctx: LoweringContext, node: NodeInfo) -> None:
    window = _resolved(_window(node, None))
    x = ctx.input_as(node, 0, window.layout)
    if node.op == "MaxPool":
        y = ctx.node("MaxPool", [x], hint=node.name, kernel_shape=list(window.kernel),
                     strides=list(window.strides), **window.padding)
    else:  # TF averages over the cells inside the input only
        y = ctx.node("AveragePool", [x], hint=node.name, kernel_shape=list(window.kernel),
                     strides=list(window.strides), count_include_pad=0, **window.padding)
    ctx.set_output(node, 0, y, window.layout)


# -- FusedBatchNorm -------------------------------------------------------------------------

def _validate_batch_norm(node: NodeInfo) -> str | None:
    if node.attr("is_training", True):
        return "is_training=True is not supported"
    reserved = sorted(k for k in node.used_outputs if k > 2)
    if reserved:
        return (f"{node.op} reserve-space outputs {reserved} are used; "
                "only y, batch_mean and batch_variance convert")
    fmt = node.attr("data_format", "NHWC")
    if fmt not in _FORMATS:
        return f"{node.op} data_format {fmt!r} is not supported (only NHWC and NCHW)"
    if node.rank(0) != 4:
        return f"The input of {node.op} must be 4-D, got shape {node.input_shapes[0]}"
    channels = node.input_shapes[0][_FORMATS[fmt][2]]
    for i, role in enumerate(("scale", "offset", "mean", "variance"), start=1):
        value = node.const(i)
        if value.ndim != 1 or (channels is not None and value.shape[0] != channels):
            return (f"{node.op} {role} must be a vector of {channels} values, "
                    f"got shape {list(value.shape)}")
    return None


@converter("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", const_inputs=(1, 2, 3, 4),
           validate=_validate_batch_norm,
           restrictions="inference only (is_training=False) with constant statistics")
def convert_batch_norm(ctx: LoweringContext, node: NodeInfo) -> None:
    layout = _FORMATS[node.attr("data_format", "NHWC")][0]
    dtype = np.dtype(node.attr("T"))
    params = [ctx.const(np.asarray(node.const(i), dtype=dtype), f"{node.name}/{role}")
              for i, role in enumerate(("scale", "offset", "mean", "variance"), start=1)]
    x = ctx.input_as(node, 0, layout)
    y = ctx.node("BatchNormalization", [x, *params], hint=node.name,
                 epsilon=float(node.attr("epsilon", 1e-4)))
    ctx.set_output(node, 0, y, layout)
    # in inference, batch_mean and batch_variance are the given statistics
    ctx.set_output(node, 1, ctx.const(node.const(3), f"{node.name}/batch_mean"))
    ctx.set_output(node, 2, ctx.const(node.const(4), f"{node.name}/batch_variance"))
