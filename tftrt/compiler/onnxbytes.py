"""An ONNX model's bytes with weights the model does not hold, each copied once.

``SerializeToString`` of a model holding its weights copies each of them twice (into
upb's buffer, then into the ``bytes``), after they were copied into the model. Here
the weights are appended in protobuf's wire format, where a message field that occurs
again is merged into the first and a repeated field grows: ``ModelProto.graph`` once
more, holding just ``initializer`` entries, one per weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import onnx

from tftrt.compiler.onnxio import field_prefix as _field

_GRAPH = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number
_INITIALIZER = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number
_RAW_DATA = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number
def serialize(model: onnx.ModelProto,
              weights: Mapping[str, tuple[onnx.TensorProto, Any]]) -> bytes:
    """``model``'s bytes with ``weights`` (name -> (TensorProto without data, a buffer of
    its little-endian values)) as initializers of its graph."""
    pieces: list[Any] = [model.SerializeToString()]
    for header, data in weights.values():
        raw = memoryview(data).cast("B")
        head = header.SerializeToString()
        raw_key = _field(_RAW_DATA, raw.nbytes)
        tensor = len(head) + len(raw_key) + raw.nbytes
        init_key = _field(_INITIALIZER, tensor)
        pieces += [_field(_GRAPH, len(init_key) + tensor), init_key, head, raw_key, raw]
    return b"".join(pieces)


def attach(model: onnx.ModelProto,
           weights: Mapping[str, tuple[onnx.TensorProto, Any]]) -> onnx.ModelProto:
    """``model`` holding ``weights`` as initializers (a new model if there are any)."""
    if not weights:
        return model
    return onnx.load_from_string(serialize(model, weights))
