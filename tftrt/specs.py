"""What the compiler, the runtime and the reports all know about a converted model:
tensor specs, signature tensors, tensor references and engine-node naming.

Pure Python and NumPy: importing this module never imports TensorFlow, so the
runtime can run saved engines without it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

ENGINE_OP = "TRTEngineOp"
# On a Const standing in a native segment for another op (a variable read whose value was
# baked in): the op it replaces, so reports count it under that op.
ORIGINAL_OP_ATTR = "_tftrt_original_op"

# How dynamic shape mode makes optimization profiles from the build shapes.
PROFILE_STRATEGIES = ("Range", "Optimal", "Range+Optimal", "ImplicitBatchModeCompatible")

# None: unknown rank; a None dimension: unknown size.
Shape = tuple[int | None, ...] | None


@dataclass(frozen=True)
class TensorSpec:
    """One engine input or output: the TF tensor it stands for, its dtype and shape."""

    ref: str  # TF tensor "node:slot"
    dtype: np.dtype
    shape: Shape

    def to_json(self) -> dict:
        return {"ref": self.ref, "dtype": np.dtype(self.dtype).name,
                "shape": None if self.shape is None else list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> TensorSpec:
        return cls(d["ref"], np.dtype(d["dtype"]), None if d["shape"] is None
                   else tuple(d["shape"]))


@dataclass(frozen=True)
class SignatureTensor:
    """One signature input or output: its key, the graph tensor, dtype and shape."""

    name: str
    ref: str  # "node:slot" in the frozen graph
    dtype: np.dtype
    shape: tuple[int | None, ...] | None

    def to_json(self) -> dict:
        return {"name": self.name, "ref": self.ref, "dtype": dtype_to_json(self.dtype),
                "shape": None if self.shape is None else list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> SignatureTensor:
        shape = None if d["shape"] is None else tuple(d["shape"])
        return cls(d["name"], d["ref"], dtype_from_json(d["dtype"]), shape)


def dtype_to_json(dtype: np.dtype) -> str:
    """numpy's name of ``dtype``; "string" for tf.string (numpy's object dtype)."""
    dt = np.dtype(dtype)
    return "string" if dt == np.dtype(object) else dt.name


def dtype_from_json(name: str) -> np.dtype:
    return np.dtype(object) if name == "string" else np.dtype(name)


def parse_input(ref: str) -> tuple[str, int, bool]:
    """'name', 'name:2' or '^name' -> (name, slot, is_control); control slot is -1."""
    if ref.startswith("^"):
        return ref[1:], -1, True
    name, sep, slot = ref.rpartition(":")
    if sep and slot.isdigit():
        return name, int(slot), False
    return ref, 0, False


def as_call(item: object) -> tuple[tuple, dict]:
    """One item of an ``input_fn`` (an array, a list/tuple of positional inputs, or a dict
    of named ones) as call arguments."""
    if isinstance(item, dict):
        return (), item
    if isinstance(item, (list, tuple)):
        return tuple(item), {}
    return (item,), {}


def tensor_ref(name: str, slot: int) -> str:
    return f"{name}:{slot}"


def native_segment_name(engine: str) -> str:
    """The library function holding engine ``engine``'s segment, for native fallback."""
    return f"{engine}_native_segment"


def input_name(k: int) -> str:
    """Name of engine input ``k`` (in the ONNX model and the native segment)."""
    return f"TensorRTInputPH_{k}"


def output_name(k: int) -> str:
    """Name of engine output ``k`` (in the ONNX model and the native segment)."""
    return f"TensorRTOutputPH_{k}"


def original_op(node: Any) -> str:
    """The op type a native-segment node had in the input graph (variable reads become
    Consts marked with the read's op type)."""
    attr = node.attr.get(ORIGINAL_OP_ATTR)
    return attr.s.decode() if attr is not None and attr.s else node.op


def segment_op_counts(graph_def: Any, node: Any) -> tuple[int, Counter[str]]:
    """Number of nodes in engine node ``node``'s native segment (a function of
    ``graph_def``'s library), and their count per op type; (0, empty) without one."""
    if "segment_func" in node.attr and node.attr["segment_func"].func.name:
        func_name = node.attr["segment_func"].func.name
    else:
        func_name = native_segment_name(node.name)
    for func in graph_def.library.function:
        if func.signature.name == func_name:
            return len(func.node_def), Counter(original_op(n) for n in func.node_def)
    return 0, Counter()
