"""Lowering: a segment of the IR -> an ONNX model, through the converter registry."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

import tftrt.env as env
from tftrt.compiler import ir as irmod
from tftrt.compiler import onnxfold
from tftrt.compiler.ir import IR
from tftrt.converters.context import LoweringContext, NodeInfo
from tftrt.plugins.manager import Registry
from tftrt.specs import TensorSpec, input_name, output_name

OPSET = 17
log = logging.getLogger("tftrt.lowering")


class LoweringError(RuntimeError):
    """A node of a segment could not be lowered to ONNX."""


@dataclass(frozen=True)
class LoweredSegment:
    model: onnx.ModelProto
    inputs: tuple[TensorSpec, ...]  # engine input k <- TF tensor inputs[k].ref
    outputs: tuple[TensorSpec, ...]  # TF tensor outputs[k].ref <- engine output k
    # initializers ``model`` does not hold (``detach_bytes``): name -> (TensorProto
    # without data, buffer); ``onnxbytes.serialize``/``attach`` put them in
    weights: Mapping[str, tuple[onnx.TensorProto, Any]] = field(default_factory=dict)


def node_info(g: IR, name: str, dynamic_shape: bool = False) -> NodeInfo:
    """What a converter needs to know about IR node ``name``."""
    data = g.nodes[name]
    inputs = irmod.data_inputs(g, name)
    dtypes, shapes, consts = [], [], []
    for ref in inputs:
        src, slot, _ = irmod.parse_input(ref)
        sd = g.nodes[src]
        dtypes.append(_at(sd["output_dtypes"], slot))
        shapes.append(_at(sd["output_shapes"], slot))
        consts.append(irmod.const_value(g, src))
    used = frozenset(d["src_slot"] for _, _, d in g.out_edges(name, data=True)
                     if not d["control"])
    return NodeInfo(name=name, op=data["op"], attrs=irmod.attrs(g, name), inputs=inputs,
                    input_dtypes=dtypes, input_shapes=shapes, input_consts=consts,
                    output_dtypes=list(data["output_dtypes"]),
                    output_shapes=list(data["output_shapes"]), dynamic_shape=dynamic_shape,
                    used_outputs=used, value=data.get("variable_value"),
                    functions=g.graph.get("functions"))


def _at(lst: list, i: int):
    return lst[i] if i < len(lst) else None


def tensor_spec(g: IR, ref: str) -> TensorSpec:
    src, slot, _ = irmod.parse_input(ref)
    d = g.nodes[src]
    return TensorSpec(ref, _at(d["output_dtypes"], slot), _at(d["output_shapes"], slot))


@dataclass(frozen=True)
class SegmentPlan:
    """A segment's nodes plus the outside Consts copied in, and its boundary tensors."""

    members: frozenset[str]  # the segment's own nodes
    inlined: frozenset[str]  # outside Const producers copied into the segment
    inputs: tuple[str, ...]  # TF tensors entering the segment, deduplicated
    outputs: tuple[str, ...]  # TF tensors leaving the segment, deduplicated

    @property
    def nodes(self) -> frozenset[str]:
        return self.members | self.inlined


def plan_segment(g: IR, nodes: Iterable[str]) -> SegmentPlan:
    """Boundary of a segment; constant producers outside it are copied in, as TF-TRT does."""
    members = frozenset(nodes)
    order = sorted(members, key=lambda n: g.nodes[n]["index"])
    ins: list[str] = []
    inlined: set[str] = set()
    outs: list[str] = []
    for n in order:
        if irmod.is_const_like(g, n):  # a variable read's resource input is not needed
            continue
        for ref in irmod.data_inputs(g, n):
            src = irmod.parse_input(ref)[0]
            if src in members:
                continue
            if irmod.is_const_like(g, src):
                inlined.add(src)
            elif ref not in ins:
                ins.append(ref)
    for n in order:
        refs = {irmod.tensor_ref(n, d["src_slot"]) for _, dst, d in g.out_edges(n, data=True)
                if not d["control"] and dst not in members}
        outs.extend(sorted(refs, key=lambda r: irmod.parse_input(r)[1]))
    return SegmentPlan(members, frozenset(inlined), tuple(ins), tuple(outs))


def lower_segment(g: IR, plan: SegmentPlan, registry: Registry, name: str,
                  outputs: Sequence[str] | None = None, dynamic_shape: bool = False,
                  tensors_out: dict[str, str] | None = None,
                  detach_bytes: int | None = None) -> LoweredSegment:
    """Lower a planned segment into one ONNX model named ``name``.

    ``outputs`` defaults to every tensor that leaves the segment; ``tensors_out``, if
    given, receives each lowered TF tensor's ONNX name. Weights of ``detach_bytes`` or
    more (if given) stay out of the model, in ``weights``: each is copied once, into
    the model's bytes, instead of into the model and twice more serializing it.
    """
    outs = list(plan.outputs if outputs is None else outputs)
    in_specs = [tensor_spec(g, r) for r in plan.inputs]
    out_specs = [tensor_spec(g, r) for r in outs]
    for spec in in_specs + out_specs:
        if spec.dtype is not None and np.dtype(spec.dtype).kind == "c":
            raise LoweringError(f"complex tensor {spec.ref} would be an engine input or "
                                "output; engines hold complex numbers as pairs of floats")
    infos = [node_info(g, n, dynamic_shape)
             for n in irmod.topological_order(g.subgraph(plan.nodes))]
    weights: dict[str, tuple[onnx.TensorProto, Any]] = {}
    model = lower_nodes(infos, in_specs, out_specs, registry, name, tensors_out,
                        detach_bytes, weights)
    return LoweredSegment(model, tuple(in_specs), tuple(out_specs), weights)


def lower_nodes(infos: Sequence[NodeInfo], inputs: Sequence[TensorSpec],
                outputs: Sequence[TensorSpec], registry: Registry, name: str,
                tensors_out: dict[str, str] | None = None, detach_bytes: int | None = None,
                detached: dict[str, tuple[onnx.TensorProto, Any]] | None = None
                ) -> onnx.ModelProto:
    """Run the converters of ``infos`` (in topological order) and build the ONNX model;
    ``tensors_out``, if given, receives each TF tensor's ONNX name (in any layout).
    Weights of ``detach_bytes`` or more go to ``detached``, not into the model."""
    ctx = LoweringContext(opset=OPSET, keep_layout=not env.get("TF_TRT_ENABLE_LAYOUT_OPTIMIZER"),
                          detach_bytes=detach_bytes if detached is not None else None)
    for k, spec in enumerate(inputs):
        ctx.bind(spec.ref, input_name(k))
        ctx.shapes[spec.ref] = spec.shape
    run_converters(ctx, infos, registry)
    out_vi = []
    for k, spec in enumerate(outputs):
        src = ctx.as_layout(spec.ref, None)
        out = output_name(k)
        ctx.node("Identity", [src], hint=out)
        # the Identity's output got a unique name; rename it to the port name
        ctx.nodes[-1].output[0] = out
        out_vi.append((out, spec.dtype, spec.shape))
    in_vi = [(input_name(k), s.dtype, s.shape) for k, s in enumerate(inputs)]
    model = ctx.make_model(in_vi, out_vi, name)
    if detached is not None:
        detached.update(ctx.detached)
    if onnxfold.fold_pads(model) and tensors_out is not None:
        live = {o for n in model.graph.node for o in n.output} | {i.name for i in
                                                                   model.graph.input}
        ctx.tensors = {r: v for r, v in ctx.tensors.items() if v[0] in live}
    if tensors_out is not None:
        tensors_out.update({ref: onnx_name for ref, (onnx_name, _) in ctx.tensors.items()})
    return model


def run_converters(ctx: LoweringContext, infos: Sequence[NodeInfo], registry: Registry) -> None:
    """Run the converter of each of ``infos`` (in topological order) into ``ctx``."""
    debug = log.isEnabledFor(logging.DEBUG)
    for info in infos:
        for k, shape in enumerate(info.output_shapes):
            ctx.shapes[f"{info.name}:{k}"] = shape
        conv = registry.converter(info.op)
        if conv is None:
            raise LoweringError(f"no converter for op {info.op} (node {info.name})")
        if info.op in registry.fake_ops:
            raise LoweringError(f"op {info.op} is in TF_TRT_OP_FAKELIST (node {info.name})")
        if debug:
            log.debug("%s (%s) by %s.%s", info.name, info.op, conv.convert.__module__,
                      conv.convert.__qualname__)
        try:
            conv.convert(ctx, info)
        except LoweringError:
            raise
        except Exception as exc:  # a converter bug must name its node
            raise LoweringError(f"converting {info.op} node {info.name!r} failed: {exc}") from exc
