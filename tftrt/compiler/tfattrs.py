"""Decoding TensorFlow ``AttrValue`` protos into plain Python values."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def tf_dtype_to_np(enum: int) -> np.dtype | None:
    try:
        dt = tf.dtypes.as_dtype(enum)
        return np.dtype(dt.as_numpy_dtype) if dt.is_numpy_compatible else None
    except (TypeError, ValueError):
        return None


def shape_from_proto(proto: Any) -> tuple[int | None, ...] | None:
    if proto.unknown_rank:
        return None
    return tuple(d.size if d.size >= 0 else None for d in proto.dim)


def tensor_value(proto: Any) -> np.ndarray:
    """A TensorProto's value, read-only. Packed contents are read straight from the
    proto's bytes (``tf.make_ndarray`` copies them once more)."""
    dtype = tf_dtype_to_np(proto.dtype)
    # read once: each read of a bytes field copies it
    content = proto.tensor_content if dtype is not None and dtype.kind in "biufc" else b""
    if content:
        shape = tuple(d.size for d in proto.tensor_shape.dim)
        if len(content) == int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            return np.frombuffer(content, dtype=dtype).reshape(shape)
    value = tf.make_ndarray(proto)
    value.setflags(write=False)
    return value


def decode_attr(value: Any) -> Any:
    """An AttrValue as Python: str, int, float, bool, np.dtype, shape tuple, ndarray, list."""
    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode("utf-8", "replace")
    if kind in ("i", "f", "b"):
        return getattr(value, kind)
    if kind == "type":
        return tf_dtype_to_np(value.type)
    if kind == "shape":
        return shape_from_proto(value.shape)
    if kind == "tensor":
        return tensor_value(value.tensor)
    if kind == "func":
        return value.func.name
    if kind == "list":
        lst = value.list
        if lst.s:
            return [s.decode("utf-8", "replace") for s in lst.s]
        if lst.i:
            return list(lst.i)
        if lst.f:
            return list(lst.f)
        if lst.b:
            return list(lst.b)
        if lst.type:
            return [tf_dtype_to_np(t) for t in lst.type]
        if lst.shape:
            return [shape_from_proto(s) for s in lst.shape]
        return []
    return None


def decode_attrs(attrs: Any) -> dict[str, Any]:
    return {k: decode_attr(v) for k, v in attrs.items()}
