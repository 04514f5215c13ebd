"""Every code block of docs/guide/ runs, and says what the chapter claims.

Each chapter runs in a fresh directory: ``python`` blocks in one namespace and
``bash`` blocks as ``tftrt`` commands (in this process, through ``tftrt.cli.main``;
``VAR=value`` in front of a command sets it for that command), all in document
order. ``text`` blocks are not code.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pathlib
import re
import shlex
import tomllib

import numpy as np
import pytest

from tftrt.cli import main

GUIDE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "guide"
ROOT = GUIDE.parents[1]
BLOCK = re.compile(r"```(python|bash|text)\n(.*?)```", flags=re.S)


def run_chapter(name: str, monkeypatch, tmp_path) -> dict:
    """Run chapter ``name``'s blocks in ``tmp_path``; the namespace, with each bash
    command's output under ``"_bash"`` (a list of (command, stdout))."""
    text = (GUIDE / name).read_text()
    blocks = BLOCK.findall(text)
    assert blocks, f"no code in {name}"
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__guide__", "_bash": []}
    for kind, code in blocks:
        if kind == "python":
            exec(compile(code, str(GUIDE / name), "exec"), ns)  # noqa: S102 - our own docs
        elif kind == "bash":
            for line in code.strip().splitlines():
                ns["_bash"].append((line, _run_command(line, monkeypatch)))
    return ns


def _run_command(line: str, monkeypatch) -> str:
    words = shlex.split(line)
    with monkeypatch.context() as mp:
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            key, _, value = words.pop(0).partition("=")
            mp.setenv(key, value)
        assert words[0] == "tftrt", f"the guide's shell lines are tftrt commands: {line}"
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                code = main(words[1:])
            except SystemExit as exc:  # --help
                code = exc.code
        assert code == 0, f"{line!r} exited with {code}"
    return out.getvalue()


def test_install(monkeypatch, tmp_path, capsys) -> None:
    ns = run_chapter("1-install.md", monkeypatch, tmp_path)
    out = capsys.readouterr().out
    assert "auto picks:" in out and ns["usable"]
    for command in ("convert", "summary", "report", "bench", "export-triton"):
        assert command in ns["_bash"][0][1]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    text = (GUIDE / "1-install.md").read_text()
    (commands,) = [c for kind, c in BLOCK.findall(text) if kind == "text"]
    for named in re.findall(r'"\.\[(\w+)\]"', commands):
        assert named in extras, f"the guide names an extra pyproject.toml lacks: {named}"
    assert '".[cpu]"' in (ROOT / "README.md").read_text()


def test_quickstart(monkeypatch, tmp_path, capsys) -> None:
    ns = run_chapter("2-quickstart.md", monkeypatch, tmp_path)
    assert ns["difference"] < 1e-4
    assert [op.stats.builds for op in ns["loaded"].engines.values()] == [0]
    np.testing.assert_array_equal(ns["again"].numpy(), ns["logits"].numpy())
    out = capsys.readouterr().out
    assert "[*] Total number of TensorRT engines: 1" in out
    (_, converted), (_, summary) = ns["_bash"]
    assert "Saved to cnn_fp16" in converted
    assert "precision_mode FP16" in summary and "Saved engine 0" in summary


def test_precision(monkeypatch, tmp_path, capsys) -> None:
    ns = run_chapter("3-precision.md", monkeypatch, tmp_path)
    assert np.abs(ns["got"] - ns["want"]).max() < 5e-2 * np.abs(ns["want"]).max()
    engine = ns["engine"]
    assert engine.precision == "INT8" and engine.calibration["batches"] == 4
    assert np.abs(ns["q"] - ns["want"][:8]).max() < 0.1 * np.abs(ns["want"]).max()
    assert "INT8 scales: minmax calibration on 4 batches" in capsys.readouterr().out
    import tftrt

    (meta,) = tftrt.load(str(tmp_path / "mlp_int8")).manifest["engines"].values()
    assert meta["calibration"]["method"] == "minmax" and meta["calibration"]["batches"] == 4


def test_dynamic_shapes(monkeypatch, tmp_path, capsys) -> None:
    ns = run_chapter("4-dynamic-shapes.md", monkeypatch, tmp_path)
    op = ns["op"]
    # build()'s item ran on the engine it built, then the three calls
    assert op.stats.builds == 2 and op.stats.engine_calls == 4 and op.stats.native_calls == 0
    dop = ns["dop"]
    assert [str(p) for p in dop.profiles] == ["[2-8,16]"]
    assert dop.stats.builds == 1 and dop.stats.native_shapes[((1, 16),)] == 1
    assert dop.stats.engine_shapes[((5, 16),)] == 1
    assert "2 engines built; ['[1-16,16]', '[1-8,16]']" in capsys.readouterr().out


def test_debugging(monkeypatch, tmp_path, capsys) -> None:
    ns = run_chapter("5-debugging.md", monkeypatch, tmp_path)
    csv = (tmp_path / "report.csv").read_text()
    assert "Tanh|Denylisted with the env var TF_TRT_OP_DENYLIST|1" in csv
    assert "AsString|Op type AsString is not supported.|1" in csv
    logged = ns["records"]
    assert any("refused: Op type AsString is not supported." in r for r in logged)
    assert any(r.startswith("tftrt.segment: segment dropped") for r in logged)
    assert "2 engines drawn as clusters" in capsys.readouterr().out
    (command, report), = ns["_bash"]
    assert "[Count: 1x] Denylisted with the env var TF_TRT_OP_DENYLIST" in report
    assert (tmp_path / "mixed.dot").exists()
    assert "RESNET50_SCREEN" not in (GUIDE / "5-debugging.md").read_text()
    assert logging.getLogger("tftrt.capability").level == logging.NOTSET  # reset by the doc


def test_deployment(monkeypatch, tmp_path, capsys) -> None:
    ns = run_chapter("6-deployment.md", monkeypatch, tmp_path)
    assert np.abs(ns["a"] - ns["b"]).max() < 1e-5
    np.testing.assert_allclose(ns["c"], ns["b"], rtol=1e-6, atol=1e-6)
    ratio = ns["size"]("mlp_small") / ns["size"]("mlp_tftrt")
    assert ratio < 0.65, ratio  # two copies of the weights out of four or five
    assert "native segments kept: False" in capsys.readouterr().out


def test_best_practices(monkeypatch, tmp_path, capsys) -> None:
    ns = run_chapter("7-best-practices.md", monkeypatch, tmp_path)
    ((_, bench),) = ns["_bash"]
    assert "native TensorFlow" in bench and "Speedup (p50):" in bench
    assert "x [16, 64] float32" in bench
    assert "tftrt 0.1.0" in capsys.readouterr().out


def test_resnet50_capture_shows_the_bar() -> None:
    capture = (GUIDE / "resnet50-build.txt").read_text()
    assert "tftrt convert resnet50" in capture
    assert re.search(r"Building engines:\s+0%.*0/1", capture), "no bar while building"
    assert re.search(r"Building engines: 100%.*1/1", capture), "no finished bar"
    assert "Saved to" in capture


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """Variables a chapter sets do not leak into other tests."""
    for name in ("TF_TRT_OP_DENYLIST", "TF_TRT_SHOW_DETAILED_REPORT",
                 "TF_TRT_EXPORT_GRAPH_VIZ_PATH", "TF_TRT_EXPERIMENTAL_FEATURES"):
        monkeypatch.delenv(name, raising=False)
    yield
    for name in ("TF_TRT_OP_DENYLIST", "TF_TRT_SHOW_DETAILED_REPORT",
                 "TF_TRT_EXPORT_GRAPH_VIZ_PATH", "TF_TRT_EXPERIMENTAL_FEATURES"):
        os.environ.pop(name, None)
