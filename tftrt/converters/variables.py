"""Variable reads, for graphs converted with freezing disabled.

With ``TF_TRT_EXPERIMENTAL_FEATURES=disable_graph_freezing`` the graph keeps
its variables. A read whose variable is known at conversion time carries that
value (``NodeInfo.value``); the engine bakes it in as weights, as TF-TRT's
converters do at engine-build time. Reads of unknown variables stay native.
"""

from __future__ import annotations

from tftrt.converters.base import converter, dtype_name
from tftrt.converters.context import LoweringContext, NodeInfo, onnx_dtype


def _validate_read(node: NodeInfo) -> str | None:
    if node.value is None:
        return (f"{node.op} reads a variable whose value is unknown at conversion time "
                "(only variables captured by the signature can be baked into an engine)")
    try:
        onnx_dtype(node.value.dtype)
    except Exception:
        return f"Unsupported variable data type {dtype_name(node.value.dtype)}"
    return None


@converter("ReadVariableOp", "VariableV2", dtypes=None, validate=_validate_read,
           restrictions="freezing disabled; the variable's value is baked in when converting")
def convert_variable_read(ctx: LoweringContext, node: NodeInfo) -> None:
    ctx.set_output(node, 0, ctx.const(node.value, hint=node.name))
