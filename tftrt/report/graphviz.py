"""A Graphviz view of a converted graph (``TF_TRT_EXPORT_GRAPH_VIZ_PATH``).

Each engine is a cluster holding the ops of its native segment, between its input
and output ports; the ops TensorFlow runs are boxes outside; edges are tensors
(dashed: control dependencies). ``write_graph`` also renders an SVG when
Graphviz's ``dot`` is installed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile

from tensorflow.core.framework import graph_pb2

from tftrt.specs import ENGINE_OP, input_name, output_name, parse_input

log = logging.getLogger("tftrt.report")

ENGINE_COLOR = "#76b900"
DOT_TIMEOUT_S = 300


def _quote(s: str) -> str:
    """A DOT string; a newline becomes DOT's line break."""
    escaped = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _node(ident: str, label: str, extra: str = "") -> str:
    return f"{_quote(ident)} [label={_quote(label)}{extra}];"


def _edge(src: str, dst: str, control: bool) -> str:
    return f"{_quote(src)} -> {_quote(dst)}{' [style=dashed]' if control else ''};"


def _engine_cluster(node, fdef, lines: list[str]) -> None:
    """The cluster of engine ``node``: its ports and, when kept, its segment's ops."""
    name = node.name
    n_ops = len(fdef.node_def) if fdef is not None else 0
    what = f"{n_ops} ops" if fdef is not None else "native segment removed"
    lines += [f"  subgraph {_quote('cluster_' + name)} {{",
              f"    label={_quote(f'{name} ({what})')}; style=filled; "
              f"fillcolor={_quote(ENGINE_COLOR + '40')}; color={_quote(ENGINE_COLOR)};"]
    data_inputs = [i for i in node.input if not i.startswith("^")]
    for k in range(len(data_inputs)):
        lines.append("    " + _node(f"{name}/{input_name(k)}", f"in {k}", ", shape=ellipse"))
    n_out = len(node.attr["OutT"].list.type)
    for k in range(n_out):
        lines.append("    " + _node(f"{name}/{output_name(k)}", f"out {k}", ", shape=ellipse"))
    if fdef is None:
        lines.append("    " + _node(f"{name}/engine", name, ", style=filled, fillcolor=white"))
        lines += [f"    {_edge(f'{name}/{input_name(k)}', f'{name}/engine', False)}"
                  for k in range(len(data_inputs))]
        lines += [f"    {_edge(f'{name}/engine', f'{name}/{output_name(k)}', False)}"
                  for k in range(n_out)]
    else:
        args = {a.name for a in fdef.signature.input_arg}
        for inner in fdef.node_def:
            lines.append("    " + _node(f"{name}/{inner.name}", f"{inner.op}\n{inner.name}",
                                        ", style=filled, fillcolor=white"))
        for inner in fdef.node_def:
            for ref in inner.input:
                control = ref.startswith("^")
                src = ref.lstrip("^").split(":")[0]
                src = f"{name}/{src}"
                lines.append(f"    {_edge(src, f'{name}/{inner.name}', control)}")
        for k, out_arg in enumerate(fdef.signature.output_arg):
            ref = fdef.ret.get(out_arg.name, "")
            src = ref.split(":")[0]
            if src in args or any(n.name == src for n in fdef.node_def):
                lines.append(f"    {_edge(f'{name}/{src}', f'{name}/{output_name(k)}', False)}")
    lines.append("  }")


def to_dot(graph_def: graph_pb2.GraphDef) -> str:
    """The converted graph in DOT: engines as clusters of their ops, native ops outside."""
    library = {f.signature.name: f for f in graph_def.library.function}
    engines = {n.name: n for n in graph_def.node if n.op == ENGINE_OP}
    lines = ["digraph tftrt {", "  compound=true; rankdir=TB;",
             "  node [shape=box, fontsize=10];"]
    for node in graph_def.node:
        if node.name in engines:
            _engine_cluster(node, library.get(node.attr["segment_func"].func.name), lines)
        else:
            lines.append("  " + _node(node.name, f"{node.op}\n{node.name}"))
    for node in graph_def.node:
        port = 0
        for ref in node.input:
            src, slot, control = parse_input(ref)
            if src in engines and not control:
                src = f"{src}/{output_name(slot)}"
            elif src in engines:
                src = f"{src}/{output_name(0)}" if engines[src].attr["OutT"].list.type \
                    else f"{src}/{input_name(0)}"
            if node.name in engines:
                dst = f"{node.name}/{input_name(port)}" if not control else \
                    f"{node.name}/{input_name(0)}"
            else:
                dst = node.name
            port += not control
            lines.append("  " + _edge(src, dst, control))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _atomic_write(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tftrt-viz-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_dot(graph_def: graph_pb2.GraphDef, path: str) -> None:
    """Write ``to_dot(graph_def)`` to ``path`` atomically."""
    _atomic_write(path, to_dot(graph_def).encode())


def svg_path(dot_path: str) -> str:
    """Where the SVG of the DOT file ``dot_path`` goes: beside it, ending in .svg."""
    stem, ext = os.path.splitext(dot_path)
    return (stem if ext.lower() in (".dot", ".gv") else dot_path) + ".svg"


def render_svg(dot_path: str, dot: str | None = None) -> str | None:
    """Render ``dot_path`` to SVG with Graphviz's ``dot``; the SVG's path, or None when
    ``dot`` is not installed or fails (a warning says why)."""
    dot = dot or shutil.which("dot")
    if dot is None:
        log.info("Graphviz's dot is not installed: %s is not rendered to SVG", dot_path)
        return None
    try:
        svg = subprocess.run([dot, "-Tsvg", dot_path], check=True, capture_output=True,
                             timeout=DOT_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        log.warning("rendering %s to SVG failed: %s %s", dot_path, exc,
                    detail.decode(errors="replace").strip())
        return None
    out = svg_path(dot_path)
    _atomic_write(out, svg)
    return out


def write_graph(graph_def: graph_pb2.GraphDef, path: str) -> list[str]:
    """Write the DOT file to ``path`` and, with Graphviz installed, its SVG; the paths."""
    write_dot(graph_def, path)
    svg = render_svg(path)
    return [path] + ([svg] if svg else [])
