"""ONNX models to bytes or files, without a whole-model serialization buffer.

``model.SerializeToString()`` encodes the whole model into one growing buffer and
then copies it into the bytes it returns: serializing a model of N bytes of
weights briefly takes about 3N more memory (ResNet50: 290 MB on top of the model).
``serialize`` and ``save`` give the same bytes, encoding the graph's initializers
one at a time: the model plus its bytes, and one initializer's encoding.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

import onnx

_MODEL_GRAPH = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number
_GRAPH_INITIALIZER = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number
_LENGTH_DELIMITED = 2  # protobuf wire type of messages and bytes


def serialize(model: onnx.ModelProto) -> bytes:
    """``model.SerializeToString()``, built one initializer at a time."""
    out = io.BytesIO()
    write(model, out)
    return out.getvalue()  # the buffer itself: BytesIO hands it over without a copy


def save(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """``onnx.save(model, path)`` (one file, weights inside), one initializer at a time."""
    with open(path, "wb") as f:
        write(model, f)


def write(model: onnx.ModelProto, f: BinaryIO) -> None:
    """Write the bytes of ``model.SerializeToString()`` to ``f``.

    Protobuf writes a message's fields in field-number order, so the model is its
    fields before ``graph``, the graph's length-delimited field, then the fields
    after it; the graph likewise, around its initializers.
    """
    if _has_unknown_fields(model) or _has_unknown_fields(model.graph):
        f.write(model.SerializeToString())  # fields we cannot list: the library's way
        return
    head, tail = _split(model, _MODEL_GRAPH)
    graph_head, graph_tail = _split(model.graph, _GRAPH_INITIALIZER)
    sizes = [t.ByteSize() for t in model.graph.initializer]
    graph_size = len(graph_head) + len(graph_tail) + sum(
        len(field_prefix(_GRAPH_INITIALIZER, n)) + n for n in sizes)
    f.write(head)
    if model.HasField("graph"):
        f.write(field_prefix(_MODEL_GRAPH, graph_size))
        f.write(graph_head)
        for t, n in zip(model.graph.initializer, sizes, strict=True):
            f.write(field_prefix(_GRAPH_INITIALIZER, n))
            f.write(t.SerializeToString())
        f.write(graph_tail)
    f.write(tail)


def _split(message, number: int) -> tuple[bytes, bytes]:
    """The encodings of ``message``'s fields numbered below and above ``number``."""
    below, above = type(message)(), type(message)()
    for field, value in message.ListFields():
        if field.number == number:
            continue
        dst = below if field.number < number else above
        if field.label == field.LABEL_REPEATED:
            getattr(dst, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)
    return below.SerializeToString(), above.SerializeToString()


def _has_unknown_fields(message) -> bool:
    """Whether ``message`` holds fields its schema does not name (unknown without
    protobuf's UnknownFieldSet, before protobuf 4.24: then assumed so)."""
    try:
        from google.protobuf import unknown_fields
    except ImportError:
        return True
    return len(unknown_fields.UnknownFieldSet(message)) > 0


def field_prefix(number: int, size: int) -> bytes:
    """A length-delimited field's key and length (protobuf's wire format)."""
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(size)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


__all__ = ["field_prefix", "save", "serialize", "write"]
