"""``format_summary``: exact layout of the converted-engines table."""

from __future__ import annotations

import pytest
from tensorflow.core.framework import function_pb2, graph_pb2, types_pb2

from tftrt.report import format_summary
from tftrt.report.summary import column_end_positions, format_row

F32, I32 = types_pb2.DT_FLOAT, types_pb2.DT_INT32
SEP = "\n" + "-" * 40 + "\n"
# fmt: off
HEADER = (
    "TRTEngineOP Name" + " " * 16  # -> 32
    + " Device" + " " * 7  # -> 46
    + " # Nodes"  # -> 54
    + " # Inputs" + " " * 5  # -> 68
    + " # Outputs" + " " * 4  # -> 82
    + " Input DTypes" + " " * 6  # -> 101
    + " Output Dtypes" + " " * 5  # -> 120
    + " Input Shapes" + " " * 6  # -> 139
    + " Output Shapes" + " " * 5  # -> 158
)
ROW_000 = (
    "TRTEngineOp_000_000" + " " * 13
    + " device:CPU:0" + " "
    + " 5" + " " * 6
    + " 2" + " " * 12
    + " 1" + " " * 12
    + " ['float32', 'i ..."  # "['float32', 'int32']" does not fit
    + " ['float32']" + " " * 7
    + " [[-1, 224, 224 ..."
    + " [[-1, 1000]]" + " " * 6
)
ROW_001 = (
    "TRTEngineOp_000_001" + " " * 13
    + " device:GPU:0" + " "
    + " 3" + " " * 6
    + " 1" + " " * 12
    + " 2" + " " * 12
    + " ['float32']" + " " * 7
    + " ['float32', 'f ..."
    + " [[2, 3]]" + " " * 10
    + " [[2, 3], [-1]]" + " " * 4
)
# fmt: on
OPS_000 = ["\t- BiasAdd: 1x", "\t- Const: 2x", "\t- Conv2D: 1x", "\t- Relu: 1x"]
OPS_001 = ["\t- AddV2: 1x", "\t- Const: 1x", "\t- Mul: 1x"]


def _engine(gd, name, device, in_t, out_t, in_shapes, out_shapes, ops, shapes_key="output_shapes"):
    node = gd.node.add(name=name, op="TRTEngineOp", device=device)
    func = function_pb2.FunctionDef()
    func.signature.name = f"{name}_native_segment"
    for i, op in enumerate(ops):
        func.node_def.add(name=f"n{i}", op=op)
    gd.library.function.append(func)
    node.attr["segment_func"].func.name = func.signature.name
    node.attr["InT"].list.type.extend(in_t)
    node.attr["OutT"].list.type.extend(out_t)
    for key, shapes in (("input_shapes", in_shapes), (shapes_key, out_shapes)):
        for dims in shapes:
            shape = node.attr[key].list.shape.add()
            for d in dims:
                shape.dim.add(size=d)
    return node


def _add_000(gd, **kw):
    _engine(
        gd,
        "TRTEngineOp_000_000",
        "/job:localhost/replica:0/task:0/device:CPU:0",
        [F32, I32],
        [F32],
        [[-1, 224, 224, 3], [2]],
        [[-1, 1000]],
        ["Const", "Conv2D", "Const", "BiasAdd", "Relu"],
        **kw,
    )


def _add_001(gd):
    _engine(
        gd,
        "TRTEngineOp_000_001",
        "/device:GPU:0",
        [F32],
        [F32, F32],
        [[2, 3]],
        [[2, 3], [-1]],
        ["Mul", "AddV2", "Const"],
    )


def _two_engines() -> graph_pb2.GraphDef:
    gd = graph_pb2.GraphDef()
    gd.node.add(name="x", op="Placeholder")
    _add_001(gd)  # out of order on purpose: rows are sorted by name
    gd.node.add(name="y", op="Placeholder")
    _add_000(gd)
    gd.node.add(name="out0", op="Identity")
    gd.node.add(name="out1", op="Identity")
    return gd


def _footer(n_engines: int, ratio: str) -> list[str]:
    return [
        "\n" + "=" * 160,
        f"[*] Total number of TensorRT engines: {n_engines}",
        f"[*] % of OPs Converted: {ratio}\n",
    ]


def test_column_end_positions():
    assert column_end_positions(160) == [32, 46, 54, 68, 82, 101, 120, 139, 158]
    assert column_end_positions(200) == [40, 58, 68, 86, 104, 128, 152, 176, 200]


def test_header_positions():
    assert (
        format_row(
            [
                "TRTEngineOP Name",
                "Device",
                "# Nodes",
                "# Inputs",
                "# Outputs",
                "Input DTypes",
                "Output Dtypes",
                "Input Shapes",
                "Output Shapes",
            ],
            column_end_positions(160),
        )
        == HEADER
    )
    assert len(HEADER) == 158
    for title, end in [
        ("Device", 32),
        ("# Nodes", 46),
        ("# Inputs", 54),
        ("# Outputs", 68),
        ("Input DTypes", 82),
        ("Output Dtypes", 101),
        ("Input Shapes", 120),
        ("Output Shapes", 139),
    ]:
        assert HEADER.index(" " + title) == end


def test_truncation_keeps_every_column_end():
    ends = column_end_positions(160)
    row = format_row(
        [
            "TRTEngineOp_with_a_name_longer_than_its_column",
            "d",
            1,
            1,
            1,
            "x" * 30,
            "y",
            "z",
            "w" * 40,
        ],
        ends,
    )
    assert row.startswith("TRTEngineOp_with_a_name_long ... d" + " " * 12 + " 1 ")
    assert row[82:101] == " " + "x" * 14 + " ..."
    assert row.endswith(" " + "w" * 14 + " ...")
    assert len(row) == 158


def test_two_engines_detailed():
    text = format_summary(_two_engines())
    expected = [
        HEADER,
        "=" * 160,
        SEP,
        ROW_000,
        "",
        *OPS_000,
        SEP,
        ROW_001,
        "",
        *OPS_001,
        *_footer(2, "66.67% [8/12]"),
    ]
    assert text.split("\n") == "\n".join(expected).split("\n")
    assert text == "\n".join(expected)


def test_two_engines_not_detailed():
    text = format_summary(_two_engines(), detailed=False)
    expected = [HEADER, "=" * 160, SEP, ROW_000, SEP, ROW_001, *_footer(2, "66.67% [8/12]")]
    assert text == "\n".join(expected)


def test_one_engine_has_no_separator():
    gd = graph_pb2.GraphDef()
    gd.node.add(name="x", op="Placeholder")
    _add_000(gd)
    text = format_summary(gd)
    expected = [HEADER, "=" * 160, ROW_000, "", *OPS_000, *_footer(1, "83.33% [5/6]")]
    assert text == "\n".join(expected)
    assert "-" * 40 not in text


def test_no_engine():
    gd = graph_pb2.GraphDef()
    gd.node.add(name="x", op="Placeholder")
    assert format_summary(gd) == "\n".join([HEADER, "=" * 160, *_footer(0, "0.00% [0/1]")])
    assert format_summary(graph_pb2.GraphDef()).endswith("0.00% [0/0]\n")


def test_engine_notes():
    notes = {"TRTEngineOp_000_001": ["backend: openvino", "precision: FP16"]}
    text = format_summary(_two_engines(), engine_notes=notes)
    expected = [
        HEADER,
        "=" * 160,
        SEP,
        ROW_000,
        "",
        *OPS_000,
        SEP,
        ROW_001,
        "",
        *OPS_001,
        "\t- backend: openvino",
        "\t- precision: FP16",
        *_footer(2, "66.67% [8/12]"),
    ]
    assert text == "\n".join(expected)

    text = format_summary(_two_engines(), detailed=False, engine_notes=notes)
    expected = [
        HEADER,
        "=" * 160,
        SEP,
        ROW_000,
        SEP,
        ROW_001,
        "",
        "\t- backend: openvino",
        "\t- precision: FP16",
        *_footer(2, "66.67% [8/12]"),
    ]
    assert text == "\n".join(expected)


def test_underscore_output_shapes_fallback():
    gd = graph_pb2.GraphDef()
    _add_000(gd, shapes_key="_output_shapes")
    assert ROW_000 in format_summary(gd).split("\n")


def test_segment_func_names_the_function():
    gd = graph_pb2.GraphDef()
    _add_000(gd)
    gd.library.function[0].signature.name = "renamed_segment"
    gd.node[0].attr["segment_func"].func.name = "renamed_segment"
    assert ROW_000 in format_summary(gd).split("\n")


def test_wider_line():
    text = format_summary(_two_engines(), line_length=200)
    lines = text.split("\n")
    assert lines[1] == "=" * 200
    assert lines[0].index(" Device") == 40
    assert len(lines[0]) == 200
    assert text.endswith(
        "=" * 200 + "\n[*] Total number of TensorRT engines: 2\n"
        "[*] % of OPs Converted: 66.67% [8/12]\n"
    )


def test_line_length_minimum():
    with pytest.raises(ValueError, match="159"):
        format_summary(_two_engines(), line_length=159)
