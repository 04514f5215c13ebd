"""Matrix products: MatMul, the batched BatchMatMul family and Einsum."""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter, dtype_name, refusal
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



# -- Einsum ---------------------------------------------------------------------------

_ELLIPSIS = "..."
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_terms(node: NodeInfo) -> tuple[list[str], str] | str:
    """The input terms and output term of the node's equation, or why it is not supported."""
    equation = node.attr("equation")
    if isinstance(equation, bytes):
        equation = equation.decode()
    if not isinstance(equation, str) or equation.count("->") != 1:
        return f"Einsum equation {equation!r} must have exactly one '->'"
    if any(ch.isspace() for ch in equation):
        return f"Einsum equation {equation!r} with whitespace is not supported"
    lhs, rhs = equation.split("->")
    terms = lhs.split(",")
    if len(terms) != len(node.inputs):
        return f"Einsum equation {equation!r} names {len(terms)} operands, got {len(node.inputs)}"
    for term in [*terms, rhs]:
        rest = term.replace(_ELLIPSIS, "", 1)
        if "." in rest or "," in rest or "-" in rest or ">" in rest:
            return f"Einsum equation {equation!r} is malformed"
    labels = {ch for term in [*terms, rhs] for ch in term.replace(_ELLIPSIS, "")}
    if len(labels) > len(_LETTERS):
        return f"Einsum equation {equation!r} has more than {len(_LETTERS)} labels"
    return terms, rhs


def _ellipsis_dims(node: NodeInfo, terms: list[str]) -> list[int | None] | str:
    """How many dimensions each operand's ellipsis stands for (None: no ellipsis)."""
    dims: list[int | None] = []
    for i, term in enumerate(terms):
        rank = node.rank(i)
        named = len(term.replace(_ELLIPSIS, ""))
        if _ELLIPSIS not in term:
            if rank is not None and rank != named:
                return f"Einsum operand {i} has rank {rank}, its term {term!r} names {named}"
            dims.append(None)
        elif rank is None:
            return f"Einsum operand {i} with an ellipsis ({term!r}) needs a known rank"
        elif rank < named:
            return f"Einsum operand {i} has rank {rank}, its term {term!r} names {named}"
        else:
            dims.append(rank - named)
    return dims


def _validate_einsum(node: NodeInfo) -> str | None:
    parsed = _einsum_terms(node)
    if isinstance(parsed, str):
        return parsed
    return refusal(_ellipsis_dims(node, parsed[0]))


@converter("Einsum", dtypes=FLOAT_DTYPES | {np.dtype(np.int32)}, validate=_validate_einsum,
           restrictions="explicit equation ('->'); operands with an ellipsis need a known rank")
def convert_einsum(ctx: LoweringContext, node: NodeInfo) -> None:
    parsed = _einsum_terms(node)
    assert not isinstance(parsed, str), parsed
    terms, rhs = parsed
    dims = _ellipsis_dims(node, terms)
    assert not isinstance(dims, str), dims
    # ONNX labels are letters and every ellipsis must stand for as many dimensions:
    # relabel, and give operands with a shorter ellipsis leading unit dimensions in it
    used = {ch for term in [*terms, rhs] for ch in term.replace(_ELLIPSIS, "")}
    spare = iter(ch for ch in _LETTERS if ch not in used)
    relabel = {ch: ch if ch in _LETTERS else next(spare) for ch in sorted(used)}

    def onnx_term(term: str) -> str:
        return _ELLIPSIS.join("".join(relabel[ch] for ch in part)
                              for part in term.split(_ELLIPSIS))

    widest = max((d for d in dims if d is not None), default=0)
    operands = []
    for i, (term, count) in enumerate(zip(terms, dims, strict=True)):
        x = ctx.input(node, i)
        if count is not None and count < widest:
            start = term.index(_ELLIPSIS)
            x = ctx.node("Unsqueeze", [x, ctx.int64s(range(start, start + widest - count))],
                         hint=f"{node.name}/in{i}")
        operands.append(x)
    equation = ",".join(onnx_term(t) for t in terms) + "->" + onnx_term(rhs)
    ctx.set_output(node, 0, ctx.node("Einsum", operands, hint=node.name, equation=equation))
