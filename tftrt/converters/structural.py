"""Pass-through and constant ops."""

from __future__ import annotations

from tftrt.converters.base import converter
from tftrt.converters.context import LoweringContext, NodeInfo, onnx_dtype


@converter("Identity", "Snapshot", "StopGradient", "_CopyFromHostToGpu", dtypes=None)
def convert_identity(ctx: LoweringContext, node: NodeInfo) -> None:
    name, perm = ctx.input_any(node, 0)
    ctx.set_output(node, 0, name, perm)


@converter("IdentityN", dtypes=None)
def convert_identity_n(ctx: LoweringContext, node: NodeInfo) -> None:
    for k in range(len(node.inputs)):
        name, perm = ctx.input_any(node, k)
        ctx.set_output(node, k, name, perm)


def _validate_const(node: NodeInfo) -> str | None:
    dt = node.attr("dtype")
    try:
        onnx_dtype(dt)
    except Exception:
        return f"Unsupported tensorflow data type {dt}"
    return None


@converter("Const", dtypes=None, validate=_validate_const)
def convert_const(ctx: LoweringContext, node: NodeInfo) -> None:
    ctx.set_output(node, 0, ctx.const(node.attr("value"), hint=node.name))
