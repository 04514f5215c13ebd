"""Helpers for testing one converter on permuted (layout-carrying) inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from tftrt.converters.context import LoweringContext, NodeInfo, Perm, invert_perm
from tftrt.plugins.types import OpConverter


def node_info(op: str, values: list[np.ndarray], *, consts: tuple[int, ...] = (),
              shapes: list[Any] | None = None, name: str = "n",
              out_dtypes: list[Any] | None = None, **attrs: Any) -> NodeInfo:
    """A NodeInfo whose input i reads "in{i}:0" of ``values[i]``'s dtype and shape
    (or ``shapes[i]``); inputs listed in ``consts`` are constants. Outputs have
    ``out_dtypes`` (default: one output of input 0's dtype)."""
    dtype = values[0].dtype
    attrs.setdefault("T", dtype)
    outs = [np.dtype(d) for d in out_dtypes] if out_dtypes else [dtype]
    return NodeInfo(name=name, op=op, attrs=attrs,
                    inputs=[f"in{i}:0" for i in range(len(values))],
                    input_dtypes=[v.dtype for v in values],
                    input_shapes=shapes or [v.shape for v in values],
                    input_consts=[v if i in consts else None for i, v in enumerate(values)],
                    output_dtypes=outs, output_shapes=[None] * len(outs))


def lower_one(conv: OpConverter, node: NodeInfo, values: list[np.ndarray],
              perms: list[Perm], slot: int = 0) -> tuple[np.ndarray, Perm, list[str]]:
    """Convert ``node`` with non-constant input i bound in layout ``perms[i]``.

    Returns output ``slot`` in TF layout, its perm and the emitted op types.
    """
    assert conv.validate is None or conv.validate(node) is None, conv.validate(node)
    ctx = LoweringContext()
    feeds: dict[str, np.ndarray] = {}
    for i, (value, perm) in enumerate(zip(values, perms, strict=True)):
        if node.const(i) is None:
            ctx.bind(f"in{i}:0", f"X{i}", perm)
            feeds[f"X{i}"] = np.ascontiguousarray(value if perm is None
                                                  else np.transpose(value, perm))
        else:
            ctx.bind(f"in{i}:0", ctx.const(value, f"c{i}"))
    conv.convert(ctx, node)
    out, perm = ctx.lookup(f"{node.name}:{slot}")
    dtype = node.output_dtypes[slot]
    model = ctx.make_model([(k, v.dtype, v.shape) for k, v in feeds.items()],
                           [(out, dtype, None)], "layout_test")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds)[0]
    if perm is not None:
        got = np.transpose(got, invert_perm(perm))
    return got, perm, [n.op_type for n in ctx.nodes]
