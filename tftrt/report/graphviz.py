"""A Graphviz view of a converted graph (``TF_TRT_EXPORT_GRAPH_VIZ_PATH``)."""

from __future__ import annotations

import os
import tempfile

from tensorflow.core.framework import graph_pb2

from tftrt.specs import ENGINE_OP


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph_def: graph_pb2.GraphDef) -> str:
    """The converted graph in DOT: engine nodes filled green, control edges dashed."""
    lines = ["digraph tftrt {", "  node [shape=box, fontsize=10];"]
    for node in graph_def.node:
        style = ', style=filled, fillcolor="#76b900"' if node.op == ENGINE_OP else ""
        lines.append(f"  {_quote(node.name)} [label={_quote(node.name + chr(10) + node.op)}"
                     f"{style}];")
    for node in graph_def.node:
        for ref in node.input:
            control = ref.startswith("^")
            src = ref.lstrip("^").rsplit(":", 1)[0] if ":" in ref else ref.lstrip("^")
            attrs = " [style=dashed]" if control else ""
            lines.append(f"  {_quote(src)} -> {_quote(node.name)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_dot(graph_def: graph_pb2.GraphDef, path: str) -> None:
    """Write ``to_dot(graph_def)`` to ``path`` atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tftrt-dot-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(to_dot(graph_def))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
