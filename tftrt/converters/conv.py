"""Convolution, transposed convolution, pooling and inference batch normalization.

These ops run in ONNX's channels-first layout. A channels-last op (NHWC,
NDHWC) takes its input permuted to NCHW / NCDHW and leaves its output that
way, so a chain of channels-last ops lowers with transposes only at the
chain's ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tftrt.converters.base import converter, refusal, refusal_of
from tftrt.converters.context import NHWC_TO_NCHW, LoweringContext, NodeInfo, Perm

NDHWC_TO_NCDHW: tuple[int, ...] = (0, 4, 1, 2, 3)

# data_format -> (perm taking the TF tensor to channels-first, spatial axes, channel axis)
_FORMATS: dict[str, tuple[Perm, tuple[int, ...], int]] = {
    "NHWC": (NHWC_TO_NCHW, (1, 2), 3),
    "NCHW": (None, (2, 3), 1),
    "NDHWC": (NDHWC_TO_NCDHW, (1, 2, 3), 4),
    "NCDHW": (None, (2, 3, 4), 1),
}
_3D_OPS = frozenset({"Conv3D", "Conv3DBackpropInputV2", "MaxPool3D", "AvgPool3D"})


@dataclass(frozen=True)
class _Window:
    """A conv/pool window resolved into ONNX attributes."""

    layout: Perm  # perm taking the TF input (and output) to channels-first
    channel_axis: int  # TF channel axis
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    padding: dict[str, Any]  # {"pads": [...]} or {"auto_pad": "SAME_UPPER"}


def _format(node: NodeInfo) -> str:
    return node.attr("data_format") or ("NDHWC" if node.op in _3D_OPS else "NHWC")


def _check_format(node: NodeInfo) -> str | None:
    """Why the node's data_format is not supported, or None."""
    fmt = _format(node)
    spatial = 3 if node.op in _3D_OPS else 2
    allowed = [f for f, (_, axes, _) in _FORMATS.items() if len(axes) == spatial]
    if fmt not in allowed:
        return (f"{node.op} data_format {fmt!r} is not supported "
                f"(only {' and '.join(allowed)})")
    return None


def _spatial_attr(node: NodeInfo, key: str, default: list[int] | None) -> tuple[int, ...] | str:
    """The spatial entries of a per-dimension attribute whose batch/channel entries must be 1."""
    _, spatial, channel = _FORMATS[_format(node)]
    rank = len(spatial) + 2
    values = list(node.attr(key) or default or [])
    if len(values) != rank:
        return f"{node.op} {key} must have {rank} entries, got {values}"
    if values[0] != 1 or values[channel] != 1:
        return f"{node.op} {key} on the batch and channel dimensions must be 1, got {values}"
    if min(values) < 1:
        return f"{node.op} {key} must be positive, got {values}"
    return tuple(int(values[a]) for a in spatial)


def _explicit_pads(node: NodeInfo) -> tuple[list[int], list[int]] | str:
    """Begin and end paddings of the spatial axes from explicit_paddings."""
    _, spatial, channel = _FORMATS[_format(node)]
    rank = len(spatial) + 2
    flat = [int(p) for p in node.attr("explicit_paddings") or []]
    if len(flat) != 2 * rank:
        return f"{node.op} explicit_paddings must have {2 * rank} entries, got {flat}"
    pairs = [flat[2 * k:2 * k + 2] for k in range(rank)]
    if pairs[0] != [0, 0] or pairs[channel] != [0, 0]:
        return f"{node.op} explicit_paddings on the batch and channel dimensions must be 0"
    if min(flat) < 0:
        return f"{node.op} explicit_paddings must be non-negative, got {flat}"
    return [pairs[a][0] for a in spatial], [pairs[a][1] for a in spatial]


def _effective(kernel: tuple[int, ...], dilations: tuple[int, ...]) -> list[int]:
    return [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]


def _padding(node: NodeInfo, kernel: tuple[int, ...], strides: tuple[int, ...],
             dilations: tuple[int, ...]) -> dict[str, Any] | str:
    """ONNX padding attributes equal to the node's TF padding, or why there are none."""
    _, spatial, _ = _FORMATS[_format(node)]
    n = len(spatial)
    padding = node.attr("padding")
    if padding == "VALID":
        return {"pads": [0] * (2 * n)}
    if padding == "EXPLICIT":
        pads = _explicit_pads(node)
        return pads if isinstance(pads, str) else {"pads": pads[0] + pads[1]}
    if padding != "SAME":
        return f"{node.op} padding {padding!r} is not supported"
    shape = node.input_shapes[0]
    ks = _effective(kernel, dilations)
    begins, ends = [], []
    dynamic = False
    for d in range(n):
        size, k, s = shape[spatial[d]], ks[d], strides[d]
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
    # SAME_UPPER is TF's rule, but applies to all axes and runtimes differ on its corners
    if max(dilations) > 1:
        return (f"{node.op} SAME padding with dilations {list(dilations)} and strides "
                f"{list(strides)} needs known spatial dimensions, got shape {list(shape)}")
    if any(k < s for k, s in zip(ks, strides, strict=True)):
        return (f"{node.op} SAME padding with a window {list(kernel)} smaller than the strides "
                f"{list(strides)} needs known spatial dimensions, got shape {list(shape)}")
    return {"auto_pad": "SAME_UPPER"}


def _window(node: NodeInfo, kernel: tuple[int, ...] | None) -> _Window | str:
    """The node's window (``kernel`` None: from the ksize attribute), or why it can't lower."""
    if (reason := _check_format(node)) is not None:
        return reason
    fmt = _format(node)
    layout, spatial, channel = _FORMATS[fmt]
    rank = len(spatial) + 2
    if node.rank(0) != rank:
        return f"The input of {node.op} must be {rank}-D, got shape {node.input_shapes[0]}"
    if kernel is None:
        kernel = _spatial_attr(node, "ksize", None)
        if isinstance(kernel, str):
            return kernel
    strides = _spatial_attr(node, "strides", None)
    if isinstance(strides, str):
        return strides
    dilations = _spatial_attr(node, "dilations", [1] * rank)
    if isinstance(dilations, str):
        return dilations
    padding = _padding(node, kernel, strides, dilations)
    if isinstance(padding, str):
        return padding
    return _Window(layout, channel, kernel, strides, dilations, padding)


def _filter_window(node: NodeInfo) -> _Window | str:
    filt = node.const(1)
    rank = 5 if node.op in _3D_OPS else 4
    if filt.ndim != rank:
        return f"The filter of {node.op} must be {rank}-D, got shape {list(filt.shape)}"
    return _window(node, tuple(int(k) for k in filt.shape[:-2]))


def _resolved(window: _Window | str) -> _Window:
    assert not isinstance(window, str), window
    return window


def _to_oi_spatial(filt: np.ndarray) -> np.ndarray:
    """A TF filter [spatial..., I, O] as ONNX Conv weights [O, I, spatial...]."""
    n = filt.ndim - 2
    return np.ascontiguousarray(np.transpose(filt, (n + 1, n, *range(n))))


def _emit_conv(ctx: LoweringContext, node: NodeInfo, window: _Window, weights: np.ndarray,
               group: int) -> None:
    x = ctx.input_as(node, 0, window.layout)
    w = ctx.const(weights, f"{node.name}/weights")
    y = ctx.node("Conv", [x, w], hint=node.name, kernel_shape=list(window.kernel),
                 strides=list(window.strides), dilations=list(window.dilations), group=group,
                 **window.padding)
    ctx.set_output(node, 0, y, window.layout)


def _groups(node: NodeInfo, channels: int | None, filt: np.ndarray) -> int | str:
    """The number of groups of a convolution whose forward input has ``channels``."""
    in_per_group, out = int(filt.shape[-2]), int(filt.shape[-1])
    if channels is None:
        return f"{node.op} needs a known input channel dimension"
    if channels % in_per_group or out % (channels // in_per_group):
        return (f"{node.op} filter {list(filt.shape)} does not fit an input with "
                f"{channels} channels")
    return channels // in_per_group


# -- Conv2D / Conv3D -------------------------------------------------------------------

def _conv_groups(node: NodeInfo, window: _Window) -> int | str:
    return _groups(node, node.input_shapes[0][window.channel_axis], node.const(1))


def _validate_conv(node: NodeInfo) -> str | None:
    window = _filter_window(node)
    if isinstance(window, str):
        return window
    return refusal(_conv_groups(node, window))


@converter("Conv2D", "Conv3D", const_inputs=(1,), validate=_validate_conv,
           restrictions="filter must be constant; NHWC/NCHW (NDHWC/NCDHW for Conv3D); "
                        "known input channels")
def convert_conv(ctx: LoweringContext, node: NodeInfo) -> None:
    window = _resolved(_filter_window(node))
    groups = _conv_groups(node, window)
    assert isinstance(groups, int), groups
    _emit_conv(ctx, node, window, _to_oi_spatial(node.const(1)), groups)


# -- FusedConv2DBiasActivation (the contrib op TF-TRT converts) ---------------------------

_FUSED_ACTIVATIONS = {"None": None, "Relu": "Relu", "Sigmoid": "Sigmoid", "Tanh": "Tanh",
                      "Relu6": "Clip"}


def _fused_hwio_filter(node: NodeInfo) -> np.ndarray | str:
    fmt = node.attr("filter_format") or "HWIO"
    filt = node.const(1)
    if fmt not in ("HWIO", "OIHW"):
        return f"FusedConv2DBiasActivation filter_format {fmt!r} is not supported (HWIO, OIHW)"
    if filt.ndim != 4:
        return f"The filter of {node.op} must be 4-D, got shape {list(filt.shape)}"
    return filt if fmt == "HWIO" else np.transpose(filt, (2, 3, 1, 0))


def _fused_conv(node: NodeInfo) -> tuple[_Window, np.ndarray] | str:
    """The conv window and HWIO filter of the node, or why it cannot lower."""
    filt = _fused_hwio_filter(node)
    if isinstance(filt, str):
        return filt
    if (mode := node.attr("activation_mode") or "Relu") not in _FUSED_ACTIVATIONS:
        return (f"FusedConv2DBiasActivation activation_mode {mode!r} is not supported "
                f"({', '.join(_FUSED_ACTIVATIONS)})")
    bias = node.const(2)
    if bias.ndim != 1 or bias.shape[0] != filt.shape[3]:
        return (f"FusedConv2DBiasActivation bias {list(bias.shape)} must be 1-D with the "
                f"filter's {filt.shape[3]} output channels")
    if float(node.attr("side_input_scale") or 0.0) != 0.0 and len(node.inputs) < 4:
        return "FusedConv2DBiasActivation has a side_input_scale but no side_input"
    window = _window(node, (int(filt.shape[0]), int(filt.shape[1])))
    if isinstance(window, str):
        return window
    channels = node.input_shapes[0][window.channel_axis]
    if channels != filt.shape[2]:
        return (f"FusedConv2DBiasActivation filter {list(filt.shape)} needs an input with "
                f"{filt.shape[2]} known channels, got shape {node.input_shapes[0]}")
    return window, filt


@converter("FusedConv2DBiasActivation", const_inputs=(1, 2),
           validate=refusal_of(_fused_conv),
           restrictions="filter and bias constant; NHWC/NCHW, HWIO/OIHW; any "
                        "conv_input_scale and side input; activation None, Relu, Relu6, "
                        "Sigmoid or Tanh")
def convert_fused_conv(ctx: LoweringContext, node: NodeInfo) -> None:
    resolved = _fused_conv(node)
    assert not isinstance(resolved, str), resolved
    window, filt = resolved
    x = ctx.input_as(node, 0, window.layout)
    dtype = filt.dtype
    scale = float(node.attr("conv_input_scale") or 1.0)
    # scaling the weights equals scaling the convolution: it is linear in them
    w = ctx.const((_to_oi_spatial(filt) * np.asarray(scale, dtype)).astype(dtype),
                  f"{node.name}/weights")
    bias = ctx.const(node.const(2).astype(dtype), f"{node.name}/bias")
    y = ctx.node("Conv", [x, w, bias], hint=f"{node.name}/conv",
                 kernel_shape=list(window.kernel), strides=list(window.strides),
                 dilations=list(window.dilations), **window.padding)
    side_scale = float(node.attr("side_input_scale") or 0.0)
    if side_scale != 0.0:
        side = ctx.input_as(node, 3, window.layout)
        if side_scale != 1.0:
            side = ctx.node("Mul", [side, ctx.const(np.asarray(side_scale, dtype))],
                            hint=f"{node.name}/side")
        y = ctx.node("Add", [y, side], hint=f"{node.name}/add_side")
    act = _FUSED_ACTIVATIONS[node.attr("activation_mode") or "Relu"]
    if act == "Clip":
        y = ctx.node("Clip", [y, ctx.const(np.asarray(0, dtype)), ctx.const(np.asarray(6, dtype))],
                     hint=node.name)
    elif act is not None:
        y = ctx.node(act, [y], hint=node.name)
    ctx.set_output(node, 0, y, window.layout)


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


# -- Conv2DBackpropInput / Conv3DBackpropInputV2 ---------------------------------------

@dataclass(frozen=True)
class _Transposed:
    """A backprop-input node resolved into ONNX ConvTranspose attributes."""

    layout: Perm
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: list[int]
    output_padding: list[int]
    group: int


def _input_sizes(node: NodeInfo) -> tuple[list[int], int | None] | str:
    """The spatial sizes and channels of the forward input (the node's output)."""
    _, spatial, channel = _FORMATS[_format(node)]
    rank = len(spatial) + 2
    value = node.const(0)
    if value is not None:
        sizes = [int(v) for v in np.asarray(value).reshape(-1)]
        if len(sizes) == rank:
            return [sizes[a] for a in spatial], sizes[channel]
        if len(sizes) == len(spatial):  # spatial sizes only: channels from the filter
            return sizes, None
        return (f"{node.op} input_sizes must have {rank} or {len(spatial)} entries, "
                f"got {sizes}")
    # input_sizes computed in the graph (Keras packs the batch size into it)
    shape = node.output_shapes[0] if node.output_shapes else None
    if shape is None or len(shape) != rank or any(shape[a] is None for a in spatial):
        return (f"The input 0 (input_sizes) of {node.op} must be a constant, or its spatial "
                f"dimensions known from shape inference; the output shape is {shape}")
    return [int(shape[a]) for a in spatial], shape[channel]


def _transposed(node: NodeInfo) -> _Transposed | str:
    """The node's transposed convolution, or why it can't lower."""
    if (reason := _check_format(node)) is not None:
        return reason
    layout, spatial, _ = _FORMATS[_format(node)]
    n = len(spatial)
    filt = node.const(1)
    if filt.ndim != n + 2:
        return f"The filter of {node.op} must be {n + 2}-D, got shape {list(filt.shape)}"
    if node.rank(2) not in (None, n + 2):
        return (f"The out_backprop input of {node.op} must be {n + 2}-D, "
                f"got shape {node.input_shapes[2]}")
    sizes = _input_sizes(node)
    if isinstance(sizes, str):
        return sizes
    spatial_sizes, channels = sizes
    if min(spatial_sizes) < 1:
        return f"{node.op} input_sizes {spatial_sizes} must be positive"
    group = _groups(node, int(filt.shape[-2]) if channels is None else channels, filt)
    if isinstance(group, str):
        return group
    kernel = tuple(int(k) for k in filt.shape[:n])
    strides = _spatial_attr(node, "strides", None)
    if isinstance(strides, str):
        return strides
    dilations = _spatial_attr(node, "dilations", [1] * (n + 2))
    if isinstance(dilations, str):
        return dilations
    padding = node.attr("padding")
    explicit = None
    if padding == "EXPLICIT":
        explicit = _explicit_pads(node)
        if isinstance(explicit, str):
            return explicit
    elif padding not in ("SAME", "VALID"):
        return f"{node.op} padding {padding!r} is not supported"
    begins, ends, extra = [], [], []
    for d, (size, k, s) in enumerate(zip(spatial_sizes, _effective(kernel, dilations), strides,
                                         strict=True)):
        # the forward convolution of an input of ``size``: its padding and output size
        if padding == "SAME":
            out = -(-size // s)
            begin = max((out - 1) * s + k - size, 0) // 2
        elif padding == "VALID":
            begin, out = 0, (size - k) // s + 1
        else:
            begin = explicit[0][d]
            out = (size + begin + explicit[1][d] - k) // s + 1
        if out < 1:
            return (f"{node.op} window {list(kernel)} is larger than the padded input "
                    f"of size {spatial_sizes}")
        # ConvTranspose gives s*(out-1) + k - begin - end + extra values; TF gives ``size``
        rest = s * (out - 1) + k - begin - size
        begins.append(begin)
        ends.append(max(rest, 0))
        extra.append(max(-rest, 0))
    return _Transposed(layout, kernel, strides, dilations, begins + ends, extra, group)


def _validate_backprop(node: NodeInfo) -> str | None:
    return refusal(_transposed(node))


@converter("Conv2DBackpropInput", "Conv3DBackpropInputV2", const_inputs=(1,),
           validate=_validate_backprop,
           restrictions="filter must be constant; input_sizes constant or with spatial "
                        "dimensions known from shape inference")
def convert_conv_backprop_input(ctx: LoweringContext, node: NodeInfo) -> None:
    spec = _transposed(node)
    assert not isinstance(spec, str), spec
    # TF's forward filter [spatial..., I, O] is ConvTranspose weights [O, I, spatial...]:
    # the gradient's O channels in, the forward input's I channels (per group) out
    weights = ctx.const(_to_oi_spatial(node.const(1)), f"{node.name}/weights")
    x = ctx.input_as(node, 2, spec.layout)
    y = ctx.node("ConvTranspose", [x, weights], hint=node.name, kernel_shape=list(spec.kernel),
                 strides=list(spec.strides), dilations=list(spec.dilations), pads=spec.pads,
                 output_padding=spec.output_padding if any(spec.output_padding) else None,
                 group=spec.group)
    ctx.set_output(node, 0, y, spec.layout)


# -- MaxPool / AvgPool / MaxPool3D / AvgPool3D ------------------------------------------

def _validate_pool(node: NodeInfo) -> str | None:
    if node.op == "AvgPool" and node.attr("padding") == "EXPLICIT":
        return "AvgPool padding 'EXPLICIT' is not supported"
    window = _window(node, None)
    if isinstance(window, str):
        return window
    n = len(window.kernel)
    pads = window.padding.get("pads", [0] * (2 * n))
    if any(p >= window.kernel[k % n] for k, p in enumerate(pads)):
        return f"{node.op} paddings {pads} must be smaller than the window {list(window.kernel)}"
    return None


@converter("MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D", validate=_validate_pool,
           restrictions="pooling over batch or channels is not supported; NHWC or NCHW "
                        "(NDHWC or NCDHW for the 3-D ops)")
def convert_pool(ctx: LoweringContext, node: NodeInfo) -> None:
    window = _resolved(_window(node, None))
    x = ctx.input_as(node, 0, window.layout)
    if node.op.startswith("MaxPool"):
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
        return (f"{node.op} data_format {fmt!r} is not supported "
                f"(only {', '.join(_FORMATS)})")
    rank = len(_FORMATS[fmt][1]) + 2
    if node.rank(0) != rank:
        return f"The input of {node.op} must be {rank}-D, got shape {node.input_shapes[0]}"
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
