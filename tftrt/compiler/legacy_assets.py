"""The serialized TensorRT engines TF-TRT's ``build()`` + ``save()`` leave in ``assets/``.

Each ``assets/trt-serialized-engine.<engine>`` is a TFRecord file of
``tensorflow.tensorrt.TRTEngineInstance`` messages (``repeated TensorShapeProto
input_shapes = 1; bytes serialized_engine = 2``), one per cached engine. TF 2.18+
ships no Python class for that message, so it is declared here from its two fields;
reading needs neither TensorRT nor a GPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tensorflow.core.framework import tensor_shape_pb2

from tftrt.compiler.tfattrs import shape_from_proto
from tftrt.plugins.types import EngineBackend, ShapeProfile
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.profiles import implicit_batch_profile
from tftrt.specs import Shape

log = logging.getLogger("tftrt.migrate")


@dataclass(frozen=True)
class SerializedEngine:
    """One cached TensorRT engine: the input shapes it was built for, and its plan."""

    input_shapes: tuple[Shape, ...]
    plan: bytes


@dataclass(frozen=True)
class EngineFile:
    """What one asset file held: the engines read, and why reading stopped early (if so)."""

    path: str
    engines: tuple[SerializedEngine, ...]
    error: str | None = None


def _instance_class():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="tftrt/trt_engine_instance.proto", package="tensorflow.tensorrt",
        syntax="proto3", dependency=[tensor_shape_pb2.DESCRIPTOR.name])
    msg = fdp.message_type.add(name="TRTEngineInstance")
    field = descriptor_pb2.FieldDescriptorProto
    msg.field.add(name="input_shapes", number=1, label=field.LABEL_REPEATED,
                  type=field.TYPE_MESSAGE, type_name=".tensorflow.TensorShapeProto")
    msg.field.add(name="serialized_engine", number=2, label=field.LABEL_OPTIONAL,
                  type=field.TYPE_BYTES)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(tensor_shape_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.tensorrt.TRTEngineInstance"))


TRTEngineInstance = _instance_class()
# TFRecord framing around each record: length, its CRC, and the data's CRC
_FRAMING = 8 + 4 + 4


def encode_instance(input_shapes: list[list[int]], plan: bytes) -> bytes:
    """A serialized ``TRTEngineInstance`` (what TF-TRT writes per cached engine)."""
    msg = TRTEngineInstance(serialized_engine=plan)
    for shape in input_shapes:
        proto = msg.input_shapes.add()
        for d in shape:
            proto.dim.add(size=d)
    return msg.SerializeToString()


def read_engine_file(path: str) -> EngineFile:
    """The engines in one ``trt-serialized-engine.*`` file; a truncated or corrupt file
    yields the records before the damage and says what went wrong."""
    import tensorflow as tf

    engines: list[SerializedEngine] = []
    if not os.path.isfile(path):
        return EngineFile(path, (), "the file is missing")
    used = 0
    try:
        for k, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
            used += len(record) + _FRAMING
            try:
                msg = TRTEngineInstance.FromString(record)
            except Exception as exc:
                return EngineFile(path, tuple(engines),
                                  f"record {k} is not a TRTEngineInstance: {exc}")
            engines.append(SerializedEngine(
                tuple(shape_from_proto(s) for s in msg.input_shapes), msg.serialized_engine))
    except tf.errors.OpError:  # its message names TF's iterator op, not the file's problem
        return EngineFile(path, tuple(engines), f"the file is truncated or corrupt after "
                          f"{len(engines)} complete record(s)")
    size = os.path.getsize(path)
    if used != size:  # TensorFlow's reader takes a short tail for the end of the file
        return EngineFile(path, tuple(engines), f"the file is truncated or corrupt: "
                          f"{size - used} bytes after {len(engines)} record(s) are no record")
    return EngineFile(path, tuple(engines))


# -- TF-TRT's serialized engines -------------------------------------------------------

def attach_serialized(path: str, assets: Mapping[str, str], records: Sequence[Any],
                      ops: Mapping[str, EngineOp], backend: EngineBackend) -> int:
    """Give each engine TF-TRT's serialized TensorRT engines where the backend can use them;
    the number of saved engines that could not be used."""
    by_engine = {r.source.name: r for r in records}
    unused = 0
    for fname, engine in sorted(assets.items()):
        record = by_engine.get(engine)
        if record is None:
            continue
        found = read_engine_file(os.path.join(path, "assets", fname))
        if found.error:
            record.serialized.append(f"assets/{fname}: {found.error}")
            log.warning("assets/%s: %s; it is skipped", fname, found.error)
        op = ops.get(record.name)
        for k, inst in enumerate(found.engines):
            where = f"assets/{fname} engine {k} (input shapes {_fmt(inst.input_shapes)})"
            if op is None:
                record.serialized.append(f"{where}: not used, the engine runs natively")
                unused += 1
            elif backend.name != "tensorrt":
                record.serialized.append(f"{where}: not used, the {backend.name} backend "
                                         "cannot run TensorRT engines")
                unused += 1
            else:
                key = _key(op, inst.input_shapes)
                try:
                    op.add_serialized(key, inst.plan)
                    record.serialized.append(f"{where}: reused")
                except Exception as exc:
                    record.serialized.append(f"{where}: TensorRT could not deserialize it "
                                             f"({exc})")
                    unused += 1
    return unused


def _key(op: EngineOp, input_shapes) -> tuple[ShapeProfile, ...]:
    """The profiles a TF-TRT engine instance serves: implicit batch, its batch and below;
    dynamic shape, the op's profiles (TensorRT's plan holds its own)."""
    shapes = tuple(tuple(int(d) for d in s) for s in input_shapes)
    if op.dynamic_shape:
        return op.profiles or (ShapeProfile(shapes, shapes, shapes),)
    return (implicit_batch_profile(shapes, [s.shape for s in op.inputs]),)


def _fmt(shapes) -> str:
    return str([list(s) if s is not None else None for s in shapes])


def unused_engines_warning(conv: Any, backend: EngineBackend) -> None:
    """One warning for all the serialized TensorRT engines that were not used."""
    if conv.serialized_unused:
        why = ("TensorRT is not available here" if backend.name != "tensorrt"
               else "TensorRT could not deserialize them")
        log.warning("%d serialized TensorRT engine(s) in %s/assets were not used (%s): the "
                    "engines are rebuilt from their segments", conv.serialized_unused,
                    conv.source, why)
