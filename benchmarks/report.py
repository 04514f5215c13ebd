"""docs/benchmarks/: the tables (markdown and CSV), the plots and the machine."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence

FIELDS = ("model", "batch", "candidate", "kind", "precision", "runs_as", "engines", "p50_ms",
          "p99_ms", "calls", "throughput", "convert_s", "peak_mb", "max_rel_err", "error")


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _err(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.1e}"


def write_csv(rows: Sequence[Mapping], path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def ratio(rows: Sequence[Mapping], model: str, batch: int, ours: str, peer: str) -> float | None:
    """Throughput of candidate ``ours`` over that of ``peer`` (same run)."""
    by = {r["candidate"]: r for r in rows if r["model"] == model and r["batch"] == batch}
    if ours in by and peer in by and by[peer]["throughput"] and by[ours]["throughput"]:
        return by[ours]["throughput"] / by[peer]["throughput"]
    return None


HEADLINES = (("tftrt openvino FP32", "OpenVINO direct f32",
              "FP32 vs OpenVINO given the SavedModel"),
             ("tftrt openvino FP16", "OpenVINO direct bf16",
              "FP16 (bf16 on AMX) vs OpenVINO given the SavedModel at bf16"),
             ("tftrt openvino INT8", "ORT-quantized in OpenVINO",
              "INT8 vs OpenVINO running ONNX Runtime's quantization of the same network"))


def model_table(rows: Sequence[Mapping], model: str) -> str:
    mine = [r for r in rows if r["model"] == model and r["batch"]]
    batches = sorted({r["batch"] for r in mine})
    native = {r["batch"]: r["p50_ms"] for r in mine if r["candidate"] == "TF native"}
    head = ("| candidate | precision (runs as) | " +
            " | ".join(f"b{b} p50 ms | b{b} p99 ms | b{b} items/s | b{b} vs TF" for b in batches)
            + " | convert s | conv. peak MB | max rel err |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    names = list(dict.fromkeys(r["candidate"] for r in mine))
    for name in names:
        cells = []
        first = None
        for b in batches:
            r = next((x for x in mine if x["candidate"] == name and x["batch"] == b), None)
            if r is None:
                cells += ["–"] * 4
                continue
            first = first or r
            speed = native.get(b, float("nan")) / r["p50_ms"] if r["p50_ms"] else float("nan")
            cells += [_fmt(r["p50_ms"]), _fmt(r["p99_ms"]), _fmt(r["throughput"], 1),
                      _fmt(speed) + "x"]
        prec = first["precision"] + (f" ({first['runs_as']})" if first["runs_as"] else "")
        lines.append(f"| {name} | {prec} | " + " | ".join(cells) +
                     f" | {_fmt(first['convert_s'], 1)} | {_fmt(first['peak_mb'], 0)} | "
                     f"{_err(first['max_rel_err'])} |")
    failed = [r for r in rows if r["model"] == model and not r["batch"] and r["error"]]
    for r in failed:
        lines.append(f"\n- {r['candidate']} could not run: {r['error']}")
    return "\n".join(lines)


def headline_table(rows: Sequence[Mapping], machines: Mapping[str, str] | None = None) -> str:
    """tftrt's throughput over each headline peer's, per model and batch; with
    ``machines`` (model -> CPU), a column saying where each model was measured."""
    where = machines is not None
    lines = ["| model | batch | comparison | tftrt / peer throughput |"
             + (" measured on |" if where else ""), "|---|---|---|---|" + ("---|" if where else "")]
    for model in dict.fromkeys(r["model"] for r in rows):
        for b in sorted({r["batch"] for r in rows if r["model"] == model and r["batch"]}):
            for ours, peer, what in HEADLINES:
                q = ratio(rows, model, b, ours, peer)
                if q is not None:
                    lines.append(f"| {model} | {b} | {what} | {q:.3f} |"
                                 + (f" {machines.get(model, '?')} |" if where else ""))
    return "\n".join(lines)


def plot(rows: Sequence[Mapping], out_dir: str) -> list[str]:
    """One bar chart per batch: each model's speedup over TF native, per candidate."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for b in sorted({r["batch"] for r in rows if r["batch"]}):
        models = list(dict.fromkeys(r["model"] for r in rows if r["batch"] == b))
        names = list(dict.fromkeys(r["candidate"] for r in rows if r["batch"] == b
                                   and r["candidate"] != "TF native"))
        fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(models)), 4.8))
        width = 0.8 / max(1, len(names))
        colors = plt.get_cmap("tab20").colors
        for k, name in enumerate(names):
            ys = []
            for m in models:
                native = next((r["p50_ms"] for r in rows if r["model"] == m and
                               r["batch"] == b and r["candidate"] == "TF native"), None)
                mine = next((r["p50_ms"] for r in rows if r["model"] == m and
                             r["batch"] == b and r["candidate"] == name), None)
                ys.append(native / mine if native and mine else 0.0)
            xs = [i + (k - len(names) / 2) * width + width / 2 for i in range(len(models))]
            ours = name.startswith("tftrt")
            ax.bar(xs, ys, width, label=name, color=colors[k % len(colors)],
                   edgecolor="black", linewidth=0.8 if ours else 0.3,
                   hatch=None if ours else "//")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(models)), models, rotation=15)
        ax.set_ylabel("speedup over TF native (p50), log scale")
        ax.set_yscale("log")
        ax.set_title(f"Batch {b}: speedup over TensorFlow's SavedModel signature "
                     "(hatched: peers; solid: tftrt)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = os.path.join(out_dir, f"speedup_b{b}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def load_results(paths: Sequence[str]) -> tuple[list[dict], list[dict]]:
    rows, metas = [], []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            data = json.load(f)
        rows += data["rows"]
        metas.append(data["meta"])
    return rows, metas
