"""Folds on a lowered ONNX model: per-channel scales and shifts after a convolution into
its weights and bias (``fold_conv_scales``), zero padding before it into its pads
(``fold_pads``).

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


def fold_pads(model: onnx.ModelProto) -> int:
    """Fold zero ``Pad``s of spatial dims that alone feed a ``Conv`` (directly or through
    the layout ``Transpose`` a converter put between) into the ``Conv``'s pads, in place;
    returns how many were folded.

    TF pads NHWC tensors before a ``VALID`` convolution (Keras' ``ZeroPadding2D``); in
    ONNX that is Pad -> Transpose -> Conv, which OpenVINO does not fuse itself and runs
    as a reference-kernel Pad (EfficientNetB0's stem: 0.1 ms of 4 ms at bf16).
    """
    graph = model.graph
    consts = {i.name: i for i in graph.initializer}
    consts.update({n.output[0]: n.attribute[0].t for n in graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    readers = Counter(i for n in graph.node for i in n.input)
    readers.update(o.name for o in graph.output)
    reader = {i: n for n in graph.node for i in n.input}
    folded = []
    for pad in graph.node:
        if pad.op_type != "Pad" or pad.domain not in ("", "ai.onnx"):
            continue
        spatial = _zero_pads(pad, consts)
        if spatial is None or readers[pad.output[0]] != 1:
            continue
        nxt, perm = reader.get(pad.output[0]), None
        if nxt is not None and nxt.op_type == "Transpose" and readers[nxt.output[0]] == 1:
            perm = list(next((a.ints for a in nxt.attribute if a.name == "perm"), []))
            nxt = reader.get(nxt.output[0])
        fed = pad.output[0] if perm is None else reader[pad.output[0]].output[0]
        if nxt is None or nxt.op_type != "Conv" or nxt.input[0] != fed or \
                not _foldable_conv(nxt):
            continue
        begin, end = spatial
        rank = len(begin)
        if perm is not None:
            if sorted(perm) != list(range(rank)):
                continue
            begin, end = [begin[p] for p in perm], [end[p] for p in perm]
        if begin[:2] != [0, 0] or end[:2] != [0, 0]:
            continue  # pads batch or channels: not a convolution's padding
        attr = next((a for a in nxt.attribute if a.name == "pads"), None)
        old = list(attr.ints) if attr is not None else [0] * (2 * (rank - 2))
        new = [a + b for a, b in zip(old, begin[2:] + end[2:], strict=True)]
        if attr is None:
            nxt.attribute.append(onnx.helper.make_attribute("pads", new))
        else:
            del attr.ints[:]
            attr.ints.extend(new)
        folded.append(pad)
    for pad in folded:
        target = pad.output[0]
        for n in graph.node:
            for k, i in enumerate(n.input):
                if i == target:
                    n.input[k] = pad.input[0]
        graph.node.remove(pad)
        shapes = [v for v in graph.value_info if v.name in {target} | {
            n.output[0] for n in graph.node if n.op_type == "Transpose"
            and n.input[0] == pad.input[0]}]
        for v in shapes:  # the padded shapes no longer hold
            graph.value_info.remove(v)
    return len(folded)


def _zero_pads(pad: onnx.NodeProto, consts) -> tuple[list[int], list[int]] | None:
    """A constant-mode zero Pad's (begin, end) per dim, or None."""
    mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
    if mode != b"constant" or len(pad.input) < 2 or pad.input[1] not in consts:
        return None
    if len(pad.input) > 3 and pad.input[3]:
        return None  # explicit axes: left alone
    if len(pad.input) > 2 and pad.input[2]:
        value = consts.get(pad.input[2])
        if value is None or np.any(numpy_helper.to_array(value) != 0):
            return None
    pads = [int(v) for v in numpy_helper.to_array(consts[pad.input[1]]).reshape(-1)]
    if len(pads) % 2 or any(v < 0 for v in pads):
        return None
    half = len(pads) // 2
    return pads[:half], pads[half:]


def _foldable_conv(conv: onnx.NodeProto) -> bool:
    if conv.domain not in ("", "ai.onnx"):
        return False
    auto = next((a.s for a in conv.attribute if a.name == "auto_pad"), b"NOTSET")
    return auto == b"NOTSET"


def _fresh(name: str, taken: set[str]) -> str:
    k, out = 0, name
    while out in taken:
        k += 1
        out = f"{name}_{k}"
    return out
