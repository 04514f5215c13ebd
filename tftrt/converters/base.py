"""Declaring converters: the ``converter`` decorator and shared checks."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable

import numpy as np

from tftrt.converters.context import FLOAT_DTYPES, LoweringContext, NodeInfo
from tftrt.plugins.types import OpConverter, ValidateFn

_DTYPE_NAMES = {np.dtype(np.float32): "float", np.dtype(np.float16): "half",
                np.dtype(np.int32): "int32", np.dtype(np.int64): "int64",
                np.dtype(np.bool_): "bool", np.dtype(np.int8): "int8",
                np.dtype(np.uint8): "uint8", np.dtype(np.float64): "double",
                np.dtype(object): "string"}


def dtype_name(dt: np.dtype | None) -> str:
    if dt is None:
        return "unknown"
    return _DTYPE_NAMES.get(np.dtype(dt), np.dtype(dt).name)


def converter(*op_types: str, dtypes: Iterable[np.dtype] | None = FLOAT_DTYPES,
              dtype_attr: str = "T", const_inputs: Iterable[int] = (),
              validate: ValidateFn | None = None, priority: int = 0,
              restrictions: str = "") -> Callable[[Callable[[LoweringContext, NodeInfo], None]],
                                                  OpConverter]:
    """Declare a converter for ``op_types``.

    ``dtypes`` (None: any) is checked against the node's ``dtype_attr``;
    ``const_inputs`` must come from Const nodes; ``validate`` adds op-specific
    checks. Each returns the reason a node cannot convert, or None.
    """
    allowed = None if dtypes is None else frozenset(np.dtype(d) for d in dtypes)
    consts = tuple(const_inputs)

    def check(node: NodeInfo) -> str | None:
        if allowed is not None and dtype_attr in node.attrs:
            dt = node.attrs[dtype_attr]
            if dt not in allowed:
                names = ", ".join(sorted(dtype_name(d) for d in allowed))
                return (f"{node.op} op is not supported - Allowed input dtypes: [{names}]. "
                        f"Received: {dtype_name(dt)}")
        for i in consts:
            if i >= len(node.inputs) or node.const(i) is None:
                return f"The input {i} of {node.op} must be a constant"
        return validate(node) if validate is not None else None

    def wrap(fn: Callable[[LoweringContext, NodeInfo], None]) -> OpConverter:
        return OpConverter(tuple(op_types), fn, check, priority, restrictions)

    return wrap


def refusal(parsed: object) -> str | None:
    """The reason in ``parsed`` if a parse step refused (returned a str), else None."""
    return parsed if isinstance(parsed, str) else None


def refusal_of(parse: Callable[[NodeInfo], object]) -> ValidateFn:
    """A validator that refuses exactly when ``parse(node)`` returns a reason string."""
    def validate(node: NodeInfo) -> str | None:
        return refusal(parse(node))

    return validate


def collect(*modules: types.ModuleType) -> list[OpConverter]:
    """Every ``OpConverter`` defined at the top level of ``modules``."""
    return [v for m in modules for v in vars(m).values() if isinstance(v, OpConverter)]
