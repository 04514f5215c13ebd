"""Convolution, pooling and batch-norm converters against TensorFlow."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tftrt.compiler.lowering import node_info
from tftrt.converters.context import NodeInfo
from tftrt.plugins.manager import get_registry
from tftrt.testing import check_function, lower_function, run_onnx, trace

TOL = {"rtol": 1e-4, "atol": 1e-4}


def _rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _node(fn: Callable[..., object], specs: list[tf.TensorSpec], op: str) -> NodeInfo:
    g, _, _ = trace(fn, specs)
    return node_info(g, next(n for n in g.nodes if g.nodes[n]["op"] == op))


def _refusal(fn: Callable[..., object], specs: list[tf.TensorSpec], op: str) -> str | None:
    return get_registry().converter(op).validate(_node(fn, specs, op))


def _op_types(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _spatial(value: int, data_format: str = "NHWC") -> list[int]:
    """A 4-entry stride/dilation/ksize attribute with ``value`` on the spatial axes."""
    return [1, 1, value, value] if data_format == "NCHW" else [1, value, value, 1]


def _conv(filt: np.ndarray, strides: int, padding: str, dilations: int = 1, **kw):
    fmt = kw.get("data_format", "NHWC")

    def fn(x):
        return tf.raw_ops.Conv2D(input=x, filter=tf.constant(filt),
                                 strides=_spatial(strides, fmt), padding=padding,
                                 dilations=_spatial(dilations, fmt), **kw)
    return fn


def _depthwise(filt: np.ndarray, strides: int, padding: str, dilations: int = 1, **kw):
    fmt = kw.get("data_format", "NHWC")

    def fn(x):
        return tf.raw_ops.DepthwiseConv2dNative(
            input=x, filter=tf.constant(filt), strides=_spatial(strides, fmt), padding=padding,
            dilations=_spatial(dilations, fmt), **kw)
    return fn


# -- Conv2D ----------------------------------------------------------------------

@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d(size: int, stride: int, padding: str) -> None:
    fn = _conv(_rand((3, 3, 3, 4), 1), stride, padding)
    model = check_function(fn, [_rand((2, size, size + 1, 3))], **TOL)
    # NHWC in, NCHW conv, NHWC out
    assert _op_types(model).count("Transpose") == 2


@pytest.mark.parametrize("kernel,stride,size", [((2, 2), 2, 7), ((1, 1), 2, 7), ((2, 3), 3, 8),
                                                ((4, 4), 1, 6), ((1, 5), 2, 9)])
def test_conv2d_same_asymmetric(kernel: tuple[int, int], stride: int, size: int) -> None:
    fn = _conv(_rand((*kernel, 2, 3), 1), stride, "SAME")
    check_function(fn, [_rand((1, size, size, 2))], **TOL)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d_dilated(stride: int, padding: str) -> None:
    fn = _conv(_rand((3, 3, 2, 3), 1), stride, padding, dilations=2)
    check_function(fn, [_rand((1, 11, 10, 2))], **TOL)


def test_conv2d_explicit_padding() -> None:
    fn = _conv(_rand((3, 2, 2, 3), 1), 2, "EXPLICIT",
               explicit_paddings=[0, 0, 1, 2, 0, 1, 0, 0])
    check_function(fn, [_rand((1, 7, 6, 2))], **TOL)


def test_conv2d_grouped() -> None:
    fn = _conv(_rand((3, 3, 2, 6), 1), 1, "SAME")  # 3 groups of 2 input channels
    check_function(fn, [_rand((1, 5, 5, 6))], **TOL)


def test_conv2d_dynamic_batch_with_reshape() -> None:
    filt = _rand((3, 3, 3, 4), 1)

    def fn(x):
        y = _conv(filt, 2, "SAME")(x)
        return tf.raw_ops.Reshape(tensor=y, shape=tf.constant([-1, 4 * 4 * 4]))

    specs = [tf.TensorSpec([None, 8, 8, 3], tf.float32)]
    check_function(fn, [_rand((3, 8, 8, 3))], specs=specs, **TOL)
    check_function(fn, [_rand((1, 8, 8, 3), 2)], specs=specs, **TOL)


@pytest.mark.parametrize("kernel,stride,dilations", [(3, 2, 1), (3, 1, 2), (1, 2, 1), (2, 2, 1)])
def test_conv2d_unknown_spatial_dims(kernel: int, stride: int, dilations: int) -> None:
    fn = _conv(_rand((kernel, kernel, 3, 4), 1), stride, "SAME", dilations)
    specs = [tf.TensorSpec([None, None, None, 3], tf.float32)]
    for size in (7, 8):
        check_function(fn, [_rand((1, size, size + 1, 3), size)], specs=specs, **TOL)


def _nchw_matches_nhwc(nhwc: Callable, nchw: Callable, x: np.ndarray) -> None:
    """The NCHW node lowered to ONNX equals TensorFlow's NHWC result (TF CPU lacks NCHW)."""
    xt = np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))
    model = lower_function(nchw, [tf.TensorSpec(xt.shape, tf.float32)])
    assert "Transpose" not in _op_types(model)
    got = run_onnx(model, [xt])[0]
    expected = np.transpose(nhwc(tf.constant(x)).numpy(), (0, 3, 1, 2))
    np.testing.assert_allclose(got, expected, **TOL)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d_nchw(padding: str) -> None:
    filt = _rand((3, 3, 3, 4), 1)
    _nchw_matches_nhwc(_conv(filt, 2, padding, 2),
                       _conv(filt, 2, padding, 2, data_format="NCHW"), _rand((1, 9, 8, 3)))


def test_conv2d_nchw_strides_and_explicit_pads_follow_the_format() -> None:
    filt = _rand((3, 3, 2, 4), 1)

    def nhwc(x):
        return tf.raw_ops.Conv2D(input=x, filter=filt, strides=[1, 2, 1, 1], padding="EXPLICIT",
                                 explicit_paddings=[0, 0, 2, 1, 0, 1, 0, 0])

    def nchw(x):
        return tf.raw_ops.Conv2D(input=x, filter=filt, strides=[1, 1, 2, 1], padding="EXPLICIT",
                                 explicit_paddings=[0, 0, 0, 0, 2, 1, 0, 1], data_format="NCHW")

    _nchw_matches_nhwc(nhwc, nchw, _rand((1, 7, 6, 2)))


# -- DepthwiseConv2dNative --------------------------------------------------------------

@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_depthwise(multiplier: int, stride: int, padding: str) -> None:
    fn = _depthwise(_rand((3, 3, 3, multiplier), 1), stride, padding)
    check_function(fn, [_rand((2, 7, 8, 3))], **TOL)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_depthwise_dilated(padding: str) -> None:
    # TF's CPU kernel has no dilations: compare with tf.nn's space-to-batch version
    filt, x = _rand((3, 3, 2, 2), 1), _rand((1, 9, 10, 2))
    model = lower_function(_depthwise(filt, 1, padding, 2), [tf.TensorSpec(x.shape, tf.float32)])
    expected = tf.nn.depthwise_conv2d(x, filt, [1, 1, 1, 1], padding, dilations=[2, 2]).numpy()
    np.testing.assert_allclose(run_onnx(model, [x])[0], expected, **TOL)


def test_depthwise_explicit_padding() -> None:
    fn = _depthwise(_rand((2, 3, 2, 1), 1), 2, "EXPLICIT",
                    explicit_paddings=[0, 0, 1, 0, 2, 1, 0, 0])
    check_function(fn, [_rand((1, 8, 7, 2))], **TOL)


def test_depthwise_nchw() -> None:
    filt = _rand((3, 3, 3, 2), 1)
    _nchw_matches_nhwc(_depthwise(filt, 2, "SAME"), _depthwise(filt, 2, "SAME",
                                                                data_format="NCHW"),
                       _rand((1, 7, 8, 3)))


# -- MaxPool / AvgPool -------------------------------------------------------------------

def _pool(op: str, ksize: int, stride: int, padding: str, **kw):
    def fn(x):
        kwargs = {"input" if op == "MaxPool" else "value": x}
        fmt = kw.get("data_format", "NHWC")
        return getattr(tf.raw_ops, op)(**kwargs, ksize=_spatial(ksize, fmt),
                                       strides=_spatial(stride, fmt), padding=padding, **kw)
    return fn


@pytest.mark.parametrize("op", ["MaxPool", "AvgPool"])
@pytest.mark.parametrize("ksize,stride", [(3, 2), (2, 2), (3, 1)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("size", [7, 8])
def test_pool(op: str, ksize: int, stride: int, padding: str, size: int) -> None:
    check_function(_pool(op, ksize, stride, padding), [_rand((2, size, size + 1, 3))], **TOL)


@pytest.mark.parametrize("op", ["MaxPool", "AvgPool"])
def test_pool_unknown_spatial_dims(op: str) -> None:
    specs = [tf.TensorSpec([None, None, None, 2], tf.float32)]
    for size in (7, 8):
        check_function(_pool(op, 3, 2, "SAME"), [_rand((1, size, size + 1, 2))], specs=specs,
                       **TOL)


def test_maxpool_explicit_padding() -> None:
    fn = _pool("MaxPool", 3, 2, "EXPLICIT", explicit_paddings=[0, 0, 1, 2, 0, 1, 0, 0])
    check_function(fn, [_rand((1, 7, 6, 2))], **TOL)


@pytest.mark.parametrize("op", ["MaxPool", "AvgPool"])
def test_pool_nchw(op: str) -> None:
    _nchw_matches_nhwc(_pool(op, 3, 2, "SAME"), _pool(op, 3, 2, "SAME", data_format="NCHW"),
                       _rand((1, 7, 8, 3)))


# -- FusedBatchNorm ------------------------------------------------------------------------

def _batch_norm(op: str, channels: int, **kw):
    rng = np.random.default_rng(3)
    scale, offset, mean = (rng.standard_normal(channels).astype(np.float32) for _ in range(3))
    variance = rng.uniform(0.5, 2.0, channels).astype(np.float32)

    def fn(x):
        return getattr(tf.raw_ops, op)(x=x, scale=scale, offset=offset, mean=mean,
                                       variance=variance, epsilon=1e-3, is_training=False,
                                       **kw)[0]
    return fn


@pytest.mark.parametrize("op", ["FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"])
def test_fused_batch_norm(op: str) -> None:
    check_function(_batch_norm(op, 3), [_rand((2, 5, 4, 3))], **TOL)


def test_fused_batch_norm_nchw_dynamic() -> None:
    specs = [tf.TensorSpec([None, 3, None, None], tf.float32)]
    model = check_function(_batch_norm("FusedBatchNormV3", 3, data_format="NCHW"),
                           [_rand((2, 3, 5, 4))], specs=specs, **TOL)
    assert "Transpose" not in _op_types(model)


def test_fused_batch_norm_batch_statistics_outputs() -> None:
    def fn(x):
        out = tf.raw_ops.FusedBatchNormV3(x=x, scale=[1.0, 2.0], offset=[0.0, 1.0],
                                          mean=[0.5, -0.5], variance=[1.0, 4.0],
                                          is_training=False)
        return out[0], out[1], out[2]

    check_function(fn, [_rand((1, 3, 3, 2))], **TOL)


# -- Conv2DBackpropInput / Conv3DBackpropInputV2 -----------------------------------------

def _np_conv_transpose(g: np.ndarray, filt: np.ndarray, sizes: list[int], strides: list[int],
                       dilations: list[int], begins: list[int], groups: int = 1) -> np.ndarray:
    """Reference backprop-input: the adjoint of a channels-last convolution, in numpy."""
    n = filt.ndim - 2
    outs = g.shape[1:-1]
    per_in, per_out = filt.shape[-2], filt.shape[-1] // groups
    full = [max((o - 1) * s + (k - 1) * d + 1, b + size) for o, s, k, d, b, size in
            zip(outs, strides, filt.shape[:n], dilations, begins, sizes, strict=True)]
    acc = np.zeros((g.shape[0], *full, per_in * groups), np.float64)
    for tap in np.ndindex(*filt.shape[:n]):
        window = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                       for t, d, s, o in zip(tap, dilations, strides, outs, strict=True))
        for j in range(groups):
            w = filt[tap][:, j * per_out:(j + 1) * per_out]
            acc[(slice(None), *window, slice(j * per_in, (j + 1) * per_in))] += (
                g[..., j * per_out:(j + 1) * per_out] @ w.T)
    crop = tuple(slice(b, b + size) for b, size in zip(begins, sizes, strict=True))
    return acc[(slice(None), *crop)].astype(np.float32)


def _same_begin(size: int, k: int, s: int, d: int = 1) -> int:
    k = (k - 1) * d + 1
    return max((-(-size // s) - 1) * s + k - size, 0) // 2


def _out_size(size: int, k: int, s: int, padding: str, d: int = 1) -> int:
    k = (k - 1) * d + 1
    return -(-size // s) if padding == "SAME" else (size - k) // s + 1


def _backprop(sizes: list[int], filt: np.ndarray, stride: int, padding: str, dilations: int = 1,
              **kw):
    n = filt.ndim - 2
    op = "Conv2DBackpropInput" if n == 2 else "Conv3DBackpropInputV2"

    def fn(g):
        return getattr(tf.raw_ops, op)(
            input_sizes=tf.constant(sizes), filter=tf.constant(filt), out_backprop=g,
            strides=[1, *[stride] * n, 1], dilations=[1, *[dilations] * n, 1], padding=padding,
            **kw)
    return fn


@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize("kernel,stride", [(3, 2), (1, 2), (4, 3), (3, 1)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d_backprop_input(size: int, kernel: int, stride: int, padding: str) -> None:
    # (1, 2), (4, 3) and VALID sizes that leave rows uncovered need output_padding
    filt = _rand((kernel, kernel + 1, 3, 4), 1)
    sizes = [size, size + 2]
    outs = [_out_size(sizes[0], kernel, stride, padding),
            _out_size(sizes[1], kernel + 1, stride, padding)]
    fn = _backprop([2, *sizes, 3], filt, stride, padding)
    model = check_function(fn, [_rand((2, *outs, 4))], **TOL)
    assert _op_types(model).count("Transpose") == 2
    assert "ConvTranspose" in _op_types(model)


def test_conv2d_backprop_input_explicit_padding_and_dynamic_batch() -> None:
    filt = _rand((3, 2, 2, 3), 1)
    fn = _backprop([1, 8, 7, 2], filt, 2, "EXPLICIT", explicit_paddings=[0, 0, 1, 2, 0, 1, 0, 0])
    check_function(fn, [_rand((1, 5, 4, 3))], **TOL)
    # input_sizes of the spatial dimensions only: the batch is the gradient's
    fn = _backprop([9, 8], filt, 2, "SAME")
    specs = [tf.TensorSpec([None, 5, 4, 3], tf.float32)]
    for batch in (1, 3):
        check_function(fn, [_rand((batch, 5, 4, 3), batch)], specs=specs, **TOL)


def test_conv2d_backprop_input_with_computed_input_sizes() -> None:
    """What Keras Conv2DTranspose traces to with an unknown batch: sizes packed in the graph."""
    filt = tf.constant(_rand((3, 3, 4, 3), 1))

    def fn(x):
        batch = tf.raw_ops.StridedSlice(input=tf.raw_ops.Shape(input=x), begin=[0], end=[1],
                                        strides=[1], shrink_axis_mask=1)
        sizes = tf.raw_ops.Pack(values=[batch, tf.constant(10), tf.constant(9),
                                        tf.constant(4)])
        return tf.raw_ops.Conv2DBackpropInput(input_sizes=sizes, filter=filt, out_backprop=x,
                                              strides=[1, 2, 2, 1], padding="SAME")

    specs = [tf.TensorSpec([None, 5, 5, 3], tf.float32)]
    check_function(fn, [_rand((2, 5, 5, 3))], specs=specs, **TOL)


def test_conv_transpose_reference_matches_tensorflow() -> None:
    filt, g = _rand((3, 2, 2, 3), 1), _rand((1, 4, 4, 3))
    want = _backprop([1, 7, 8, 2], filt, 2, "SAME")(tf.constant(g)).numpy()
    begins = [_same_begin(7, 3, 2), _same_begin(8, 2, 2)]
    np.testing.assert_allclose(_np_conv_transpose(g, filt, [7, 8], [2, 2], [1, 1], begins),
                               want, **TOL)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d_backprop_input_dilated(stride: int, padding: str) -> None:
    # TF's CPU kernel has no dilations: compare with the numpy reference
    filt, sizes = _rand((3, 2, 2, 3), 1), [9, 8]
    outs = [_out_size(sizes[0], 3, stride, padding, 2), _out_size(sizes[1], 2, stride, padding, 2)]
    g = _rand((2, *outs, 3))
    model = lower_function(_backprop([2, *sizes, 2], filt, stride, padding, 2),
                           [tf.TensorSpec(g.shape, tf.float32)])
    begins = ([_same_begin(sizes[0], 3, stride, 2), _same_begin(sizes[1], 2, stride, 2)]
              if padding == "SAME" else [0, 0])
    want = _np_conv_transpose(g, filt, sizes, [stride] * 2, [2, 2], begins)
    np.testing.assert_allclose(run_onnx(model, [g])[0], want, **TOL)


def test_conv2d_backprop_input_grouped() -> None:
    # 6 input channels in 3 groups of 2; TF's CPU kernel has no grouped gradient
    filt, g = _rand((3, 3, 2, 6), 1), _rand((1, 4, 4, 6))
    model = lower_function(_backprop([1, 8, 7, 6], filt, 2, "SAME"),
                           [tf.TensorSpec(g.shape, tf.float32)])
    begins = [_same_begin(8, 3, 2), _same_begin(7, 3, 2)]
    want = _np_conv_transpose(g, filt, [8, 7], [2, 2], [1, 1], begins, groups=3)
    np.testing.assert_allclose(run_onnx(model, [g])[0], want, **TOL)


def test_conv2d_backprop_input_nchw() -> None:
    filt = _rand((3, 3, 2, 4), 1)

    def nchw(g):  # NCHW input_sizes, strides and dilations list the channels second
        return tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.constant([1, 2, 7, 9]), filter=tf.constant(filt), out_backprop=g,
            strides=[1, 1, 2, 2], padding="SAME", data_format="NCHW")

    _nchw_matches_nhwc(_backprop([1, 7, 9, 2], filt, 2, "SAME"), nchw, _rand((1, 4, 5, 4)))


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv3d_backprop_input(padding: str, stride: int) -> None:
    filt = _rand((2, 3, 2, 2, 3), 1)
    sizes = [5, 6, 7]
    outs = [_out_size(s, k, stride, padding) for s, k in zip(sizes, (2, 3, 2), strict=True)]
    fn = _backprop(np.array([2, *sizes, 2], np.int64), filt, stride, padding)
    specs = [tf.TensorSpec([None, *outs, 3], tf.float32)]
    model = check_function(fn, [_rand((2, *outs, 3))], specs=specs, **TOL)
    assert _op_types(model).count("Transpose") == 2


# -- Conv3D / MaxPool3D / AvgPool3D ---------------------------------------------------------

def _conv3d(filt: np.ndarray, stride: int, padding: str, dilations: int = 1, **kw):
    ncdhw = kw.get("data_format") == "NCDHW"

    def fn(x):
        spatial = [1, 1, *[stride] * 3] if ncdhw else [1, *[stride] * 3, 1]
        dil = [1, 1, *[dilations] * 3] if ncdhw else [1, *[dilations] * 3, 1]
        return tf.raw_ops.Conv3D(input=x, filter=tf.constant(filt), strides=spatial,
                                 padding=padding, dilations=dil, **kw)
    return fn


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv3d(stride: int, padding: str) -> None:
    fn = _conv3d(_rand((2, 3, 1, 3, 4), 1), stride, padding)
    model = check_function(fn, [_rand((2, 5, 6, 7, 3))], **TOL)
    assert _op_types(model).count("Transpose") == 2
    check_function(fn, [_rand((1, 6, 5, 4, 3))], specs=[tf.TensorSpec([None, 6, 5, 4, 3],
                                                                       tf.float32)], **TOL)


def test_conv3d_dilated() -> None:
    # TF's CPU kernel has no dilations: compare with numpy (a correlation over taps)
    filt, x = _rand((2, 2, 3, 2, 3), 1), _rand((1, 5, 6, 7, 2))
    model = lower_function(_conv3d(filt, 1, "VALID", 2), [tf.TensorSpec(x.shape, tf.float32)])
    outs = [s - (k - 1) * 2 for s, k in zip(x.shape[1:4], filt.shape[:3], strict=True)]
    want = np.zeros((1, *outs, 3), np.float64)
    for tap in np.ndindex(*filt.shape[:3]):
        window = tuple(slice(2 * t, 2 * t + o) for t, o in zip(tap, outs, strict=True))
        want += x[(slice(None), *window)] @ filt[tap]
    np.testing.assert_allclose(run_onnx(model, [x])[0], want, **TOL)


def test_conv3d_ncdhw() -> None:
    filt, x = _rand((3, 3, 3, 2, 4), 1), _rand((1, 5, 6, 4, 2))
    xt = np.ascontiguousarray(np.transpose(x, (0, 4, 1, 2, 3)))
    model = lower_function(_conv3d(filt, 2, "SAME", data_format="NCDHW"),
                           [tf.TensorSpec(xt.shape, tf.float32)])
    assert "Transpose" not in _op_types(model)
    want = np.transpose(_conv3d(filt, 2, "SAME")(tf.constant(x)).numpy(), (0, 4, 1, 2, 3))
    np.testing.assert_allclose(run_onnx(model, [xt])[0], want, **TOL)


def _pool3d(op: str, ksize: int, stride: int, padding: str):
    def fn(x):
        return getattr(tf.raw_ops, op)(input=x, ksize=[1, ksize, ksize, ksize, 1],
                                       strides=[1, stride, stride, stride, 1], padding=padding)
    return fn


@pytest.mark.parametrize("op", ["MaxPool3D", "AvgPool3D"])
@pytest.mark.parametrize("ksize,stride", [(3, 2), (2, 2), (3, 1)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_pool3d(op: str, ksize: int, stride: int, padding: str) -> None:
    check_function(_pool3d(op, ksize, stride, padding), [_rand((2, 5, 6, 7, 3))], **TOL)


@pytest.mark.parametrize("op", ["MaxPool3D", "AvgPool3D"])
def test_pool3d_dynamic_dims(op: str) -> None:
    specs = [tf.TensorSpec([None, None, None, None, 2], tf.float32)]
    for size in (5, 6):
        check_function(_pool3d(op, 3, 2, "SAME"), [_rand((1, size, size + 1, 4, 2), size)],
                       specs=specs, **TOL)


def test_conv3d_pool3d_batch_norm_chain_keeps_the_layout() -> None:
    def fn(x):
        y = _conv3d(_rand((3, 3, 3, 2, 4), 1), 1, "SAME")(x)
        y = _batch_norm("FusedBatchNormV3", 4, data_format="NDHWC")(y)
        y = _pool3d("MaxPool3D", 2, 2, "VALID")(y)
        return _conv3d(_rand((1, 1, 1, 4, 3), 2), 1, "VALID")(y)

    model = check_function(fn, [_rand((2, 4, 6, 5, 2))], **TOL)
    assert _op_types(model).count("Transpose") == 2


# -- property-based: the conv/pool family over shapes and attributes ------------------------

_CONV_OPS = ["Conv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool", "Conv2DBackpropInput"]


@st.composite
def _window_cases(draw: st.DrawFn) -> dict:
    op = draw(st.sampled_from(_CONV_OPS))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.integers(1, 2))
    # TF's CPU kernels dilate only Conv2D
    dilation = draw(st.integers(1, 2)) if op == "Conv2D" else 1
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    reach = [(k - 1) * dilation + 1 for k in kernel]
    size = (draw(st.integers(max(3, reach[0]), 9)), draw(st.integers(max(3, reach[1]), 9)))
    return {"op": op, "kernel": kernel, "stride": stride, "dilation": dilation,
            "padding": padding, "size": size, "channels": draw(st.integers(1, 4)),
            "out_channels": draw(st.integers(1, 3)), "seed": draw(st.integers(0, 99))}


@settings(max_examples=25, deadline=None)
@given(_window_cases())
def test_conv_pool_family_property(case: dict) -> None:
    op, (kh, kw), s, d = case["op"], case["kernel"], case["stride"], case["dilation"]
    c, m, padding, (h, w) = case["channels"], case["out_channels"], case["padding"], case["size"]
    rng_seed = case["seed"]
    strides, dilations = [1, s, s, 1], [1, d, d, 1]
    if op in ("MaxPool", "AvgPool"):
        if padding == "SAME" and (kh < s or kw < s):
            kh, kw = max(kh, s), max(kw, s)  # a window smaller than its stride skips cells

        def fn(x):
            kwargs = {"input" if op == "MaxPool" else "value": x}
            return getattr(tf.raw_ops, op)(**kwargs, ksize=[1, kh, kw, 1], strides=strides,
                                           padding=padding)
        x = _rand((2, h, w, c), rng_seed)
    elif op == "Conv2DBackpropInput":
        filt = _rand((kh, kw, c, m), rng_seed + 1)
        outs = [_out_size(h, kh, s, padding), _out_size(w, kw, s, padding)]
        fn = _backprop([2, h, w, c], filt, s, padding)
        x = _rand((2, *outs, m), rng_seed)
    else:
        filt = _rand((kh, kw, c, m), rng_seed + 1)

        def fn(x):
            return getattr(tf.raw_ops, op)(input=x, filter=tf.constant(filt), strides=strides,
                                           padding=padding, dilations=dilations)
        x = _rand((2, h, w, c), rng_seed)
    specs = [tf.TensorSpec([None, *x.shape[1:]], tf.float32)]
    check_function(fn, [x], specs=specs, **TOL)


@settings(max_examples=25, deadline=None)
@given(op=st.sampled_from(["Conv3D", "MaxPool3D", "AvgPool3D"]),
       kernel=st.tuples(*[st.integers(1, 3)] * 3), stride=st.integers(1, 2),
       padding=st.sampled_from(["SAME", "VALID"]),
       size=st.tuples(*[st.integers(3, 6)] * 3), channels=st.integers(1, 3))
def test_conv3d_pool3d_property(op: str, kernel: tuple[int, int, int], stride: int,
                                padding: str, size: tuple[int, int, int], channels: int) -> None:
    if op != "Conv3D":
        kernel = tuple(max(k, stride) for k in kernel)
    x = _rand((1, *size, channels), sum(size))
    strides = [1, stride, stride, stride, 1]
    if op == "Conv3D":
        fn = _conv3d(_rand((*kernel, channels, 2), 1), stride, padding)
    else:
        def fn(x):
            return getattr(tf.raw_ops, op)(input=x, ksize=[1, *kernel, 1], strides=strides,
                                           padding=padding)
    check_function(fn, [x], specs=[tf.TensorSpec([None, *x.shape[1:]], tf.float32)], **TOL)


# -- layout ------------------------------------------------------------------------------------

def test_nhwc_chain_has_transposes_only_at_its_ends() -> None:
    def fn(x):
        y = _conv(_rand((3, 3, 3, 8), 1), 2, "VALID")(x)
        y = tf.raw_ops.Pad(input=y, paddings=tf.constant([[0, 0], [1, 1], [0, 1], [0, 0]]))
        y = _depthwise(_rand((3, 3, 8, 1), 2), 1, "VALID")(y)
        y = tf.raw_ops.MaxPool(input=y, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1],
                               padding="SAME")
        return _conv(_rand((1, 1, 8, 4), 3), 1, "SAME")(y)

    model = check_function(fn, [_rand((2, 13, 12, 3))], **TOL)
    assert _op_types(model).count("Transpose") == 2
    model = lower_function(fn, [tf.TensorSpec([None, 13, 12, 3], tf.float32)])
    assert _op_types(model).count("Transpose") == 2


def test_batch_norm_after_conv_keeps_the_layout() -> None:
    def fn(x):
        return _batch_norm("FusedBatchNormV3", 4)(_conv(_rand((3, 3, 3, 4), 1), 1, "SAME")(x))

    model = check_function(fn, [_rand((1, 6, 6, 3))], **TOL)
    assert _op_types(model).count("Transpose") == 2


# -- refusals -------------------------------------------------------------------------------------

X4 = [tf.TensorSpec([1, 8, 8, 4], tf.float32)]


def test_refuses_training_batch_norm() -> None:
    def fn(x):
        c = tf.ones([4])
        return tf.raw_ops.FusedBatchNormV3(x=x, scale=c, offset=c, mean=tf.zeros([0]),
                                           variance=tf.zeros([0]), is_training=True)[0]

    assert _refusal(fn, X4, "FusedBatchNormV3") == "is_training=True is not supported"


def test_refuses_non_constant_filter() -> None:
    def fn(x, w):
        return tf.raw_ops.Conv2D(input=x, filter=w, strides=[1, 1, 1, 1], padding="SAME")

    specs = [*X4, tf.TensorSpec([3, 3, 4, 2], tf.float32)]
    assert _refusal(fn, specs, "Conv2D") == "The input 1 of Conv2D must be a constant"


def test_refuses_unknown_rank_and_bad_dtype() -> None:
    fn = _conv(_rand((3, 3, 4, 2)), 1, "SAME")
    reason = _refusal(fn, [tf.TensorSpec(None, tf.float32)], "Conv2D")
    assert reason is not None and "must be 4-D" in reason
    reason = _refusal(lambda x: tf.raw_ops.MaxPool(input=x, ksize=[1, 2, 2, 1],
                                                   strides=[1, 2, 2, 1], padding="VALID"),
                      [tf.TensorSpec([1, 4, 4, 2], tf.int32)], "MaxPool")
    assert reason is not None and "Received: int32" in reason


def test_refuses_dynamic_same_padding_it_cannot_match() -> None:
    specs = [tf.TensorSpec([1, None, None, 4], tf.float32)]
    reason = _refusal(_conv(_rand((3, 3, 4, 2)), 2, "SAME", 2), specs, "Conv2D")
    assert reason is not None and "needs known spatial dimensions" in reason
    reason = _refusal(_pool("MaxPool", 2, 3, "SAME"), specs, "MaxPool")
    assert reason is not None and "smaller than the strides" in reason
    # with known dims the same nodes convert
    assert _refusal(_conv(_rand((3, 3, 4, 2)), 2, "SAME", 2), X4, "Conv2D") is None
    assert _refusal(_pool("MaxPool", 2, 3, "SAME"), X4, "MaxPool") is None


def test_backprop_input_refusals() -> None:
    filt = _rand((3, 3, 2, 4))

    def sizes_input(sizes, g):
        return tf.raw_ops.Conv2DBackpropInput(input_sizes=sizes, filter=tf.constant(filt),
                                              out_backprop=g, strides=[1, 2, 2, 1],
                                              padding="SAME")

    specs = [tf.TensorSpec([4], tf.int32), tf.TensorSpec([1, 4, 4, 4], tf.float32)]
    reason = _refusal(sizes_input, specs, "Conv2DBackpropInput")
    assert reason is not None and "spatial dimensions known from shape inference" in reason

    def filter_input(g, w):
        return tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.constant([1, 8, 8, 2]), filter=w,
                                              out_backprop=g, strides=[1, 2, 2, 1],
                                              padding="SAME")

    specs = [tf.TensorSpec([1, 4, 4, 4], tf.float32), tf.TensorSpec([3, 3, 2, 4], tf.float32)]
    assert (_refusal(filter_input, specs, "Conv2DBackpropInput")
            == "The input 1 of Conv2DBackpropInput must be a constant")


def test_refuses_pooling_over_channels() -> None:
    def fn(x):
        return tf.raw_ops.MaxPool(input=x, ksize=[1, 1, 1, 2], strides=[1, 1, 1, 2],
                                  padding="VALID")

    reason = _refusal(fn, X4, "MaxPool")
    assert reason is not None and "batch and channel dimensions must be 1" in reason

    def pool3d(x):
        return tf.raw_ops.MaxPool3D(input=x, ksize=[1, 1, 1, 1, 2], strides=[1, 1, 1, 1, 2],
                                    padding="VALID")

    reason = _refusal(pool3d, [tf.TensorSpec([1, 4, 4, 4, 4], tf.float32)], "MaxPool3D")
    assert reason is not None and "ksize on the batch and channel dimensions must be 1" in reason


def test_batch_norm_refuses_used_reserve_space_outputs() -> None:
    from tftrt.converters import conv as conv_module
    from tftrt.converters.context import NodeInfo

    vec = np.ones(3, np.float32)
    node = NodeInfo(name="bn", op="FusedBatchNormV3",
                    attrs={"T": np.dtype(np.float32), "is_training": False,
                           "data_format": "NHWC", "epsilon": 1e-3},
                    inputs=["x:0", "s:0", "o:0", "m:0", "v:0"],
                    input_dtypes=[np.dtype(np.float32)] * 5,
                    input_shapes=[(1, 4, 4, 3)] + [(3,)] * 4,
                    input_consts=[None, vec, vec, vec, vec],
                    output_dtypes=[np.dtype(np.float32)] * 6, output_shapes=[None] * 6,
                    used_outputs=frozenset({0, 3}))
    reason = conv_module.convert_batch_norm.validate(node)
    assert reason is not None and "reserve-space outputs [3]" in reason
    node.used_outputs = frozenset({0, 1})
    assert conv_module.convert_batch_norm.validate(node) is None


# -- FusedConv2DBiasActivation -----------------------------------------------------------
# TF 2.21 has no such op (it was tf.contrib's), so no TF graph here can hold it: the node
# is described by hand and the reference is TF computing the op's definition,
# act(conv_input_scale * conv2d(x, filter) + side_input_scale * side_input + bias).

def _fused_node(x: np.ndarray, filt: np.ndarray, bias: np.ndarray, side: np.ndarray | None,
                out_shape: tuple[int, ...], **attrs: object) -> NodeInfo:
    attrs = {"T": np.dtype(np.float32), "Tbias": np.dtype(np.float32), "padding": "SAME",
             "strides": [1, 1, 1, 1], "data_format": "NHWC", "filter_format": "HWIO",
             "activation_mode": "Relu", "conv_input_scale": 1.0, "side_input_scale": 0.0,
             **attrs}
    side_shape = None if side is None else tuple(side.shape)
    return NodeInfo(name="fused", op="FusedConv2DBiasActivation", attrs=attrs,
                    inputs=["x:0", "filter:0", "bias:0", "side:0"],
                    input_dtypes=[np.dtype(np.float32)] * 4,
                    input_shapes=[tuple(x.shape), tuple(filt.shape), tuple(bias.shape),
                                  side_shape],
                    input_consts=[None, filt, bias, None],
                    output_dtypes=[np.dtype(np.float32)], output_shapes=[out_shape])


def _lower_fused(node: NodeInfo, x: np.ndarray, side: np.ndarray | None) -> np.ndarray:
    from tftrt.compiler.lowering import TensorSpec, lower_nodes

    f32 = np.dtype(np.float32)
    specs = [TensorSpec("x:0", f32, tuple(x.shape))]
    feeds = [x]
    if side is not None:
        specs.append(TensorSpec("side:0", f32, tuple(side.shape)))
        feeds.append(side)
    out = TensorSpec("fused:0", f32, node.output_shapes[0])
    model = lower_nodes([node], specs, [out], get_registry(), "fused")
    return run_onnx(model, feeds)[0]


@pytest.mark.parametrize("data_format,filter_format", [("NHWC", "HWIO"), ("NCHW", "OIHW")])
@pytest.mark.parametrize("activation,side_scale,conv_scale",
                         [("Relu", 0.0, 1.0), ("None", 0.5, 2.0), ("Relu6", 1.0, 0.25)])
def test_fused_conv2d_bias_activation(data_format: str, filter_format: str, activation: str,
                                      side_scale: float, conv_scale: float) -> None:
    x, filt, bias = _rand((2, 9, 9, 3), 1) * 3, _rand((3, 3, 3, 5), 2), _rand((5,), 3)
    side = _rand((2, 5, 5, 5), 4)
    y = conv_scale * tf.nn.conv2d(x, filt, strides=2, padding="SAME") + side_scale * side + bias
    want = {"Relu": tf.nn.relu, "None": tf.identity, "Relu6": tf.nn.relu6}[activation](y).numpy()
    to_nchw = (0, 3, 1, 2)
    if data_format == "NCHW":
        x, side, want = (np.transpose(a, to_nchw) for a in (x, side, want))
    tf_filter = filt if filter_format == "HWIO" else np.transpose(filt, (3, 2, 0, 1))
    strides = [1, 1, 2, 2] if data_format == "NCHW" else [1, 2, 2, 1]
    node = _fused_node(x, tf_filter, bias, side, want.shape, data_format=data_format,
                       filter_format=filter_format, activation_mode=activation,
                       side_input_scale=side_scale, conv_input_scale=conv_scale,
                       strides=strides)
    conv = get_registry().converter("FusedConv2DBiasActivation")
    assert conv.validate(node) is None
    got = _lower_fused(node, x, side if side_scale else None)
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("attrs,reason", [
    ({"data_format": "NCHW_VECT_C"}, "data_format 'NCHW_VECT_C'"),
    ({"filter_format": "OIHW_VECT_I"}, "filter_format 'OIHW_VECT_I'"),
    ({"activation_mode": "BandPass"}, "activation_mode 'BandPass'"),
    ({"T": np.dtype(np.int8)}, "Allowed input dtypes"),
])
def test_fused_conv2d_bias_activation_refusals(attrs: dict, reason: str) -> None:
    x, filt, bias = _rand((1, 6, 6, 3)), _rand((3, 3, 3, 4)), _rand((4,))
    node = _fused_node(x, filt, bias, None, (1, 6, 6, 4), **attrs)
    refusal = get_registry().converter("FusedConv2DBiasActivation").validate(node)
    assert refusal is not None and reason in refusal
