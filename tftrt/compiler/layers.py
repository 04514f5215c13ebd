"""Plugin layers in a segment's ONNX: kept for a backend that lowers them, else decomposed.

A converter emits a plugin layer as one node of the ``tftrt`` domain. For the
engine's backend, each such node stays when its layer has an available native
lowering for that backend (the backend installs the lowering's extension), and
is otherwise replaced by the layer's portable decomposition into standard ONNX.
INT8 engines always get the decomposition: calibration and quantization run the
model on ONNX Runtime.
"""

from __future__ import annotations

import onnx
from onnx import helper

import tftrt.env as env
from tftrt.compiler.lowering import LoweringError
from tftrt.converters.context import LoweringContext
from tftrt.plugins.layers import DOMAIN, DOMAIN_VERSION, ENV_PORTABLE, LayerNode
from tftrt.plugins.manager import Registry


def layer_node(node: onnx.NodeProto) -> LayerNode:
    """``node`` with its attributes decoded (strings as str)."""
    def value(attr: onnx.AttributeProto):
        v = helper.get_attribute_value(attr)
        if isinstance(v, bytes):
            return v.decode()
        if isinstance(v, list):
            return [x.decode() if isinstance(x, bytes) else x for x in v]
        return v

    return LayerNode(node.name, node.op_type, tuple(node.input), tuple(node.output),
                     {a.name: value(a) for a in node.attribute})


def portable_only(precision_mode: str = "FP32") -> bool:
    """Whether every layer must be decomposed: INT8, or ``TFTRT_PORTABLE_LAYERS=1``."""
    return precision_mode == "INT8" or env.get(ENV_PORTABLE)


def has_layers(model: onnx.ModelProto) -> bool:
    """Whether ``model`` has ``tftrt`` layer nodes (that ``resolve`` keeps or decomposes)."""
    return any(n.domain == DOMAIN for n in model.graph.node)


def resolve(model: onnx.ModelProto, registry: Registry, backend: str | None,
            precision_mode: str = "FP32") -> onnx.ModelProto:
    """``model`` with each ``tftrt`` node kept if ``backend`` lowers it, else decomposed.

    ``backend=None`` decomposes every layer (the portable model). Raises
    LoweringError for a ``tftrt`` op no plugin layer provides, or a failing
    decomposition.
    """
    if not has_layers(model):
        return model
    portable = backend is None or portable_only(precision_mode)
    ctx = LoweringContext(opset=_default_opset(model))
    for name in _names(model):
        ctx.unique(name)  # reserve the model's own names
    nodes: list[onnx.NodeProto] = []
    kept = False
    for node in model.graph.node:
        if node.domain != DOMAIN:
            nodes.append(node)
            continue
        layer = registry.plugin_layer(node.op_type)
        if layer is None:
            raise LoweringError(f"no plugin layer provides the {DOMAIN} op {node.op_type} "
                                f"(node {node.name})")
        if not portable and layer.lowering(backend) is not None:
            nodes.append(node)
            kept = True
            continue
        nodes.extend(_decompose(ctx, layer, node))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(ctx.initializers)
    opsets = [o for o in out.opset_import if o.domain != DOMAIN]
    if kept:
        opsets.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    del out.opset_import[:]
    out.opset_import.extend(opsets)
    return out


def _decompose(ctx: LoweringContext, layer, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """The standard ONNX nodes computing ``node``, its outputs under their own names."""
    start = len(ctx.nodes)
    try:
        results = list(layer.decompose(ctx, layer_node(node)))
    except Exception as exc:
        raise LoweringError(f"decomposing {DOMAIN} op {node.op_type} (node {node.name}) "
                            f"failed: {type(exc).__name__}: {exc}") from exc
    if len(results) != len(node.output):
        raise LoweringError(f"the decomposition of {node.op_type} gave {len(results)} "
                            f"outputs, the node has {len(node.output)}")
    new = ctx.nodes[start:]
    produced = {o for n in new for o in n.output}
    alias: dict[str, str] = {}
    for result, want in zip(results, node.output, strict=True):
        if not want:
            continue
        result = alias.get(result, result)
        if result in produced and result not in node.output:
            _rename(new, result, want)
            produced.add(want)
            alias[result] = want
        else:  # an input passed through, or a tensor that is also another output
            new.append(helper.make_node("Identity", [result], [want],
                                        name=ctx.unique(f"{want}/Identity")))
    bad = [n.op_type for n in new if n.domain not in ("", "ai.onnx")]
    if bad:
        raise LoweringError(f"the decomposition of {node.op_type} is not standard ONNX: {bad}")
    return new


def _rename(nodes: list[onnx.NodeProto], old: str, new: str) -> None:
    for n in nodes:
        for i, x in enumerate(n.output):
            if x == old:
                n.output[i] = new
        for i, x in enumerate(n.input):
            if x == old:
                n.input[i] = new


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)


def _names(model: onnx.ModelProto) -> set[str]:
    g = model.graph
    names = {i.name for i in g.input} | {o.name for o in g.output} | \
        {t.name for t in g.initializer}
    for n in g.node:
        names.update(n.input)
        names.update(n.output)
        names.add(n.name)
    names.discard("")
    return names
