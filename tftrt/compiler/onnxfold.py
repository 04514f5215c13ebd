"""Per-channel scales and shifts after a convolution, folded into its weights and bias.

A frozen Keras model's batch normalization reaches ONNX as ``Mul(scale, Conv(x))`` (and
an ``Add`` of the shift where it is not zero). Left in place, INT8 quantization puts a
Q/DQ pair around every such ``Mul`` and OpenVINO runs some of those convolutions at
bf16; folded, each convolution is the whole layer, as it is in tf2onnx's export.
ONNX Runtime's own fusion does not take a scale that is the ``Mul``'s first input.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper


def _per_channel(c: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
    """``c`` as one value per output channel, when it broadcasts that way onto a
    convolution output of ``rank`` dims, else None."""
    if c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + c.shape
    if any(d != 1 for k, d in enumerate(shape) if k != 1) or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,)) if c.size == 1 else c.reshape(-1)


def fold_conv_scales(model: onnx.ModelProto) -> int:
    """Fold ``Mul``/``Add`` of per-channel constants that alone read a ``Conv``'s output
    into that ``Conv`` (in place); returns how many were folded."""
    graph = model.graph
    folded = 0
    while True:
        inits = {i.name: i for i in graph.initializer}
        readers = Counter(i for n in graph.node for i in n.input)
        readers.update(o.name for o in graph.output)
        by_input: dict[str, onnx.NodeProto] = {}
        for n in graph.node:
            for i in n.input:
                by_input.setdefault(i, n)
        done = None
        for conv in graph.node:
            if conv.op_type != "Conv" or conv.domain not in ("", "ai.onnx"):
                continue
            out = conv.output[0]
            nxt = by_input.get(out)
            if nxt is None or readers[out] != 1 or nxt.op_type not in ("Mul", "Add"):
                continue
            if len(conv.input) < 2 or conv.input[1] not in inits:
                continue
            others = [i for i in nxt.input if i != out]
            if len(others) != 1 or others[0] not in inits or len(nxt.input) != 2:
                continue
            w = numpy_helper.to_array(inits[conv.input[1]])
            c = numpy_helper.to_array(inits[others[0]])
            if w.dtype.kind != "f" or c.dtype != w.dtype:
                continue
            vec = _per_channel(c, w.shape[0], w.ndim)
            if vec is None:
                continue
            has_bias = len(conv.input) > 2 and conv.input[2] != ""
            if has_bias and conv.input[2] not in inits:
                continue
            b = (numpy_helper.to_array(inits[conv.input[2]]) if has_bias
                 else np.zeros(w.shape[0], w.dtype))
            if nxt.op_type == "Mul":
                w = w * vec.reshape((-1,) + (1,) * (w.ndim - 1))
                b = b * vec
            else:
                b = b + vec
            done = (conv, nxt, w, b.astype(w.dtype))
            break
        if done is None:
            break
        conv, nxt, w, b = done
        names = {i.name for i in graph.initializer}
        wname = _fresh(f"{conv.name or conv.output[0]}/folded_weights", names)
        bname = _fresh(f"{conv.name or conv.output[0]}/folded_bias", names | {wname})
        graph.initializer.append(numpy_helper.from_array(w, wname))
        graph.initializer.append(numpy_helper.from_array(b, bname))
        inputs = [conv.input[0], wname, bname]
        del conv.input[:]
        conv.input.extend(inputs)
        conv.output[0] = nxt.output[0]
        graph.node.remove(nxt)
        folded += 1
    if folded:
        used = {i for n in graph.node for i in n.input} | {x.name for x in graph.input}
        for init in [i for i in graph.initializer if i.name not in used]:
            graph.initializer.remove(init)
    return folded


def _fresh(name: str, taken: set[str]) -> str:
    k, out = 0, name
    while out in taken:
        k += 1
        out = f"{name}_{k}"
    return out
