"""Functional control flow: While/StatelessWhile as ONNX Loop, If/StatelessIf as ONNX If.

The body, condition and branches are library functions; they convert when every node
of them does (``NodeInfo.functions`` says so and lowers them). A While's loop variables
are its inputs: ``cond`` runs once before the Loop and after each iteration inside it.
Loop variables the body returns unchanged (weights, sizes) are not carried: the body
reads them from the enclosing graph, so a backend sees them as constants there.
"""

from __future__ import annotations

import numpy as np

from tftrt.converters.base import converter
from tftrt.converters.context import LoweringContext, NodeInfo, TensorType

BOOL = np.dtype(np.bool_)
I64 = np.dtype(np.int64)


def _loop_types(node: NodeInfo) -> list[TensorType]:
    """Each loop variable's dtype and shape invariant (TF's ``output_shapes``)."""
    shapes = node.attr("output_shapes") or []
    out = []
    for k, dt in enumerate(node.input_dtypes):
        shape = shapes[k] if k < len(shapes) else node.input_shapes[k]
        out.append((dt, shape))
    return out


def _validate_while(node: NodeInfo) -> str | None:
    if node.functions is None:
        return f"{node.op} needs the graph's function library"
    types = _loop_types(node)
    if any(dt is None for dt, _ in types):
        return f"{node.op} has a loop variable of unsupported dtype"
    for fn in ("cond", "body"):
        reason = node.functions.reason(node.attr(fn), types)
        if reason:
            return f"{node.op} {fn}: {reason}"
    (cond_type,) = node.functions.results(node.attr("cond"), types) or [(None, None)]
    if cond_type[0] != BOOL or cond_type[1] not in ((), None):
        return f"{node.op} cond must return a bool scalar, got {cond_type}"
    results = node.functions.results(node.attr("body"), types)
    for k, ((dt, _), (want, _)) in enumerate(zip(results, types, strict=True)):
        if dt != want:
            return f"{node.op} body result {k} has dtype {dt}, the loop variable {want}"
    same = node.functions.passthrough(node.attr("body"))
    if all(same[k] == k for k in range(len(types))):
        return f"{node.op} changes no loop variable"
    return None


@converter("While", "StatelessWhile", dtypes=None, validate=_validate_while,
           restrictions="the cond and body functions convert entirely")
def convert_while(ctx: LoweringContext, node: NodeInfo) -> None:
    fns = node.functions
    assert fns is not None
    types = _loop_types(node)
    body, cond = node.attr("body"), node.attr("cond")
    initial = [ctx.input(node, k) for k in range(len(types))]
    same = fns.passthrough(body)
    carried = [k for k in range(len(types)) if same[k] != k]
    first = fns.lower(ctx, cond, initial, types)[0]

    sub = ctx.subgraph()
    trip = sub.unique(f"{node.name}_iter")
    cond_in = sub.unique(f"{node.name}_cond_in")
    state = list(initial)
    body_inputs = [(trip, I64, ()), (cond_in, BOOL, ())]
    for k in carried:
        state[k] = sub.unique(f"{node.name}_v{k}")
        body_inputs.append((state[k], types[k][0], types[k][1]))
    results = fns.lower(sub, body, state, types)
    next_state = [state[k] if k not in carried else results[k] for k in range(len(types))]
    more = fns.lower(sub, cond, next_state, types)[0]
    outs = [(sub.node("Identity", [more], hint=f"{node.name}_cond_out"), BOOL, ())]
    for k in carried:
        outs.append((sub.node("Identity", [results[k]], hint=f"{node.name}_v{k}_out"),
                     types[k][0], types[k][1]))
    graph = sub.make_graph(body_inputs, outs, f"{node.name}_body")
    looped = ctx.node("Loop", ["", first, *[initial[k] for k in carried]],
                      outputs=max(1, len(carried)), hint=node.name, body=graph)
    looped = looped if isinstance(looped, list) else [looped]
    for k in range(len(types)):
        ctx.set_output(node, k, looped[carried.index(k)] if k in carried else initial[k])


def _branch_types(node: NodeInfo) -> list[TensorType]:
    return list(zip(node.input_dtypes[1:], node.input_shapes[1:], strict=True))


def _validate_if(node: NodeInfo) -> str | None:
    if node.functions is None:
        return f"{node.op} needs the graph's function library"
    if node.input_dtypes[0] != BOOL or node.input_shapes[0] not in ((), (1,)):
        return f"{node.op} needs a bool scalar condition, got {node.input_dtypes[0]} " \
               f"{node.input_shapes[0]}"
    types = _branch_types(node)
    if any(dt is None for dt, _ in types):
        return f"{node.op} has an input of unsupported dtype"
    outs = []
    for fn in ("then_branch", "else_branch"):
        reason = node.functions.reason(node.attr(fn), types)
        if reason:
            return f"{node.op} {fn}: {reason}"
        outs.append([dt for dt, _ in node.functions.results(node.attr(fn), types)])
    if outs[0] != outs[1]:
        return f"{node.op} branches return different dtypes: {outs[0]} and {outs[1]}"
    if not outs[0]:
        return f"{node.op} returns nothing"
    return None


def _merged(a, b):
    """The shape both branches' results have (unknown dims where they differ)."""
    if a is None or b is None or len(a) != len(b):
        return None
    return tuple(x if x == y else None for x, y in zip(a, b, strict=True))


@converter("If", "StatelessIf", dtypes=None, validate=_validate_if,
           restrictions="bool scalar condition; both branches convert entirely")
def convert_if(ctx: LoweringContext, node: NodeInfo) -> None:
    fns = node.functions
    assert fns is not None
    types = _branch_types(node)
    args = [ctx.input(node, k + 1) for k in range(len(types))]
    cond = ctx.input(node, 0)
    if node.input_shapes[0] == (1,):
        cond = ctx.node("Squeeze", [cond], hint=f"{node.name}_cond")
    branches = {}
    results = {fn: fns.results(node.attr(fn), types) for fn in ("then_branch", "else_branch")}
    shapes = [_merged(a[1], b[1]) for a, b in zip(results["then_branch"],
                                                  results["else_branch"], strict=True)]
    for fn in ("then_branch", "else_branch"):
        sub = ctx.subgraph()
        outs = fns.lower(sub, node.attr(fn), args, types)
        named = [(sub.node("Identity", [o], hint=f"{node.name}_{fn}_{k}"), dt, shape)
                 for k, (o, (dt, _), shape) in enumerate(zip(outs, results[fn], shapes,
                                                             strict=True))]
        branches[fn] = sub.make_graph([], named, f"{node.name}_{fn}")
    n = len(shapes)
    outs = ctx.node("If", [cond], outputs=max(1, n), hint=node.name,
                    then_branch=branches["then_branch"], else_branch=branches["else_branch"])
    outs = outs if isinstance(outs, list) else [outs]
    for k in range(n):
        ctx.set_output(node, k, outs[k])

