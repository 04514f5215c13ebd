"""Golden tests: the summary, both report modes, the CSV and the graph view of one fixed model.

The model holds a deny-listed op (Tanh, through TF_TRT_OP_DENYLIST) and string ops
(AsString, StringToNumber: never convertible), between two convertible blocks.
Engine names depend on a process-wide counter: the texts are compared as if the
conversion were the process's first. Regenerate
the files under tests/data/golden after an intended change with
``TFTRT_UPDATE_GOLDEN=1 python -m pytest tests/test_golden_reports.py``.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import export_module
from tftrt import trt_convert as trt
from tftrt.cli import main
from tftrt.report.graphviz import svg_path, to_dot

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden"
RNG = np.random.default_rng(7)
W1 = RNG.standard_normal((6, 5)).astype(np.float32)
W2 = RNG.standard_normal((5, 3)).astype(np.float32)


def mixed(x):
    h = tf.nn.relu(tf.matmul(x, W1) + 1.0)
    t = tf.tanh(h)  # deny-listed
    y = tf.nn.relu(tf.matmul(t, W2)) * 2.0
    n = tf.strings.to_number(tf.strings.as_string(y))  # string ops: never in an engine
    return {"y": y, "n": n + 1.0}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    text = normalized(text)
    if os.environ.get("TFTRT_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with TFTRT_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("golden") / "mixed"), mixed,
                         [tf.TensorSpec([None, 6], tf.float32)])


@pytest.fixture
def fixed_names(monkeypatch):
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", "Tanh")


def normalized(text: str) -> str:
    """Engine names as if this were the process's first conversion (TF-TRT's counter)."""
    return re.sub(r"TRTEngineOp_\d{3}_", "TRTEngineOp_000_", text)


def _converter(path: str) -> trt.TrtGraphConverterV2:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, minimum_segment_size=2,
                                   backend="onnxruntime")
    conv.convert()
    return conv


def test_summary_golden(mixed_dir, fixed_names) -> None:
    conv = _converter(mixed_dir)
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    check_golden("summary.txt", "\n".join(lines))
    assert len(conv.engines) == 2


def test_report_modes_and_csv_golden(mixed_dir, fixed_names, tmp_path, capsys) -> None:
    csv = tmp_path / "report.csv"
    assert main(["report", mixed_dir, "--backend", "onnxruntime",
                 "--minimum-segment-size", "2"]) == 0
    check_golden("report_normal.txt", capsys.readouterr().out)
    assert main(["report", mixed_dir, "--backend", "onnxruntime", "--minimum-segment-size",
                 "2", "--detailed", "--csv", str(csv)]) == 0
    detailed = capsys.readouterr().out.replace(str(csv), "<csv>")
    check_golden("report_detailed.txt", detailed)
    check_golden("report.csv", csv.read_text())
    rows = {tuple(line.split("|")[:2]) for line in csv.read_text().splitlines()[1:]}
    assert ("Tanh", "Denylisted with the env var TF_TRT_OP_DENYLIST") in rows
    assert ("AsString", "Op type AsString is not supported.") in rows
    assert ("StringToNumber", "Op type StringToNumber is not supported.") in rows


def test_saved_summary_golden(mixed_dir, fixed_names, tmp_path, capsys) -> None:
    out = tmp_path / "converted"
    x = RNG.random((4, 6), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["convert", mixed_dir, str(out), "--backend", "onnxruntime",
                 "--minimum-segment-size", "2", "--build-data", str(tmp_path / "x.npy"),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["summary", str(out)]) == 0
    import onnxruntime

    text = capsys.readouterr().out.replace(onnxruntime.__version__, "<ort version>")
    check_golden("saved_summary.txt", text)


def _clusters(dot: str) -> dict[str, set[str]]:
    """cluster name -> the op types drawn inside it."""
    out: dict[str, set[str]] = {}
    for m in re.finditer(r'subgraph "cluster_([^"]+)" \{(.*?)\n  \}', dot, flags=re.S):
        out[m.group(1)] = set(re.findall(r'label="(\w+)\\n', m.group(2)))
    return out


def test_dot_draws_engines_as_clusters_and_graphviz_parses_it(mixed_dir, fixed_names,
                                                              tmp_path) -> None:
    conv = _converter(mixed_dir)
    dot = to_dot(conv.converted_graph_def)
    check_golden("mixed.dot", dot)
    clusters = _clusters(normalized(dot))
    assert set(clusters) == {normalized(name) for name in conv.engines}
    assert {"MatMul", "Relu", "AddV2"} <= clusters["TRTEngineOp_000_000"]
    assert {"MatMul", "Relu", "Mul"} <= clusters["TRTEngineOp_000_001"]
    outside = dot.split("subgraph")[0] + dot.rsplit("  }", 1)[1]
    assert "Tanh\\n" in dot and all("Tanh" not in ops for ops in clusters.values())
    assert "AsString\\n" in outside and "StringToNumber\\n" in outside
    dot_bin = shutil.which("dot")
    if dot_bin is None:
        pytest.skip("Graphviz's dot is not installed (Debian: apt-get install graphviz; "
                    ".ci/run installs it when it can)")
    path = tmp_path / "graph.dot"
    path.write_text(dot)
    svg = subprocess.run([dot_bin, "-Tsvg", str(path)], check=True, capture_output=True,
                         text=True).stdout
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for name in conv.engines:
        assert f"<title>cluster_{name}</title>" in svg


def test_viz_variable_writes_dot_and_svg(mixed_dir, fixed_names, tmp_path, monkeypatch) -> None:
    path = tmp_path / "viz.dot"
    monkeypatch.setenv("TF_TRT_EXPORT_GRAPH_VIZ_PATH", str(path))
    conv = _converter(mixed_dir)
    assert path.read_text() == to_dot(conv.converted_graph_def)
    svg = pathlib.Path(svg_path(str(path)))
    assert svg.name == "viz.svg"
    assert svg.exists() == (shutil.which("dot") is not None)
