"""A converted model's signature as the runtime serves it: checking the caller's inputs,
and the whole-model plan of a model that is one engine end to end.

TensorFlow-free: the same checks and the same plan serve ``ConvertedFunction``
(inside TensorFlow) and ``tftrt.runtime.load`` (without it). The plan is worked
out from the converted GraphDef at conversion time and recorded in the manifest,
because a GraphDef cannot be parsed without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tftrt.errors import InputSpecError
from tftrt.specs import ENGINE_OP, SignatureTensor, parse_input, tensor_ref


def dtype_of(value: Any) -> np.dtype | None:
    """The NumPy dtype of an array-like that carries one (NumPy, TensorFlow, PyTorch,
    CuPy, ...), or None for plain Python values."""
    dt = getattr(value, "dtype", None)
    if dt is None:
        return None
    dt = getattr(dt, "as_numpy_dtype", dt)  # TensorFlow
    try:
        return np.dtype(dt)
    except TypeError:
        try:  # PyTorch: torch.float32 -> "float32"
            return np.dtype(str(dt).rsplit(".", 1)[-1])
        except TypeError:
            return None


def _both_strings(a: np.dtype, b: np.dtype) -> bool:
    """tf.string is numpy's object dtype; bytes and str arrays are strings too."""
    return np.dtype(a).kind in "OSU" and np.dtype(b).kind in "OSU"


def check_inputs(specs: Sequence[SignatureTensor], args: Sequence[Any],
                 kwargs: Mapping[str, Any]) -> list[Any]:
    """Map positional/keyword arguments onto the signature, checking dtype and shape.

    Arrays (anything with a dtype and a shape, device tensors included) are passed
    through unchanged; other values are read as NumPy arrays of the signature's dtype.
    """
    names = [s.name for s in specs]
    if len(args) > len(specs):
        raise InputSpecError(f"expected at most {len(specs)} positional inputs {names}, "
                             f"got {len(args)}")
    values: dict[str, Any] = dict(zip(names, args, strict=False))
    for key, v in kwargs.items():
        if key not in names:
            raise InputSpecError(f"unexpected input {key!r}; the signature's inputs are {names}")
        if key in values:
            raise InputSpecError(f"input {key!r} given twice")
        values[key] = v
    missing = [n for n in names if n not in values]
    if missing:
        raise InputSpecError(f"missing inputs {missing}; the signature's inputs are {names}")
    out = []
    for spec in specs:
        v = values[spec.name]
        dtype = dtype_of(v) if hasattr(v, "shape") else None
        if dtype is not None:
            if dtype != spec.dtype and not _both_strings(dtype, spec.dtype):
                raise InputSpecError(f"input {spec.name!r} must have dtype {spec.dtype.name}, "
                                     f"got {dtype.name}")
        else:
            try:
                v = np.asarray(v, dtype=spec.dtype)
            except (TypeError, ValueError) as exc:
                raise InputSpecError(f"input {spec.name!r} cannot be read as "
                                     f"{spec.dtype.name}: {exc}") from None
        shape = tuple(int(d) for d in v.shape)
        if spec.shape is not None:
            if len(shape) != len(spec.shape):
                raise InputSpecError(f"input {spec.name!r} must have rank {len(spec.shape)} "
                                     f"(shape {list(spec.shape)}), got shape {list(shape)}")
            for want, got in zip(spec.shape, shape, strict=True):
                if want is not None and want != got:
                    raise InputSpecError(f"input {spec.name!r} must have shape "
                                         f"{list(spec.shape)}, got {list(shape)}")
        out.append(v)
    return out


class InputPlan:
    """The signature's inputs, with the checks of ``check_inputs`` prepared once: a call
    that gives every input as a numpy array of the right dtype and shape (positionally
    or by name) is checked in a few comparisons; any other call takes ``check_inputs``."""

    def __init__(self, specs: Sequence[SignatureTensor], array_type: type = np.ndarray,
                 dtypes: Sequence[Any] | None = None) -> None:
        """``array_type`` and its ``dtypes`` (one per input; NumPy's by default): the
        inputs the quick check takes, e.g. a framework's tensors."""
        self.specs = tuple(specs)
        self.names = tuple(s.name for s in self.specs)
        self._type = array_type
        dtypes = [np.dtype(s.dtype) for s in self.specs] if dtypes is None else dtypes
        self._checks = tuple(
            (dt, None if s.shape is None else len(s.shape),
             () if s.shape is None else tuple((k, d) for k, d in enumerate(s.shape)
                                              if d is not None))
            for s, dt in zip(self.specs, dtypes, strict=True))

    def quick(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any] | None:
        """The inputs in signature order when they pass the prepared checks, else None."""
        if kwargs:
            if args or len(kwargs) != len(self.names):
                return None
            try:
                args = [kwargs[n] for n in self.names]
            except KeyError:
                return None
        elif len(args) != len(self._checks):
            return None
        array_type = self._type
        for v, (dtype, rank, fixed) in zip(args, self._checks, strict=True):
            if type(v) is not array_type or v.dtype != dtype:
                return None
            if rank is not None:
                shape = v.shape
                if len(shape) != rank:
                    return None
                for k, d in fixed:
                    if shape[k] != d:
                        return None
        return list(args)

    def arrays(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        """Every input checked (``check_inputs``), in signature order."""
        values = self.quick(args, kwargs)
        return values if values is not None else check_inputs(self.specs, args, kwargs)


@dataclass(frozen=True)
class WholeModelPlan:
    """A model that is one engine end to end: engine input ``k`` is signature input
    ``inputs[k]``; signature output ``j`` is engine output ``outputs[j]``."""

    engine: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def to_json(self) -> dict:
        return {"engine": self.engine, "inputs": list(self.inputs),
                "outputs": list(self.outputs)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WholeModelPlan:
        return cls(d["engine"], tuple(d["inputs"]), tuple(d["outputs"]))

    def engine_inputs(self, values: Sequence[Any]) -> list[Any]:
        """The engine's inputs, in its order, from the signature's (checked) inputs."""
        return [values[k] for k in self.inputs]

    def signature_outputs(self, specs: Sequence[SignatureTensor],
                          outs: Sequence[Any]) -> dict[str, Any]:
        """{signature output name: engine output}."""
        return {s.name: outs[p] for s, p in zip(specs, self.outputs, strict=True)}


# Nodes that may sit around the one engine of a whole-model plan.
_PASSIVE_OPS = frozenset({ENGINE_OP, "Placeholder", "Identity", "NoOp"})


def whole_model_plan(graph_def: Any, inputs: Sequence[SignatureTensor],
                     outputs: Sequence[SignatureTensor],
                     engines: Sequence[str]) -> WholeModelPlan | None:
    """The plan when ``graph_def`` (a converted GraphDef) is one engine fed by signature
    inputs and producing every signature output, else None."""
    nodes = {n.name: n for n in graph_def.node}
    engine_nodes = [n for n in graph_def.node if n.op == ENGINE_OP]
    if len(engine_nodes) != 1 or engine_nodes[0].name not in engines:
        return None
    if any(n.op not in _PASSIVE_OPS for n in graph_def.node):
        return None
    engine = engine_nodes[0]

    def resolve(ref: str) -> str:  # follow Identity nodes back from tensor ``ref``
        while True:
            name, slot, _ = parse_input(ref)
            node = nodes.get(name)
            if node is None or node.op != "Identity":
                return tensor_ref(name, slot)
            ref = next(i for i in node.input if not i.startswith("^"))

    sig_in = {s.ref: k for k, s in enumerate(inputs)}
    in_order = []
    for ref in engine.input:
        if ref.startswith("^"):
            return None
        r = resolve(ref)
        if r not in sig_in:
            return None
        in_order.append(sig_in[r])
    out_ports = []
    for spec in outputs:
        name, slot, _ = parse_input(resolve(spec.ref))
        if name != engine.name:
            return None
        out_ports.append(slot)
    return WholeModelPlan(engine.name, tuple(in_order), tuple(out_ports))
