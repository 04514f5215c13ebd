"""A small native stage run op by op, eagerly, on the calling thread.

Calling a ``tf.function`` costs about 0.1 ms before its first op runs, and its ops run
on TensorFlow's inter-op threads, whose spinning afterwards slows the engine called
next (on two cores, a two-op stage between two engines cost 0.48 ms through a function
and 0.19 ms as eager ops). A stage of at most ``MAX_OPS`` ops is therefore run as eager
ops, each for about 0.01 ms of dispatch, when every op of it runs eagerly as written: no
function or tensor attributes, not stateful, no resource or variant tensors. Other
stages stay functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2, graph_pb2
from tensorflow.python import pywrap_tfe
from tensorflow.python.eager import context as _context
from tensorflow.python.eager import core as _core

from tftrt.specs import parse_input, tensor_ref

MAX_OPS = 16  # past this a function's one call costs less than the ops' dispatches
_HANDLES = (tf.resource, tf.variant)


@dataclass(frozen=True)
class _Op:
    type: str
    inputs: tuple[int, ...]  # value slots
    attrs: tuple[Any, ...]  # name, value, name, value, ...
    n_out: int
    first: int  # slot of output 0


class EagerStage:
    """``stage(*tensors) -> list[tf.Tensor]``: the stage's ops, executed eagerly in order."""

    def __init__(self, ops: Sequence[_Op], constants: Sequence[tf.Tensor], n_inputs: int,
                 outputs: Sequence[int], n_slots: int) -> None:
        self._ops = tuple(ops)
        self._head = [None] * n_inputs + list(constants)
        self._tail = [None] * (n_slots - len(self._head))
        self._outputs = tuple(outputs)

    def __call__(self, *args: tf.Tensor) -> list[tf.Tensor]:
        ctx = _context.context()
        ctx.ensure_initialized()
        handle, device = ctx._handle, ctx.device_name  # noqa: SLF001 - what quick_execute does
        values = list(args) + self._head[len(args):] + self._tail
        execute = pywrap_tfe.TFE_Py_Execute
        try:
            for op in self._ops:
                outs = execute(handle, device, op.type, [values[i] for i in op.inputs],
                               op.attrs, op.n_out)
                values[op.first:op.first + op.n_out] = outs
        except _core._NotOkStatusException as e:  # noqa: SLF001 - as quick_execute raises
            raise _core._status_to_exception(e) from None  # noqa: SLF001
        return [values[i] for i in self._outputs]


def build(graph_def: graph_pb2.GraphDef, order: Sequence[str], inputs: Sequence[str],
          outputs: Sequence[str], graph: tf.Graph) -> EagerStage | None:
    """The eager run of a stage's ``graph_def`` (its members, copied Consts and a
    Placeholder per fed tensor, named ``inputs``), or None where it must stay a function.

    ``order`` is every node of ``graph_def`` after its inputs; ``graph`` holds the
    members (by name) with their dtypes and op definitions.
    """
    nodes = {n.name: n for n in graph_def.node}
    members = [nodes[n] for n in order if nodes[n].op not in ("Placeholder", "Const")]
    if len(members) > MAX_OPS:
        return None
    slot: dict[str, int] = {f"{name}:0": k for k, name in enumerate(inputs)}
    constants = []
    for node in graph_def.node:
        if node.op == "Const" and f"{node.name}:0" not in slot:
            slot[f"{node.name}:0"] = len(slot)
            constants.append(tf.constant(tf.make_ndarray(node.attr["value"].tensor)))
        elif node.op == "Placeholder" and f"{node.name}:0" not in slot:
            return None  # a Placeholder nothing feeds (a captured resource)
    ops = []
    for node in members:
        try:
            op = graph.get_operation_by_name(node.name)
        except KeyError:
            return None
        if op.op_def.is_stateful or any(t.dtype in _HANDLES for t in (*op.inputs, *op.outputs)):
            return None
        attrs = _attrs(node.attr, op.op_def)
        if attrs is None:
            return None
        refs = []
        for ref in node.input:
            name, port, control = parse_input(ref)
            if control:
                continue  # ``order`` already runs the op after it
            ref = tensor_ref(name, port)
            if ref not in slot:
                return None
            refs.append(slot[ref])
        first = len(slot)
        for k in range(len(op.outputs)):
            slot[f"{node.name}:{k}"] = first + k
        ops.append(_Op(node.op, tuple(refs), attrs, len(op.outputs), first))
    if any(r not in slot for r in outputs):
        return None
    return EagerStage(ops, constants, len(inputs), [slot[r] for r in outputs], len(slot))


def _attrs(attr: Any, op_def: Any) -> tuple[Any, ...] | None:
    """The op-def attributes of a node as ``TFE_Py_Execute`` takes them (None: one it
    cannot take: a function, a tensor)."""
    flat: list[Any] = []
    for a in op_def.attr:
        if a.name not in attr:
            continue  # left to its default
        value = _value(attr[a.name], a.type)
        if value is _UNSUPPORTED:
            return None
        flat += [a.name, value]
    return tuple(flat)


_UNSUPPORTED = object()


def _value(v: attr_value_pb2.AttrValue, kind: str) -> Any:
    if kind.startswith("list("):
        item = kind[5:-1]
        field = {"string": "s", "int": "i", "float": "f", "bool": "b", "type": "type",
                 "shape": "shape"}.get(item)
        if field is None:
            return _UNSUPPORTED
        items = getattr(v.list, field)
        return [_shape(s) for s in items] if field == "shape" else list(items)
    field = {"string": "s", "int": "i", "float": "f", "bool": "b", "type": "type",
             "shape": "shape"}.get(kind)
    if field is None:
        return _UNSUPPORTED
    return _shape(v.shape) if field == "shape" else getattr(v, field)


def _shape(proto: Any) -> list[int | None] | None:
    if proto.unknown_rank:
        return None
    return [None if d.size < 0 else d.size for d in proto.dim]
