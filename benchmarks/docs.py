"""Writes docs/benchmarks/ (README.md, results.csv, plots) from benchmarks/results/."""

from __future__ import annotations

import glob
import json
import os
import pathlib

from benchmarks import report


def _machine(meta: dict) -> str:
    v = ", ".join(f"{k} {x}" for k, x in meta.get("versions", {}).items())
    stolen = meta.get("cpu_steal_pct")
    steal = "" if stolen is None else f"; CPU time the VM's host took for others {stolen}%"
    return (f"{meta.get('cpu')}, {meta.get('cores')} cores, features "
            f"{' '.join(meta.get('flags', []))}; load average {meta.get('load_average')} "
            f"before, {meta.get('load_average_after')} after{steal}; {v}")


def write(results: pathlib.Path, out: pathlib.Path, quick: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    prefix = "quick-model-" if quick else "model-"
    paths = sorted(glob.glob(str(results / f"{prefix}*.json")))
    rows, metas = report.load_results(paths) if paths else ([], [])
    parts = ["# Benchmarks\n",
             "Made by `python -m benchmarks` (see `benchmarks/__main__.py`); every figure "
             "below comes from one interleaved run per model and batch: all candidates "
             "timed in alternating blocks of calls, so that other load on this shared "
             "machine hits each alike. p50/p99 are of per-call wall times; throughput is "
             "batch / p50 (one stream); *vs TF* is TF native's p50 over the candidate's. "
             "Conversion time is `convert()` + `build()` for tftrt, the peer's own "
             "conversion otherwise; *conv. peak MB* is the RSS the conversion added at its "
             "peak. Models have random weights (`benchmarks/zoo.py`). Raw results: "
             "`benchmarks/results/`, all rows: [results.csv](results.csv).\n",
             "FP16 on this CPU runs as bf16 (AMX/AVX512-BF16: OpenVINO's bf16 kernels); "
             "INT8 runs on VNNI/AMX int8 kernels: both figures depend on those features "
             "and differ on CPUs without them.\n"]
    if rows:
        report.write_csv(rows, str(out / "results.csv"))
        plots = report.plot(rows, str(out))
        parts.append("## Headline: tftrt against the best engine given the whole model\n")
        machines = {model: str(meta.get("cpu")) for model, meta in
                    zip(dict.fromkeys(r["model"] for r in rows), metas, strict=False)}
        parts.append(report.headline_table(rows, machines) + "\n")
        notes = pathlib.Path(__file__).with_name("notes.md")
        if notes.is_file() and not quick:  # what the figures say, written by a person
            parts.append(notes.read_text(encoding="utf-8"))
        for p in plots:
            parts.append(f"![{os.path.basename(p)}]({os.path.basename(p)})\n")
        for model, meta in zip(dict.fromkeys(r["model"] for r in rows), metas, strict=False):
            parts.append(f"## {model}\n")
            if meta.get("note"):
                parts.append(f"{meta['note']}.\n")
            parts.append(f"Command: `{meta.get('command')}`. Machine: {_machine(meta)}.\n")
            parts.append(report.model_table(rows, model) + "\n")
    overhead = results / "overhead.json"
    if overhead.is_file():
        parts.append(_overhead(json.loads(overhead.read_text(encoding="utf-8"))))
    costs = results / "costs.json"
    if costs.is_file():
        parts.append(_costs(json.loads(costs.read_text(encoding="utf-8"))))
    (out / "README.md").write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {out / 'README.md'}")


def _overhead(data: dict) -> str:
    t, two = data["tiny"], data["two_engines"]
    lines = ["## Per-call overhead\n",
             f"Command: `{data['meta'].get('command')}`. Machine: {_machine(data['meta'])}.\n",
             "Fully converted 32x32 MLP (one OpenVINO engine is the whole model), median ms "
             f"of {t['calls']} interleaved calls each:\n", "| path | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in t["ms"].items()]
    lines.append(f"\ntftrt over the lean engine calls: **{t['overhead_vs_lean_ms']:.4f} ms**; "
                 f"over OpenVINO's own API: {t['overhead_vs_api_ms']:.4f} ms.\n")
    lines += ["Two engines with native ops between them "
              f"({two['backend']}), median ms of {two['calls']} interleaved calls each "
              "(tftrt called eagerly runs the native ops as one TensorFlow stage and calls "
              "the engines between stages; the py-func path is what runs inside a "
              "`tf.function`):\n",
              "| path | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in two["ms"].items()]
    lines.append(f"\nOverhead per engine call (tftrt - graph with identities - both engines "
                 f"alone, / 2): **{two['overhead_per_engine_ms']:.4f} ms**"
                 + (f"; on the py-func path: {two['overhead_per_engine_pyfunc_ms']:.4f} ms"
                    if "overhead_per_engine_pyfunc_ms" in two else "") + ".\n")
    return "\n".join(lines)


def _costs(data: dict) -> str:
    lines = ["## Conversion cost\n",
             f"Command: `{data['meta'].get('command')}` (each measurement in its own "
             f"process). Machine: {_machine(data['meta'])}.\n",
             "| measurement | seconds | peak RSS MB | RSS added MB | detail |",
             "|---|---|---|---|---|"]
    for r in data["results"]:
        if "error" in r:
            lines.append(f"| {r['name']} | failed | | | {r['error'][-120:]!r} |")
            continue
        if r["name"] == "resnet50_fp32":
            secs = r["total_s"]
            detail = f"convert {r['convert_s']:.2f} s + build {r['build_s']:.2f} s"
        elif r["name"] == "vgg16_convert":
            secs, detail = r["convert_s"], (
                f"its {r['weights_mb']:.0f} MB of weights read once from disk "
                f"{r.get('read_weights_once_s', float('nan')):.2f} s + written once "
                f"{r.get('bytes_weights_once_s', float('nan')):.2f} s (np.copy: "
                f"{r['copy_weights_once_s']:.2f} s)")
        else:
            secs, detail = r["calibration_s"], (
                f"recording {r.get('record_s', 0):.1f} s + scales {r.get('scales_s', 0):.1f} s; "
                f"whole INT8 convert() {r['convert_s']:.1f} s")
        lines.append(f"| {r['name']} | {secs:.2f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['added_rss_mb']:.0f} | {detail} |")
    return "\n".join(lines) + "\n"
