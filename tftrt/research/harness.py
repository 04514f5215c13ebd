"""The partitioner harness: compare partitioners on a set of models, as a paper's table.

For each model, every configuration is converted and built on one sample
input, then all of them and TensorFlow native (the SavedModel's signature, as
users call it) are timed side by side in one run: interleaved medians of many
calls, so that other load on the machine hits each alike. Per configuration it
records engines, % of ops converted (as the summary counts them), boundary
tensors and bytes (every engine input and output at the sample's shapes),
latency, its speedup over native, build time (convert + build) and the largest
difference from native's outputs. ``write`` saves ``results.json``,
``results.md`` and, with matplotlib installed, ``partitioners.png``.

A configuration is ``native`` or ``PARTITIONER[/COST_MODEL]@MINIMUM_SEGMENT_SIZE``,
e.g. ``union-find@3`` or ``cost/analytic@1``. The cost partitioner gets the
sample input as its ``inputs`` (so it measures) unless a cost model is named.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from tftrt.engines.cpu import cpu_flags, cpu_model

NATIVE = "native"


@dataclass(frozen=True)
class Config:
    """One way to run a model: TF native, or a partitioner at a minimum segment size."""

    label: str
    partitioner: str | None  # None: TensorFlow native
    minimum_segment_size: int = 3
    cost_model: str | None = None


def parse_config(text: str) -> Config:
    """``native`` or ``PARTITIONER[/COST_MODEL]@MINIMUM_SEGMENT_SIZE``."""
    if text == NATIVE:
        return Config(NATIVE, None)
    name, at, size = text.partition("@")
    partitioner, slash, cost_model = name.partition("/")
    if not partitioner or (at and not size.lstrip("-").isdigit()) or (slash and not cost_model):
        raise ValueError(f"bad configuration {text!r}: expected 'native' or "
                         f"'PARTITIONER[/COST_MODEL]@MINIMUM_SEGMENT_SIZE'")
    return Config(text, partitioner, int(size) if at else 3, cost_model or None)


@dataclass
class Row:
    """One (model, configuration) measurement."""

    model: str
    config: str
    engines: int
    ops_converted_pct: float
    boundary_tensors: int
    boundary_bytes: int
    latency_ms: float = 0.0
    speedup: float = 1.0  # native latency / this latency
    build_s: float = 0.0
    max_abs_diff: float = 0.0  # against TF native's outputs
    precision: str = "FP32"  # the converter's precision_mode


def machine() -> dict:
    """What the figures were measured on: the CPU, the flags of it that matter, the load."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "flags": [f for f in wanted if f in cpu_flags()],
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def _graph_metrics(conv, feed_batch: int) -> tuple[int, float, int, int]:
    from tftrt.specs import ENGINE_OP

    gd = conv.converted_graph_def
    converted = sum(len(f.node_def) for f in gd.library.function)
    native = sum(1 for n in gd.node if n.op != ENGINE_OP)
    tensors = nbytes = 0
    for op in conv.engines.values():
        for spec in op.inputs + op.outputs:
            tensors += 1
            dims = [feed_batch if d is None else d for d in (spec.shape or ())]
            nbytes += int(np.prod(dims, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
    engines = sum(1 for n in gd.node if n.op == ENGINE_OP)
    total = converted + native
    return engines, 100.0 * converted / total if total else 0.0, tensors, nbytes


def compare_model(model: str, configs: Sequence[Config], workdir: str, backend: str = "auto",
                  precision_mode: str = "FP32", calls: int = 200,
                  input_shape: Sequence[int] | None = None,
                  log: Callable[[str], None] = print) -> list[Row]:
    """Rows for ``model`` (a name from ``research.models`` or a SavedModel path)."""
    import tensorflow as tf

    from tftrt import trt_convert as trt
    from tftrt.cli import interleaved_median_ms
    from tftrt.research.models import export

    path, shape = export(model, workdir)
    shape = tuple(input_shape) if input_shape else shape
    if shape is None:
        raise ValueError(f"{model}: give the sample input's shape (--input-shape)")
    loaded = tf.saved_model.load(path)  # kept alive: the signature reads its variables
    serve = loaded.signatures["serving_default"]
    (name,) = serve.structured_input_signature[1]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    xt = tf.constant(x)
    want = [np.asarray(t) for t in serve(**{name: xt}).values()]
    rows, fns = [], []
    for cfg in configs:
        if cfg.partitioner is None:
            rows.append(Row(model, cfg.label, 0, 0.0, 0, 0, precision=precision_mode))
            fns.append(lambda: serve(**{name: xt}))
            continue
        options = {"cost_model": cfg.cost_model} if cfg.cost_model else {}
        if cfg.partitioner == "cost" and not cfg.cost_model:
            options["inputs"] = lambda: iter([[x]])
        t0 = time.perf_counter()
        conv = trt.TrtGraphConverterV2(
            input_saved_model_dir=path, backend=backend, precision_mode=precision_mode,
            minimum_segment_size=cfg.minimum_segment_size, partitioner=cfg.partitioner,
            partitioner_options=options)
        fn = conv.convert()
        conv.build(lambda: iter([[x]]))
        build_s = time.perf_counter() - t0
        got = [np.asarray(t) for t in fn(x).values()]
        diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
        rows.append(Row(model, cfg.label, *_graph_metrics(conv, shape[0]), build_s=build_s,
                        max_abs_diff=diff, precision=precision_mode))
        fns.append(lambda fn=fn: fn(x))
        log(f"{model} {cfg.label}: {rows[-1].engines} engines, "
            f"{rows[-1].ops_converted_pct:.1f}% of ops converted, built in {build_s:.1f} s")
    for row, ms in zip(rows, interleaved_median_ms(fns, calls), strict=True):
        row.latency_ms = ms
    base = next((r.latency_ms for r in rows if r.config == NATIVE), None)
    for row in rows:
        row.speedup = base / row.latency_ms if base else 1.0
    return rows


def compare(models: Sequence[str], configs: Sequence[Config], workdir: str,
            **kwargs) -> list[Row]:
    """Rows for every model and configuration (see :func:`compare_model`)."""
    return [row for m in models for row in compare_model(m, configs, workdir, **kwargs)]


COLUMNS = (("model", "model", "{}"), ("configuration", "config", "{}"),
           ("precision", "precision", "{}"),
           ("engines", "engines", "{}"), ("% ops converted", "ops_converted_pct", "{:.1f}"),
           ("boundary tensors", "boundary_tensors", "{}"),
           ("boundary KiB", "boundary_bytes", "{:.0f}"),
           ("latency ms", "latency_ms", "{:.2f}"), ("vs native", "speedup", "{:.2f}x"),
           ("build s", "build_s", "{:.1f}"), ("max abs diff", "max_abs_diff", "{:.1e}"))


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(h for h, _, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = []
        for _, key, fmt in COLUMNS:
            value = getattr(row, key)
            cells.append(fmt.format(value / 1024 if key == "boundary_bytes" else value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], path: str) -> bool:
    """Bar charts of speed against TF native, engines and % converted per model and
    precision; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def group(r: Row) -> str:
        return f"{r.model}\n{r.precision}"

    models = list(dict.fromkeys(group(r) for r in rows))
    configs = list(dict.fromkeys(r.config for r in rows))
    panels = (("speedup", "speed vs TF native (x, median latency)"), ("engines", "engines"),
              ("ops_converted_pct", "% of ops converted"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 1.5 * len(models)),
                                                      3.0 * len(panels)), squeeze=False)
    width = 0.8 / len(configs)
    for ax, (key, title) in zip(axes[:, 0], panels, strict=True):
        for k, cfg in enumerate(configs):
            values = [next((getattr(r, key) for r in rows if group(r) == m and r.config == cfg),
                           0) for m in models]
            ax.bar([i + k * width for i in range(len(models))], values, width, label=cfg)
        ax.set_xticks([i + width * (len(configs) - 1) / 2 for i in range(len(models))],
                      models)
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize="small")
    axes[0][0].axhline(1.0, color="grey", linewidth=0.8)
    axes[0][0].legend(fontsize="small", ncol=len(configs))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(rows: Sequence[Row], out_dir: str, meta: dict | None = None) -> list[str]:
    """Write results.json, results.md and partitioners.png (with matplotlib) into
    ``out_dir``; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    info = {"machine": machine(), **(meta or {})}
    written = []
    path = os.path.join(out_dir, "results.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"meta": info, "rows": [asdict(r) for r in rows]}, f, indent=1)
    written.append(path)
    path = os.path.join(out_dir, "results.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(table(rows))
        f.write(f"\nMachine: {info['machine']}\n")
    written.append(path)
    path = os.path.join(out_dir, "partitioners.png")
    if plot(rows, path):
        written.append(path)
    return written
