"""The partitioner harness: configurations, the side-by-side run, its table and plots."""

from __future__ import annotations

import json

import pytest

from tests.test_partitioners import WIDTH
from tests.test_partitioners import chain_dir as chain_dir  # noqa: F401 - the fixture
from tftrt import cli
from tftrt.research import harness


def test_configurations_parse() -> None:
    assert harness.parse_config("native") == harness.Config("native", None)
    assert harness.parse_config("union-find@3") == harness.Config("union-find@3",
                                                                  "union-find", 3)
    assert harness.parse_config("cost/analytic@1") == harness.Config(
        "cost/analytic@1", "cost", 1, "analytic")
    for bad in ("cost@x", "@3", "cost/@1"):
        with pytest.raises(ValueError, match="bad configuration"):
            harness.parse_config(bad)


def test_compare_measures_every_configuration_side_by_side(chain_dir: str, tmp_path) -> None:
    configs = [harness.parse_config(c) for c in
               ("native", "union-find@1", "union-find@4", "cost/analytic@1")]
    rows = harness.compare_model(chain_dir, configs, str(tmp_path), backend="onnxruntime",
                                 calls=10, input_shape=(2, WIDTH), log=lambda _: None)
    by = {r.config: r for r in rows}
    assert by["native"].engines == 0 and by["native"].speedup == 1.0
    uf = by["union-find@1"]
    # three blocks: MatMul+AddV2+Relu (+ weights) each; 2 x 16 float32 in and out
    assert uf.engines == 3 and uf.boundary_tensors == 6 and uf.boundary_bytes == 6 * 2 * 16 * 4
    assert 0 < uf.ops_converted_pct < 100 and uf.max_abs_diff < 1e-5
    assert by["union-find@4"].engines == 3  # 5 effective nodes each (consts count)
    assert all(r.latency_ms > 0 and r.speedup > 0 for r in rows)
    assert uf.speedup == pytest.approx(by["native"].latency_ms / uf.latency_ms)
    written = harness.write(rows, str(tmp_path / "out"), {"backend": "onnxruntime"})
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["config"] for r in data["rows"]] == [c.label for c in configs]
    assert set(data["meta"]["machine"]) == {"cpu", "cpu_count", "machine", "flags", "loadavg"}
    table = (tmp_path / "out" / "results.md").read_text()
    assert table.splitlines()[0].startswith("| model | configuration | precision | engines |")
    assert "| union-find@1 | FP32 | 3 |" in table
    pytest.importorskip("matplotlib")  # the test extra installs it
    assert str(tmp_path / "out" / "partitioners.png") in written
    assert (tmp_path / "out" / "partitioners.png").read_bytes()[:4] == b"\x89PNG"


def test_the_command(chain_dir: str, tmp_path, capsys) -> None:
    assert cli.main(["compare-partitioners", chain_dir, "--input-shape", "2", str(WIDTH),
                     "--config", "native", "--config", "union-find@1", "--calls", "6",
                     "--backend", "onnxruntime", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| model | configuration |" in out and f"wrote {tmp_path}/results.json" in out
    assert cli.main(["compare-partitioners", chain_dir, "--config", "native",
                     "--out", str(tmp_path)]) == 1  # a user's mistake: one line, status 1
    assert "give the sample input's shape" in capsys.readouterr().err


@pytest.mark.parametrize(("model", "segments_at_1", "segments_at_3", "input_shape"),
                         [("cut-chain", 20, 14, (1, 28, 28, 64)),
                          ("mixed-chain", 20, 15, (1, 28, 28, 64)),
                          ("cut-mobilenet", 18, 18, (1, 224, 224, 3)),
                          ("cut-encoder", 20, 20, (1, 128, 256))])
def test_built_in_chains_cut_into_about_twenty_segments(model: str, segments_at_1: int,
                                                        segments_at_3: int, input_shape,
                                                        tmp_path) -> None:
    from tftrt import trt_convert as trt
    from tftrt.research.models import export

    path, shape = export(model, str(tmp_path))
    assert shape == input_shape
    for size, want in ((1, segments_at_1), (3, segments_at_3)):
        conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, backend="onnxruntime",
                                       minimum_segment_size=size)
        conv.convert()
        assert len(conv.engines) == want, (model, size)
