"""The ``converter.summary()`` table: one row per engine of a converted GraphDef."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tensorflow.core.framework import graph_pb2

from tftrt.specs import ENGINE_OP, segment_op_counts
from tftrt.specs import original_op as original_op  # re-exported

# on a native-segment Const that stands for a variable read (codegen): the read's op type
MIN_LINE_LENGTH = 160

# (header, share of the line). The header spellings are TF-TRT's, including
# the inconsistent capitalisation.
COLUMNS: tuple[tuple[str, float], ...] = (
    ("TRTEngineOP Name", 0.20),
    ("Device", 0.09),
    ("# Nodes", 0.05),
    ("# Inputs", 0.09),
    ("# Outputs", 0.09),
    ("Input DTypes", 0.12),
    ("Output Dtypes", 0.12),
    ("Input Shapes", 0.12),
    ("Output Shapes", 0.12),
)


def column_end_positions(line_length: int) -> list[int]:
    """End position of each column for a given line length (32, 46, ..., 158 for 160)."""
    ends: list[int] = []
    total = 0
    for _, share in COLUMNS:
        total += int(line_length * share)
        ends.append(total)
    return ends


def format_row(fields: Sequence[object], ends: Sequence[int]) -> str:
    """One table row: each field padded to, or cut (with " ...") at, its column end."""
    line = ""
    for i, field in enumerate(fields):
        if i > 0:
            line += " "
        line = (line + str(field)).ljust(ends[i])
        if len(line) > ends[i]:
            line = line[: ends[i] - 4] + " ..."
    return line


def _dtype_names(node: Any, key: str) -> list[str]:
    import tensorflow as tf

    return [tf.dtypes.as_dtype(t).name for t in node.attr[key].list.type]


def _shapes(node: Any, key: str) -> list[list[int]]:
    if key not in node.attr and f"_{key}" in node.attr:
        key = f"_{key}"  # the name GraphDef(add_shapes=True) uses
    return [[d.size for d in shape.dim] for shape in node.attr[key].list.shape]


def calibration_note(cal: Mapping[str, Any] | None) -> str | None:
    """The summary's line on where an INT8 engine's scales came from (None: not INT8)."""
    if cal and cal.get("source") == "calibration":
        return (f"INT8 scales: {cal['method']} calibration on {cal['batches']} batches "
                f"of shapes {cal['input_shapes']}, {cal.get('weight_bits', 8)}-bit weights")
    if cal and cal.get("source") == "graph":
        return "INT8 scales: from the graph's quantization ops"
    return None


def format_summary(
    graph_def: graph_pb2.GraphDef,
    line_length: int = 160,
    detailed: bool = True,
    engine_notes: dict[str, list[str]] | None = None,
    segment_ops: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """The text of ``converter.summary()`` for a converted GraphDef.

    ``print(text)`` writes exactly what TF-TRT's ``summary()`` prints. Only
    top-level ``TRTEngineOp`` nodes are engines; the conversion ratio counts
    the nodes of their native segments against the other top-level nodes.

    Args:
      graph_def: converted graph (``tensorflow.core.framework.graph_pb2.GraphDef``).
      line_length: width of the table; at least 160.
      detailed: also list each engine's op types and counts.
      engine_notes: extra lines per engine name, shown as ``\\t- <note>`` under
        the engine's row (after its op counts when ``detailed``).
      segment_ops: op type -> count per engine, for engines whose native segment
        is not in the graph (a model saved with ``remove_native_segments``).

    Raises:
      ValueError: if ``line_length`` is below 160.
    """
    if line_length < MIN_LINE_LENGTH:
        raise ValueError(
            f"Invalid `line_length` value has been received: {line_length}. "
            f"Minimum: {MIN_LINE_LENGTH}."
        )
    notes: Mapping[str, list[str]] = engine_notes or {}
    ends = column_end_positions(line_length)
    lines = [format_row([h for h, _ in COLUMNS], ends), "=" * line_length]

    engines = {}
    n_not_converted = 0
    for node in graph_def.node:
        if node.op == ENGINE_OP:
            engines[node.name] = node
        else:
            n_not_converted += 1

    n_converted = 0
    for name, node in sorted(engines.items()):
        node_count, op_counts = segment_op_counts(graph_def, node)
        if not node_count and segment_ops and name in segment_ops:
            op_counts = Counter(segment_ops[name])
            node_count = sum(op_counts.values())
        n_converted += node_count
        if len(engines) != 1:
            lines.append(f"\n{'-' * 40}\n")
        in_dtypes = _dtype_names(node, "InT")
        out_dtypes = _dtype_names(node, "OutT")
        fields = [
            name,
            node.device.split("/")[-1],
            node_count,
            len(in_dtypes),
            len(out_dtypes),
            in_dtypes,
            out_dtypes,
            _shapes(node, "input_shapes"),
            _shapes(node, "output_shapes"),
        ]
        lines.append(format_row(fields, ends))
        engine_notes_here = notes.get(name, [])
        if detailed or engine_notes_here:
            lines.append("")
        if detailed:
            lines.extend(f"\t- {op}: {count}x" for op, count in sorted(op_counts.items()))
        lines.extend(f"\t- {note}" for note in engine_notes_here)

    total = n_converted + n_not_converted
    ratio = n_converted / total * 100 if total else 0.0
    lines.append(f"\n{'=' * line_length}")
    lines.append(f"[*] Total number of TensorRT engines: {len(engines)}")
    lines.append(f"[*] % of OPs Converted: {ratio:.2f}% [{n_converted}/{total}]\n")
    return "\n".join(lines)
