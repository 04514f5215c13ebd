"""Shape and data-movement converters against TensorFlow, and their layout handling."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.converter_layout import lower_one
from tests.converter_layout import node_info as layout_node_info
from tftrt.compiler.lowering import node_info
from tftrt.plugins.manager import get_registry
from tftrt.testing import check_function, lower_function, run_onnx, trace

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
    # NHWC [N,1,1,C] is held as [N,C,1,1] (moved there by Squeeze/Unsqueeze, as H and W are
    # 1): squeezing leaves [N,C] in TF layout, so no Transpose at all
    assert "Transpose" not in _op_types(model)

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


def test_slice_with_computed_begin_and_size() -> None:
    def fn(x, begin):
        size = tf.concat([tf.shape(x)[:1] - begin[:1], tf.constant([-1, 2])], axis=0)
        return tf.raw_ops.Slice(input=x, begin=begin, size=size)

    begin = np.array([1, 0, 2], np.int32)
    check_function(fn, [X, begin],
                   specs=[tf.TensorSpec([None, *X.shape[1:]], tf.float32),
                          tf.TensorSpec([3], tf.int32)])


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


# -- Unpack / Split / SplitV ---------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_unpack(axis: int) -> None:
    num = X.shape[axis]
    check_function(lambda x: tuple(tf.raw_ops.Unpack(value=x, num=num, axis=axis)), [X])


def test_unpack_dynamic_batch_and_single_part() -> None:
    fn = lambda x: tuple(tf.raw_ops.Unpack(value=x, num=3, axis=1))  # noqa: E731
    check_function(fn, [X], specs=[tf.TensorSpec([None, 3, None], F32)])
    check_function(lambda x: tf.raw_ops.Unpack(value=x, num=1, axis=0)[0], [X[:1]])


def test_unpack_after_conv_keeps_layout() -> None:
    def fn(x):  # unpacking the channels of an NCHW-held tensor leaves [N, H, W] in TF layout
        return tuple(tf.raw_ops.Unpack(value=_nchw_conv()(x), num=4, axis=3))

    model = check_function(fn, [IMG], rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 1


@pytest.mark.parametrize("axis,num", [(0, 2), (2, 2), (-1, 4), (1, 1)])
def test_split(axis: int, num: int) -> None:
    fn = lambda x: tuple(tf.raw_ops.Split(axis=tf.constant(axis), value=x, num_split=num))  # noqa: E731
    check_function(fn, [X])


def test_split_of_an_unknown_dimension() -> None:
    fn = lambda x: tuple(tf.raw_ops.Split(axis=tf.constant(0), value=x, num_split=2))  # noqa: E731
    specs = [tf.TensorSpec([None, 3, 4], F32)]
    check_function(fn, [_rand((4, 3, 4))], specs=specs)
    check_function(fn, [_rand((6, 3, 4))], specs=specs)


def test_split_after_conv_keeps_layout() -> None:
    def fn(x):
        a, b = tf.raw_ops.Split(axis=tf.constant(3), value=_nchw_conv()(x), num_split=2)
        return _nchw_conv(3, 1)(tf.concat([a, b[..., :1]], axis=3))

    model = check_function(fn, [IMG], rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 2


@pytest.mark.parametrize("sizes,axis", [([1, 2, 1], 2), ([2, -1], 1), ([2], 0),
                                        ([0, 3, 1], -1), ([1, 1], 0)])
def test_split_v(sizes: list[int], axis: int) -> None:
    def fn(x):
        return tuple(tf.raw_ops.SplitV(value=x, size_splits=tf.constant(sizes),
                                       axis=tf.constant(axis), num_split=len(sizes)))

    check_function(fn, [X])


def test_split_v_rest_of_an_unknown_dimension() -> None:
    def fn(x):
        return tuple(tf.raw_ops.SplitV(value=x, size_splits=tf.constant([1, -1, 2], tf.int64),
                                       axis=tf.constant(-1), num_split=3))

    specs = [tf.TensorSpec([2, 3, None], F32)]
    check_function(fn, [_rand((2, 3, 5))], specs=specs)
    check_function(fn, [_rand((2, 3, 3))], specs=specs)


# -- Tile / BroadcastTo / Fill ----------------------------------------------------------------

@pytest.mark.parametrize("multiples", [[1, 2, 3], [2, 1, 1], [1, 1, 1], [3, 0, 1]])
def test_tile(multiples: list[int]) -> None:
    check_function(lambda x: tf.raw_ops.Tile(input=x, multiples=tf.constant(multiples)), [X])


def test_tile_multiples_tensor_and_layout() -> None:
    fn = lambda x, m: tf.raw_ops.Tile(input=x, multiples=m)  # noqa: E731
    specs = [tf.TensorSpec([None, 3, 4], F32), tf.TensorSpec([3], tf.int64)]
    check_function(fn, [X, np.array([2, 1, 3], np.int64)], specs=specs)
    xi = np.arange(6, dtype=np.int32).reshape(2, 3)
    check_function(fn, [xi, np.array([3, 2], np.int32)])

    def after_conv(x, m):
        return tf.raw_ops.Tile(input=_nchw_conv()(x), multiples=m)

    model = check_function(after_conv, [IMG, np.array([1, 2, 1, 3], np.int32)],
                           rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 2


def test_broadcast_to() -> None:
    fn = lambda x: tf.raw_ops.BroadcastTo(input=x, shape=tf.constant([5, 2, 3, 4]))  # noqa: E731
    check_function(fn, [X])
    check_function(lambda x: tf.raw_ops.BroadcastTo(input=x, shape=tf.constant([3, 4])),
                   [_rand((1, 4))])

    def dynamic(like, x):  # a shape computed in the graph
        return tf.raw_ops.BroadcastTo(input=x, shape=tf.raw_ops.Shape(input=like))

    specs = [tf.TensorSpec([None, None], F32), tf.TensorSpec([None, 1], F32)]
    check_function(dynamic, [_rand((3, 5), 1), _rand((3, 1))], specs=specs)


def test_fill() -> None:
    check_function(lambda x: x + tf.raw_ops.Fill(dims=tf.constant([2, 3, 4]),
                                                 value=tf.constant(2.5)), [X])

    def dynamic(x, v):  # zeros_like-style with a dynamic shape and a tensor value
        return tf.raw_ops.Fill(dims=tf.raw_ops.Shape(input=x, out_type=tf.int64), value=v)

    specs = [tf.TensorSpec([None, 3, None], F32), tf.TensorSpec([], tf.int32)]
    check_function(dynamic, [X, np.array(7, np.int32)], specs=specs)
    check_function(lambda x: tf.raw_ops.Fill(dims=tf.raw_ops.Shape(input=x),
                                             value=tf.constant(True)), [X])


# -- Range -------------------------------------------------------------------------------------

RANGES = [(0, 10, 3, tf.int32), (10, -3, -4, tf.int32), (5, 5, 1, tf.int32),
          (2, 17, 5, tf.int64), (0.0, 1.0, 0.1, F32), (0.3, 77.7, 0.37, F32),
          (5.0, -3.2, -0.7, F32), (1.0, 1.0, 0.5, F32)]


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64, F32])
def test_range(dtype: tf.DType) -> None:
    fn = lambda s, lim, d: tf.raw_ops.Range(start=s, limit=lim, delta=d)  # noqa: E731
    model = lower_function(fn, [tf.TensorSpec([], dtype)] * 3)
    for case in RANGES:
        if case[3] != dtype:
            continue
        values = [np.array(v, dtype.as_numpy_dtype) for v in case[:3]]
        want = fn(*[tf.constant(v) for v in values]).numpy()
        # TF computes start + i * delta: ONNX Range's running sum would drift
        np.testing.assert_array_equal(run_onnx(model, values)[0], want, err_msg=str(case))


@pytest.mark.parametrize("start,limit,delta,dtype", [RANGES[1], RANGES[5]])
def test_range_of_constants(start: float, limit: float, delta: float, dtype: tf.DType) -> None:
    def fn(x):  # a Range of constants next to an input: the engine computes it
        r = tf.raw_ops.Range(start=tf.constant(start, dtype), limit=tf.constant(limit, dtype),
                             delta=tf.constant(delta, dtype))
        return r, x

    check_function(fn, [np.zeros(1, np.float32)], rtol=0, atol=0)


def test_range_up_to_a_dimension() -> None:
    def fn(x):
        n = tf.raw_ops.Shape(input=x)[1]
        return tf.raw_ops.Range(start=tf.constant(0), limit=n, delta=tf.constant(1))

    check_function(fn, [X], specs=[tf.TensorSpec([2, None, 4], F32)])


# -- DataFormatVecPermute -----------------------------------------------------------------------

def test_data_format_vec_permute() -> None:
    conv = get_registry().converter("DataFormatVecPermute")
    for src, dst in [("NHWC", "NCHW"), ("NCHW", "NHWC"), ("NDHWC", "NCDHW"), ("NHWC", "HWNC")]:
        for shape in ("full", "spatial", "pairs"):
            n = len(src) - 2 if shape == "spatial" else len(src)
            x = np.arange(2 * n).reshape((n, 2) if shape == "pairs" else (2, n))
            x = (x if shape == "pairs" else x[0] * 10 + 1).astype(
                np.int64 if shape == "pairs" else np.int32)
            node = layout_node_info("DataFormatVecPermute", [x], src_format=src, dst_format=dst)
            want = tf.raw_ops.DataFormatVecPermute(x=x, src_format=src, dst_format=dst).numpy()
            np.testing.assert_array_equal(lower_one(conv, node, [x], [None])[0], want,
                                          err_msg=f"{src} -> {dst}, {shape}")
    # as traced from a graph
    check_function(lambda t: tf.raw_ops.DataFormatVecPermute(x=t), [np.arange(4, dtype=np.int32)])


# -- DepthToSpace / SpaceToDepth ------------------------------------------------------------------

@pytest.mark.parametrize("block", [2, 3])
def test_depth_to_space_and_back(block: int) -> None:
    x = _rand((2, 3, 4, 2 * block * block))
    model = check_function(lambda t: tf.raw_ops.DepthToSpace(input=t, block_size=block), [x])
    assert _op_types(model).count("Transpose") == 2
    check_function(lambda t: tf.raw_ops.SpaceToDepth(input=t, block_size=block),
                   [_rand((2, 3 * block, 2 * block, 3))])
    specs = [tf.TensorSpec([None, None, None, 2 * block * block], F32)]
    check_function(lambda t: tf.raw_ops.DepthToSpace(input=t, block_size=block), [x],
                   specs=specs)
    check_function(lambda t: tf.raw_ops.SpaceToDepth(input=t, block_size=block),
                   [_rand((1, 2 * block, block, 3))], specs=[tf.TensorSpec([None, None, None, 3],
                                                                         F32)])


def test_depth_to_space_between_convs_adds_no_transposes() -> None:
    filt = tf.constant(_rand((1, 1, 2, 3), 5))

    def fn(x):
        y = tf.raw_ops.DepthToSpace(input=_nchw_conv(8)(x), block_size=2)
        y = tf.raw_ops.Conv2D(input=y, filter=filt, strides=[1, 1, 1, 1], padding="VALID")
        return tf.raw_ops.SpaceToDepth(input=y, block_size=2)

    model = check_function(fn, [IMG], rtol=1e-4, atol=1e-4)
    assert _op_types(model).count("Transpose") == 2


def test_depth_to_space_nchw() -> None:
    # TF's CPU kernel is NHWC only: compare with the NHWC result transposed
    for op in ("DepthToSpace", "SpaceToDepth"):
        data = _rand((1, 3, 4, 8)) if op == "DepthToSpace" else _rand((1, 4, 6, 2))
        data_t = np.ascontiguousarray(np.transpose(data, (0, 3, 1, 2)))
        fn = lambda t, op=op: getattr(tf.raw_ops, op)(input=t, block_size=2,  # noqa: E731
                                                      data_format="NCHW")
        model = lower_function(fn, [tf.TensorSpec(data_t.shape, F32)])
        assert "Transpose" not in _op_types(model)
        want = getattr(tf.raw_ops, op)(input=data, block_size=2).numpy()
        np.testing.assert_array_equal(run_onnx(model, [data_t])[0],
                                      np.transpose(want, (0, 3, 1, 2)))


# -- shape subgraphs with unknown dimensions ----------------------------------------------------

def test_shape_strided_slice_pack_reshape() -> None:
    def fn(x):  # [N, H, W, C] -> [N, H * W, C] with every dimension computed
        dims = tf.raw_ops.Shape(input=x)
        n, h, w, c = (tf.raw_ops.StridedSlice(input=dims, begin=[k], end=[k + 1], strides=[1],
                                              shrink_axis_mask=1) for k in range(4))
        return tf.raw_ops.Reshape(tensor=x, shape=tf.raw_ops.Pack(values=[n, h * w, c]))

    specs = [tf.TensorSpec([None, None, None, 3], F32)]
    check_function(fn, [IMG], specs=specs)
    check_function(fn, [_rand((1, 2, 7, 3))], specs=specs)


def test_shape_prod_reshape() -> None:
    def fn(x):  # flatten all but the batch, as tf.keras Flatten does with unknown dims
        dims = tf.raw_ops.Shape(input=x)
        rest = tf.raw_ops.Prod(input=dims[1:], axis=tf.constant([0]), keep_dims=True)
        shape = tf.raw_ops.ConcatV2(values=[dims[:1], rest], axis=tf.constant(0))
        return tf.raw_ops.Reshape(tensor=x, shape=shape)

    def packed(x):  # the product as a scalar, packed with the batch size
        dims = tf.raw_ops.Shape(input=x)
        rest = tf.raw_ops.Prod(input=dims[1:], axis=tf.constant(0))
        return tf.raw_ops.Reshape(tensor=x, shape=tf.raw_ops.Pack(values=[dims[0], rest]))

    specs = [tf.TensorSpec([None, None, 4], F32)]
    for f in (fn, packed):
        check_function(f, [X], specs=specs)
        check_function(f, [_rand((3, 1, 4))], specs=specs)


def test_shape_subgraph_after_conv() -> None:
    def fn(x):
        y = _nchw_conv()(x)
        dims = tf.raw_ops.Shape(input=y)
        return tf.raw_ops.Reshape(tensor=y, shape=tf.raw_ops.Pack(values=[dims[0], -1]))

    check_function(fn, [IMG], specs=[tf.TensorSpec([None, None, None, 3], F32)],
                   rtol=1e-4, atol=1e-4)


# -- property-based: slicing and reshaping --------------------------------------------------------

@st.composite
def _strided_slices(draw: st.DrawFn) -> tuple[tuple[int, ...], list[int], list[int], list[int],
                                              dict[str, int]]:
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    n = len(shape)
    begin = draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n))
    end = draw(st.lists(st.integers(-6, 6), min_size=n, max_size=n))
    strides = draw(st.lists(st.sampled_from([-3, -2, -1, 1, 2, 3]), min_size=n, max_size=n))
    masks = {k: draw(st.integers(0, 2 ** n - 1)) for k in ("begin_mask", "end_mask")}
    shrink = draw(st.integers(0, 2 ** n - 1))
    new_axis = draw(st.integers(0, 2 ** n - 1))
    # TF's rules: shrinking needs an in-range begin and a positive stride
    for k in range(n):
        if shrink >> k & 1:
            if new_axis >> k & 1 or strides[k] < 0 or not -shape[k] <= begin[k] < shape[k]:
                shrink &= ~(1 << k)
    if draw(st.booleans()):
        ellipsis = 1 << draw(st.integers(0, n - 1))
        shrink &= ~ellipsis
        new_axis &= ~ellipsis
    else:
        ellipsis = 0
    masks.update(shrink_axis_mask=shrink, new_axis_mask=new_axis, ellipsis_mask=ellipsis)
    return shape, begin, end, strides, masks


def _lower_node(op: str, values: list[np.ndarray], perm: tuple[int, ...] | None,
                dynamic: bool, **attrs) -> np.ndarray | None:
    """Input 0 held in layout ``perm`` (others constant) through ``op``'s converter, or None
    if the converter refuses the node; with ``dynamic`` every input-0 dimension is unknown."""
    shapes = [tuple(None for _ in values[0].shape) if dynamic else values[0].shape,
              *[v.shape for v in values[1:]]]
    node = layout_node_info(op, values, consts=tuple(range(1, len(values))), shapes=shapes,
                            **attrs)
    conv = get_registry().converter(op)
    if conv.validate(node) is not None:
        return None
    return lower_one(conv, node, values, [perm, *[None] * (len(values) - 1)])[0]


@settings(max_examples=25, deadline=None)
@given(_strided_slices(), st.data())
def test_strided_slice_with_computed_bounds_property(case, data: st.DataObject) -> None:
    """Begin and end computed by the graph (positive strides, masks as drawn)."""
    shape, begin, end, strides, masks = case
    strides = [abs(s) for s in strides]
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    b, e = np.array(begin, np.int32), np.array(end, np.int32)
    try:
        want = tf.raw_ops.StridedSlice(input=x, begin=b, end=e, strides=strides,
                                       **masks).numpy()
    except tf.errors.InvalidArgumentError:
        return

    def fn(t, bb, ee):
        return tf.raw_ops.StridedSlice(input=t, begin=bb, end=ee, strides=strides, **masks)

    model = lower_function(fn, [tf.TensorSpec(shape, tf.float32),
                                tf.TensorSpec([len(begin)], tf.int32),
                                tf.TensorSpec([len(begin)], tf.int32)])
    np.testing.assert_array_equal(run_onnx(model, [x, b, e])[0], want)


@settings(max_examples=25, deadline=None)
@given(_strided_slices(), st.booleans(), st.data())
def test_strided_slice_property(case, dynamic: bool, data: st.DataObject) -> None:
    shape, begin, end, strides, masks = case
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    args = [np.array(v, np.int32) for v in (begin, end, strides)]
    try:
        want = tf.raw_ops.StridedSlice(input=x, begin=args[0], end=args[1], strides=args[2],
                                       **masks).numpy()
    except tf.errors.InvalidArgumentError:  # a slice TF itself rejects
        return
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    got = _lower_node("StridedSlice", [x, *args], perm, dynamic, **masks)
    if got is None:  # some slices need known sizes: those must convert
        assert dynamic
        got = _lower_node("StridedSlice", [x, *args], perm, False, **masks)
    np.testing.assert_array_equal(got, want)


@st.composite
def _reshapes(draw: st.DrawFn) -> tuple[tuple[int, ...], list[int]]:
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    size = int(np.prod(shape))
    target: list[int] = []
    rest = size
    while rest > 1 and len(target) < 4:
        divisor = draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0]))
        target.append(divisor)
        rest //= divisor
    target.append(rest)
    target = draw(st.permutations(target))
    if draw(st.booleans()):  # one dimension inferred
        target[draw(st.integers(0, len(target) - 1))] = -1
    return shape, list(target)


@settings(max_examples=25, deadline=None)
@given(_reshapes(), st.booleans(), st.data())
def test_reshape_property(case, dynamic: bool, data: st.DataObject) -> None:
    shape, target = case
    if dynamic and -1 not in target:
        target = [-1, *target[1:]]
    x = _rand(shape)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    got = _lower_node("Reshape", [x, np.array(target, np.int32)], perm, dynamic)
    np.testing.assert_array_equal(got, tf.raw_ops.Reshape(tensor=x, shape=target).numpy())


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.sampled_from([1, 1, 2, 3]), min_size=1, max_size=5),
       data=st.data())
def test_squeeze_expand_dims_property(shape: list[int], data: st.DataObject) -> None:
    rank = len(shape)
    ones = [k for k, d in enumerate(shape) if d == 1]
    dims = data.draw(st.lists(st.sampled_from(ones), unique=True) if ones else st.just([]))
    dims = [d - rank if data.draw(st.booleans()) else d for d in dims]
    axis = data.draw(st.integers(-rank - 1, rank))
    perm = tuple(data.draw(st.permutations(range(rank))))
    x = _rand(tuple(shape))
    # an empty squeeze_dims needs the input shape; listed dims do not
    got = _lower_node("Squeeze", [x], perm, bool(dims), squeeze_dims=dims)
    np.testing.assert_array_equal(got, tf.raw_ops.Squeeze(input=x, axis=dims).numpy())
    got = _lower_node("ExpandDims", [x, np.array(axis, np.int32)], perm, data.draw(st.booleans()))
    np.testing.assert_array_equal(got, tf.raw_ops.ExpandDims(input=x, axis=axis).numpy())


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
        (lambda x: tf.raw_ops.GatherV2(params=x, indices=tf.constant([[0]]), axis=1),
         _spec(None), "GatherV2", "must have a known rank"),
        (lambda x: tf.raw_ops.Transpose(x=x, perm=tf.constant([1, 0])), _spec([2, 2], tf.string),
         "Transpose", "Allowed input dtypes"),
        (lambda x: tf.raw_ops.Unpack(value=x, num=2), _spec(None), "Unpack", "known rank"),
        (lambda x: tf.raw_ops.Tile(input=x, multiples=tf.constant([2])), _spec(None), "Tile",
         "known rank"),
        (lambda x: tf.raw_ops.Range(start=x, limit=tf.constant(3.0, tf.float64),
                                    delta=tf.constant(1.0, tf.float64)), _spec([], tf.float64),
         "Range", "Received: double"),
        (lambda x: tf.raw_ops.DataFormatVecPermute(x=x), _spec([None], tf.int32),
         "DataFormatVecPermute", "known first dimension"),
        (lambda x: tf.raw_ops.DepthToSpace(input=x, block_size=2), _spec([1, 2, 2, 4], tf.int32),
         "DepthToSpace", "Received: int32"),
    ]
    for fn, specs, op, expected in cases:
        reason = _refusal(fn, specs, op)
        assert reason is not None and expected in reason, (op, reason)


def test_refuses_non_constant_strided_slice() -> None:
    def fn(x, b):
        return tf.raw_ops.StridedSlice(input=x, begin=tf.constant([0]), end=tf.constant([2]),
                                       strides=b)

    reason = _refusal(fn, [*_spec([4]), *_spec([1], tf.int32)], "StridedSlice")
    assert reason == "The strides of StridedSlice must be constant"


def test_refuses_non_constant_split_arguments() -> None:
    def split(x, axis):
        return tf.raw_ops.Split(axis=axis, value=x, num_split=2)

    reason = _refusal(split, [*_spec([4, 2]), *_spec([], tf.int32)], "Split")
    assert reason == "The input 0 of Split must be a constant"

    def split_v(x, sizes):
        return tf.raw_ops.SplitV(value=x, size_splits=sizes, axis=tf.constant(0), num_split=2)

    reason = _refusal(split_v, [*_spec([4, 2]), *_spec([2], tf.int32)], "SplitV")
    assert reason == "The input 1 of SplitV must be a constant"
