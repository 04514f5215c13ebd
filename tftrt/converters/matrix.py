"""Matrix products: MatMul and the batched BatchMatMul family."""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter, dtype_name
from tftrt.converters.context import FLOAT_DTYPES, LoweringContext, NodeInfo


def _swap_last_two(rank: int) -> tuple[int, ...]:
    return (*range(rank - 2), rank - 1, rank - 2)


def _operand(ctx: LoweringContext, node: NodeInfo, i: int, transpose: bool) -> str:
    """Input ``i``, with its last two axes swapped if ``transpose``."""
    value = node.const(i)
    rank = node.rank(i)
    if not transpose:
        return ctx.input(node, i)
    if value is not None:  # transpose constants at conversion time
        return ctx.const(np.swapaxes(value, -1, -2), f"{node.name}/in{i}_t")
    return ctx.input_as(node, i, _swap_last_two(rank))


def _validate_matmul(node: NodeInfo) -> str | None:
    for i in range(2):
        if node.rank(i) != 2:
            return f"The inputs of MatMul must be 2-D, input {i} has shape {node.input_shapes[i]}"
    return None


@converter("MatMul", validate=_validate_matmul, restrictions="2-D inputs")
def convert_matmul(ctx: LoweringContext, node: NodeInfo) -> None:
    a = _operand(ctx, node, 0, bool(node.attr("transpose_a", False)))
    b = _operand(ctx, node, 1, bool(node.attr("transpose_b", False)))
    ctx.set_output(node, 0, ctx.node("MatMul", [a, b], hint=node.name))


def _validate_batch_matmul(node: NodeInfo) -> str | None:
    if node.op == "BatchMatMulV3":
        types = [node.attr(k) for k in ("Ta", "Tb", "Tout")]
        if len(set(types)) != 1 or types[0] not in FLOAT_DTYPES:
            names = ", ".join(dtype_name(t) for t in types)
            return f"BatchMatMulV3 needs Ta, Tb and Tout equal and float or half, got {names}"
    for i in range(2):
        rank = node.rank(i)
        if rank is None or rank < 2:
            return (f"The inputs of {node.op} must have a known rank of at least 2, "
                    f"input {i} has shape {node.input_shapes[i]}")
    return None


# BatchMatMulV3 has no T attribute: its Ta/Tb/Tout are checked by the validator
@converter("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", validate=_validate_batch_matmul,
           restrictions="inputs of known rank >= 2; BatchMatMulV3 with equal float types")
def convert_batch_matmul(ctx: LoweringContext, node: NodeInfo) -> None:
    x = _operand(ctx, node, 0, bool(node.attr("adj_x", False)))
    y = _operand(ctx, node, 1, bool(node.attr("adj_y", False)))
    ctx.set_output(node, 0, ctx.node("MatMul", [x, y], hint=node.name))

