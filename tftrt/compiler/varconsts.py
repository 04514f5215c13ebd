"""Variables -> Consts through convert_to_constants' internals, each weight copied once.

``convert_variables_to_constants_v2`` reads each variable with ``numpy()`` (a copy),
then ``make_tensor_proto`` copies it three times more and the Const node copies the
proto once again: on a weight-heavy model that is most of freezing. Here a variable
is read as a view of its buffer and written into its Const with ``tobytes`` (protobuf
takes ``bytes`` only, and copies them once more). The internals are pinned to the
TensorFlow versions the tests run; ``freeze`` falls back to the public API.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tftrt.compiler import standins


def converter_data(c2c: Any, func: Any) -> Any:
    """convert_to_constants' data for ``func``, each variable's value a read-only view of
    its buffer (``Variable.numpy()`` copies it; TensorFlow copies on a later write)."""

    class ViewingData(c2c._FunctionConverterDataInEager):  # noqa: SLF001
        def _eval(self, tensor):
            try:
                view = tensor.value()._numpy()  # noqa: SLF001
            except Exception:  # not a variable on the host: TensorFlow's own copy
                return tensor.numpy()
            if not isinstance(view, np.ndarray):
                return tensor.numpy()
            view = view.view()
            view.flags.writeable = False
            return view

    return ViewingData(func=func, lower_control_flow=False, aggressive_inlining=False)


def replace_variables(c2c: Any, data: Any
                      ) -> tuple[graph_pb2.GraphDef, set[int], dict[str, np.ndarray]]:
    """``c2c._replace_variables_by_constants``, large variables written into their Consts
    from ``tobytes`` (protobuf copies those once more; ``make_tensor_proto`` made three
    copies, then the node copied its proto).

    The converter's objects hold its graph in reference cycles (alive until a full
    collection): the weights are written into a graph of our own, after it. Also
    returns the values written (Const name -> array)."""
    graph = c2c._GraphDef(data.graph_def)  # noqa: SLF001
    values: dict[str, np.ndarray] = {}
    for name, tensor in data.tensor_data.items():
        node = graph.nodes[name]
        arr = tensor.numpy
        if (type(node) is not c2c._VarHandle  # noqa: SLF001
                or arr.nbytes < standins.MIN_BYTES or not packable(arr)):
            node.convert_variable_to_constant(None, tensor)
            continue
        const = node.converted_self().node
        const.Clear()
        const.name = node.node.name
        const.op = "Const"
        const.attr["dtype"].type = tensor.dtype
        proto = const.attr["value"].tensor
        proto.dtype = tensor.dtype
        for dim in arr.shape:
            proto.tensor_shape.dim.add(size=dim)
        values[const.name] = arr
        for edge in node.outgoing_edges:
            edge.destination.convertible.convert_variable_to_constant(edge, tensor)
    converted = {t.index for t in data.tensor_data.values() if t.index is not None}
    out = graph_pb2.GraphDef()
    out.CopyFrom(graph.converted_self().graph_def)
    for node in out.node:
        arr = values.get(node.name)
        if arr is not None and node.op == "Const":
            node.attr["value"].tensor.tensor_content = arr.tobytes()
    return out, converted, values


def packable(arr: np.ndarray) -> bool:
    """Whether ``arr``'s bytes are a TensorProto's ``tensor_content`` as they are."""
    return (arr.dtype.kind in "iufc" and arr.dtype.byteorder in "=|"
            and tf.as_dtype(arr.dtype).as_numpy_dtype == arr.dtype.type)
