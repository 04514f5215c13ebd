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
        return tf.make_ndarray(value.tensor)
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
