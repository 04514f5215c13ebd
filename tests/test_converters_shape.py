"""Shape and data-movement converters against TensorFlow, and their layout handling."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from tftrt.compiler.lowering import node_info
from tftrt.plugins.manager import get_registry
from tftrt.testing import check_function, trace

F32 = tf.float32


def _rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _op_types(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _refusal(fn: Callable[..., object], specs: list[tf.TensorSpec], op: str) -> str | None:
    g, _, _ = trace(fn, specs)
    node = node_info(g, next(n for n in g.nodes if g.nodes[n]["op"] == op))
    return get_registry().converter(op).validate(node)


def _nchw_conv(channels: int = 4, seed: int = 7) -> Callable[[tf.Tensor], tf.Tensor]:
    """An NHWC 1x1 Conv2D: its output is held in NCHW layout by the lowering."""
    filt = tf.constant(_rand((1, 1, 3, channels), seed))
    return lambda x: tf.raw_ops.Conv2D(input=x, filter=filt, strides=[1, 1, 1, 1],
                                       padding="VALID")


X = _rand((2, 3, 4))
IMG = _rand((2, 5, 6, 3), 1)


# -- Reshape / Squeeze / ExpandDims -------------------------------------------------------

@pytest.mark.parametrize("shape", [[-1, 12], [4, 6], [2, -1, 2, 3], [24]])
def test_reshape(shape: list[int]) -> None:
    check_function(lambda x: tf.raw_ops.Reshape(tensor=x, shape=tf.constant(shape)), [X])


def test_reshape_dynamic_batch() -> None:
    fn = lambda x: tf.raw_ops.Reshape(tensor=x, shape=tf.constant([-1, 12], tf.int64))  # noqa: E731
    specs = [tf.TensorSpec([None, 3, 4], F32)]
    check_function(fn, [X], specs=specs)
    check_function(fn, [_rand((5, 3, 4))], specs=specs)


def test_reshape_to_a_computed_shape() -> None:
    def fn(x):  # what Keras Flatten traces to with a dynamic batch
        batch = tf.raw_ops.Shape(input=x)[0]
        shape = tf.raw_ops.Pack(values=[batch, tf.constant(-1)], axis=0)
        return tf.raw_ops.Reshape(tensor=x, shape=shape)

    specs = [tf.TensorSpec([None, 3, 4], F32)]
    check_function(fn, [X], specs=specs)
    # an empty batch: a computed 0 is a zero-sized dimension, as in TF
    def swap(x):
        dims = tf.raw_ops.Shape(input=x, out_type=tf.int64)
        return tf.raw_ops.Reshape(tensor=x, shape=tf.raw_ops.Pack(values=[dims[1], dims[0],
                                                                          dims[2]]))

    model = check_function(swap, [_rand((0, 3, 4))], specs=specs)
    assert [n.attribute[0].i for n in model.graph.node if n.op_type == "Reshape"] == [1]


def test_reshape_after_conv_reads_tf_layout() -> None:
    def fn(x):
        return tf.raw_ops.Reshape(tensor=_nchw_conv()(x), shape=tf.constant([2, -1]))

    check_function(fn, [IMG], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dims", [[1], [-3], [1, 3], []])
def test_squeeze(dims: list[int]) -> None:
    x = _rand((2, 1, 4, 1))
    check_function(lambda t: tf.raw_ops.Squeeze(input=t, axis=dims), [x])


def test_squeeze_after_conv_keeps_layout() -> None:
    def fn(x):
        return tf.raw_ops.Squeeze(input=_nchw_conv()(x), axis=[1, 2])

    model = check_function(fn, [_rand((2, 1, 1, 3))], rtol=1e-4, atol=1e-4)
    # NHWC [N,1,1,C] is held as [N,C,1,1]: squeezing leaves [N,C] in TF layout
    assert _op_types(model).count("Transpose") == 1

    def fn2(x):
        return tf.raw_ops.Squeeze(input=_nchw_conv()(x), axis=[1])

    check_function(fn2, [_rand((2, 1, 4, 3))], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("axis", [0, 1, 3, -1, -4])
def test_expand_dims(axis: int) -> None:
    check_function(lambda x: tf.raw_ops.ExpandDims(input=x, axis=tf.constant(axis)), [X])


# -- Pad / PadV2 / MirrorPad -------------------------------------------------------------------

PADS = [[1, 0], [0, 2], [1, 3]]


def test_pad() -> None:
    check_function(lambda x: tf.raw_ops.Pad(input=x, paddings=tf.constant(PADS)), [X])
    xi = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    check_function(lambda x: tf.raw_ops.Pad(input=x, paddings=tf.constant(PADS, tf.int64)),
                   [xi])


def test_pad_v2() -> None:
    check_function(lambda x: tf.raw_ops.PadV2(input=x, paddings=tf.constant(PADS),
                                              constant_values=tf.constant(1.5)), [X])


@pytest.mark.parametrize("mode,pads", [("REFLECT", [[1, 0], [2, 2], [3, 1]]),
                                       ("SYMMETRIC", [[2, 1], [0, 3], [4, 1]])])
def test_mirror_pad(mode: str, pads: list[list[int]]) -> None:
    check_function(lambda x: tf.raw_ops.MirrorPad(input=x, paddings=tf.constant(pads),
                                                  mode=mode), [X])


@pytest.mark.parametrize("op", ["Pad", "MirrorPad"])
def test_pad_after_conv_keeps_layout(op: str) -> None:
    pads = tf.constant([[0, 0], [1, 2], [2, 1], [0, 0]])

    def fn(x):
        y = _nchw_conv()(x)
        if op == "Pad":
            return tf.raw_ops.Pad(input=y, paddings=pads)
        return tf.raw_ops.MirrorPad(input=y, paddings=pads, mode="SYMMETRIC")

    model = check_function(fn, [IMG], rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 2


# -- ConcatV2 / Pack ------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis: int) -> None:
    y = _rand((2, 3, 4), 1)
    c = _rand((2, 3, 4), 2)
    check_function(lambda a, b: tf.raw_ops.ConcatV2(values=[a, tf.constant(c), b],
                                                    axis=tf.constant(axis)), [X, y])


def test_concat_after_convs_keeps_layout() -> None:
    c = _rand((2, 5, 6, 2), 3)

    def fn(x):
        a, b = _nchw_conv(4, 1)(x), _nchw_conv(3, 2)(x)
        return tf.raw_ops.ConcatV2(values=[a, tf.constant(c), b], axis=tf.constant(-1))

    model = check_function(fn, [IMG], rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 2

    def mixed(x):  # one input in NCHW layout, one in TF layout
        return tf.raw_ops.ConcatV2(values=[_nchw_conv(4, 1)(x), x], axis=tf.constant(3))

    check_function(mixed, [IMG], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_pack(axis: int) -> None:
    check_function(lambda a, b: tf.raw_ops.Pack(values=[a, b, a], axis=axis),
                   [X, _rand((2, 3, 4), 1)])


def test_pack_scalars_from_shape() -> None:
    def fn(x):
        batch = tf.raw_ops.Shape(input=x)[0]
        return tf.raw_ops.Pack(values=[batch, tf.constant(12)], axis=0)

    check_function(fn, [X], specs=[tf.TensorSpec([None, 3, 4], F32)])


# -- Transpose / Shape / Cast ---------------------------------------------------------------------

@pytest.mark.parametrize("perm", [[2, 0, 1], [0, 2, 1], [0, 1, 2]])
def test_transpose(perm: list[int]) -> None:
    model = check_function(lambda x: tf.raw_ops.Transpose(x=x, perm=tf.constant(perm)), [X])
    assert _op_types(model).count("Transpose") == (0 if perm == [0, 1, 2] else 1)


def test_transpose_after_conv_is_folded() -> None:
    def fn(x):  # NHWC -> NCHW, which is how the conv output is held already
        return tf.raw_ops.Transpose(x=_nchw_conv()(x), perm=tf.constant([0, 3, 1, 2]))

    model = check_function(fn, [IMG], rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 1

    def fn2(x):
        y = tf.raw_ops.Transpose(x=_nchw_conv()(x), perm=tf.constant([2, 0, 3, 1]))
        return tf.raw_ops.Transpose(x=y, perm=tf.constant([1, 3, 0, 2]))

    model = check_function(fn2, [IMG], rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 2


@pytest.mark.parametrize("out_type", [tf.int32, tf.int64])
def test_shape(out_type: tf.DType) -> None:
    fn = lambda x: tf.raw_ops.Shape(input=x, out_type=out_type)  # noqa: E731
    model = check_function(fn, [X])
    assert "Shape" not in _op_types(model)  # a static shape is a constant
    check_function(fn, [X], specs=[tf.TensorSpec([None, 3, None], F32)])


def test_shape_after_conv_with_dynamic_dims() -> None:
    def fn(x):
        return tf.raw_ops.Shape(input=_nchw_conv()(x))

    model = check_function(fn, [IMG], specs=[tf.TensorSpec([None, None, None, 3], F32)],
                           rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 1


@pytest.mark.parametrize("src,dst", [(np.float32, tf.int32), (np.float32, tf.int64),
                                     (np.float32, tf.float16), (np.float32, tf.bool),
                                     (np.int32, tf.float32), (np.int64, tf.int32),
                                     (np.bool_, tf.float32), (np.float16, tf.float32),
                                     (np.float32, tf.float32)])
def test_cast(src: type, dst: tf.DType) -> None:
    x = (_rand((3, 4)) * 3).astype(src)
    x.flat[0] = 0
    check_function(lambda t: tf.raw_ops.Cast(x=t, DstT=dst), [x])


def test_cast_after_conv_keeps_layout() -> None:
    def fn(x):
        return tf.raw_ops.Cast(x=_nchw_conv()(x), DstT=tf.float16)

    model = check_function(fn, [IMG], rtol=1e-2, atol=1e-2)
    assert _op_types(model).count("Transpose") == 2


# -- Slice / StridedSlice -------------------------------------------------------------------------

@pytest.mark.parametrize("begin,size", [([0, 1, 1], [2, 2, -1]), ([1, 0, 3], [-1, -1, 1])])
def test_slice(begin: list[int], size: list[int]) -> None:
    check_function(lambda x: tf.raw_ops.Slice(input=x, begin=tf.constant(begin),
                                              size=tf.constant(size)), [X])


def test_slice_after_conv_keeps_layout() -> None:
    def fn(x):
        y = _nchw_conv()(x)
        return tf.raw_ops.Slice(input=y, begin=tf.constant([0, 1, 2, 1]),
                                size=tf.constant([-1, 3, -1, 2]))

    model = check_function(fn, [IMG], rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 2


STRIDED: list[Callable[[tf.Tensor], tf.Tensor]] = [
    lambda x: x[1:3, ::2],
    lambda x: x[:, -1],
    lambda x: x[..., 1],
    lambda x: x[1, ..., -2:],
    lambda x: x[::-1],
    lambda x: x[:, 3:0:-2, ::-3],
    lambda x: x[:, -10:10, -2:],
    lambda x: x[-1, 2, 3],
    lambda x: x[tf.newaxis, 1:, ...],
    lambda x: x[:, None, 2, None],
    lambda x: x[..., None],
    lambda x: x[1:, ..., tf.newaxis, ::2],
]


@pytest.mark.parametrize("k", range(len(STRIDED)))
def test_strided_slice(k: int) -> None:
    x = _rand((4, 5, 6))
    check_function(STRIDED[k], [x])
    check_function(STRIDED[k], [x], specs=[tf.TensorSpec([None, None, 6], F32)])


def test_strided_slice_negative_stride_starting_before_the_first_element() -> None:
    fn = lambda x: x[-7::-1, -9:1:-2]  # noqa: E731 - TF: empty on axis 0, clamped on axis 1
    check_function(fn, [_rand((4, 5, 6))])
    # whether the start is before the first element depends on the size
    reason = _refusal(fn, _spec([None, 5, 6]), "StridedSlice")
    assert reason is not None and "needs a known dimension" in reason


def test_strided_slice_raw_masks() -> None:
    def fn(x):
        return tf.raw_ops.StridedSlice(input=x, begin=tf.constant([1, 7, 0]),
                                       end=tf.constant([0, -1, 2]), strides=tf.constant([1, 1, -1]),
                                       begin_mask=2, end_mask=5, shrink_axis_mask=0)

    check_function(fn, [_rand((3, 4, 5))])


def test_strided_slice_after_conv() -> None:
    model = check_function(lambda x: _nchw_conv()(x)[:, 1:4, ::2, 1], [IMG], rtol=1e-4,
                           atol=1e-4)
    # held as NCHW: slicing and squeezing the channel axis leaves TF layout, no transpose back
    assert _op_types(model).count("Transpose") == 1
    check_function(lambda x: _nchw_conv()(x)[:, None, 1], [IMG], rtol=1e-4, atol=1e-4)


# -- GatherV2 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather(axis: int) -> None:
    idx = np.array([[1, 0], [1, 1]], dtype=np.int32)
    check_function(lambda x, i: tf.raw_ops.GatherV2(params=x, indices=i, axis=tf.constant(axis)),
                   [X, idx])


def test_gather_from_constant_table() -> None:
    table = _rand((10, 4), 3)
    idx = np.array([3, 9, 0, 3], dtype=np.int64)
    check_function(lambda i: tf.raw_ops.GatherV2(params=tf.constant(table), indices=i,
                                                 axis=tf.constant(0, tf.int64)), [idx])


# -- refusals -------------------------------------------------------------------------------------

def _spec(shape: list[int | None] | None, dtype: tf.DType = F32) -> list[tf.TensorSpec]:
    return [tf.TensorSpec(shape, dtype)]


def test_refusals() -> None:
    cases = [
        (lambda x: tf.raw_ops.Reshape(tensor=x, shape=tf.constant([0, 4])), _spec([None, 4]),
         "Reshape", "zero dimension"),
        (lambda x: tf.raw_ops.Squeeze(input=x, axis=[]), _spec([2, None, 1]), "Squeeze",
         "fully known input shape"),
        (lambda x: tf.raw_ops.MirrorPad(input=x, paddings=tf.constant([[3, 0], [0, 0]]),
                                        mode="REFLECT"), _spec([3, 4]), "MirrorPad",
         "too large"),
        (lambda x: tf.raw_ops.ConcatV2(values=[x, x], axis=tf.constant(0)), _spec(None),
         "ConcatV2", "known rank"),
        (lambda x: tf.raw_ops.Cast(x=x, DstT=tf.float64), _spec([2]), "Cast",
         "DstT must be one of"),
        (lambda x: tf.raw_ops.GatherV2(params=x, indices=tf.constant([[0]]), axis=1,
                                       batch_dims=1), _spec([1, 2]), "GatherV2",
         "batch_dims=1 is not supported"),
        (lambda x: tf.raw_ops.Transpose(x=x, perm=tf.constant([1, 0])), _spec([2, 2], tf.string),
         "Transpose", "Allowed input dtypes"),
    ]
    for fn, specs, op, expected in cases:
        reason = _refusal(fn, specs, op)
        assert reason is not None and expected in reason, (op, reason)


def test_refuses_non_constant_strided_slice() -> None:
    def fn(x, b):
        return tf.raw_ops.StridedSlice(input=x, begin=b, end=tf.constant([2]),
                                       strides=tf.constant([1]))

    reason = _refusal(fn, [*_spec([4]), *_spec([1], tf.int32)], "StridedSlice")
    assert reason == "The input 1 of StridedSlice must be a constant"
