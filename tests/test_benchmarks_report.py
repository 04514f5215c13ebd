"""The benchmark suite's report: tables, headline ratios, CSV and plots from raw results."""

from __future__ import annotations

import csv
import json
import time

import numpy as np

from benchmarks import docs, report
from benchmarks.timing import PeakRSS, cpu_ticks, interleaved_samples, steal_pct, summary


def _row(candidate: str, p50: float, batch: int = 1, kind: str = "peer") -> dict:
    return {"model": "m", "batch": batch, "candidate": candidate, "kind": kind,
            "precision": "FP32", "runs_as": "", "engines": 1, "p50_ms": p50,
            "p99_ms": p50 * 2, "calls": 30, "throughput": batch * 1e3 / p50 if p50 else 0.0,
            "convert_s": 1.5, "peak_mb": 100.0, "max_rel_err": 1e-6, "error": ""}


ROWS = [_row("TF native", 10.0), _row("OpenVINO direct f32", 5.0),
        _row("tftrt openvino FP32", 4.0, kind="tftrt"),
        {**_row("TF XLA", 0.0, batch=0), "error": "Failed to compile"}]


def test_tables_say_what_ran_and_what_failed() -> None:
    table = report.model_table(ROWS, "m")
    assert "| tftrt openvino FP32 | FP32 | 4.00 | 8.00 | 250.0 | 2.50x |" in table
    assert "TF XLA could not run: Failed to compile" in table
    assert report.ratio(ROWS, "m", 1, "tftrt openvino FP32", "OpenVINO direct f32") == 1.25
    assert "| m | 1 | FP32 vs OpenVINO given the SavedModel | 1.250 |" in \
        report.headline_table(ROWS)


def test_docs_are_written_from_raw_results(tmp_path) -> None:
    results, out = tmp_path / "results", tmp_path / "docs"
    results.mkdir()
    meta = {"cpu": "x", "cores": 2, "flags": ["avx2"], "load_average": [1, 1, 1],
            "versions": {"tftrt": "0"}, "command": "python -m benchmarks",
            "cpu_steal_pct": 4.5}
    (results / "model-m.json").write_text(json.dumps({"meta": meta, "rows": ROWS}))
    docs.write(results, out)
    text = (out / "README.md").read_text()
    assert "## m" in text and "avx2" in text and "tftrt openvino FP32" in text
    assert "host took for others 4.5%" in text
    assert "| m | 1 | FP32 vs OpenVINO given the SavedModel | 1.250 | x |" in text
    with open(out / "results.csv", newline="") as f:
        assert [r["candidate"] for r in csv.DictReader(f)] == [r["candidate"] for r in ROWS]
    assert (out / "speedup_b1.png").is_file()


def test_interleaved_samples_and_peak_rss() -> None:
    calls = []
    samples = interleaved_samples([lambda: calls.append("a"), lambda: calls.append("b")], 6,
                                  block=3, warmup=1, settle=1)
    assert [len(s) for s in samples] == [6, 6]
    rounds = calls[2:]  # after the warmup: per round, each candidate's block of 1 + 3 calls
    assert len(rounds) == 16
    for r in range(2):
        blocks = rounds[8 * r:8 * r + 4], rounds[8 * r + 4:8 * r + 8]
        assert sorted(b[0] for b in blocks) == ["a", "b"]
        assert all(len(set(b)) == 1 for b in blocks)
    assert summary([1.0, 2.0, 3.0])["p50_ms"] == 2.0
    with PeakRSS() as rss:
        block = np.ones(32 << 20, np.uint8)  # 32 MiB touched
        time.sleep(0.2)  # held across many samples (freed at once, a sample could miss it)
        del block
    assert rss.added >= 16 << 20


def test_steal_is_a_share_of_the_cpu_time_since() -> None:
    start = cpu_ticks()
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:  # some CPU time to share out
        pass
    stolen = steal_pct(start)
    assert stolen is None or 0.0 <= stolen <= 100.0
    assert steal_pct((10**18, 0)) is None  # no time has passed since
