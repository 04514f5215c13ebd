"""Cost-aware partitioner vs union-find vs TF native, side by side in one run.

    python benchmarks/bench_partitioners.py [--backend openvino] [--precision FP32 FP16]

The models are the harness's ``cut-chain``, ``mixed-chain``, ``cut-mobilenet`` and
``cut-encoder``: ops without converters every few nodes cut each into 18-20
candidate segments (see tftrt/research/models.py); cut-chain's segments are
convolutions and elementwise ops at 28x28, mixed-chain adds MobileNetV2 inverted
residuals, cut-mobilenet is MobileNetV2 at 224x224 cut after every block, and
cut-encoder is a transformer encoder cut after attention, feed-forward and a
scale-shift in each layer. The
configurations are TF native (the SavedModel's signature), union-find at
``minimum_segment_size=3`` (TF-TRT's default), union-find at 1, the
cost-aware partitioner at 1 with its measured cost model on the build input,
and union-find at 1000 (no engine at all: what running the converted graph
costs by itself).
All are timed in one run, interleaved, medians of many calls. The table and
plot go to docs/partitioners-benchmark.md and docs/partitioners.png, the raw
figures to benchmarks/results/partitioners.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tftrt.research import harness  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
# union-find@1000 converts nothing: the converted graph's own cost with no engine in it
CONFIGS = ("native", "union-find@1000", "union-find@3", "union-find@1", "cost@1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--precision", nargs="+", default=["FP32", "FP16"])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--models", nargs="+",
                        default=["cut-chain", "mixed-chain", "cut-mobilenet", "cut-encoder"])
    args = parser.parse_args()
    configs = [harness.parse_config(c) for c in CONFIGS]
    with tempfile.TemporaryDirectory(prefix="tftrt-bench-") as workdir:
        rows = [row for precision in args.precision
                for row in harness.compare(args.models, configs, workdir, backend=args.backend,
                                           precision_mode=precision, calls=args.calls)]
        meta = {"backend": args.backend, "precision": args.precision, "calls": args.calls,
                "command": "python benchmarks/bench_partitioners.py "
                           f"--backend {args.backend} --precision {' '.join(args.precision)} "
                           f"--calls {args.calls} --models {' '.join(args.models)}"}
        written = harness.write(rows, workdir, meta)
        text = harness.table(rows)
        print(text)
        with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
            info = json.load(f)
        (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
        shutil.copy(os.path.join(workdir, "results.json"),
                    ROOT / "benchmarks" / "results" / "partitioners.json")
        if any(p.endswith(".png") for p in written):
            shutil.copy(os.path.join(workdir, "partitioners.png"),
                        ROOT / "docs" / "partitioners.png")
    doc = ROOT / "docs" / "partitioners-benchmark.md"
    doc.write_text(
        "# Partitioners compared: cost-aware vs union-find vs TF native\n\n"
        "Made by `" + meta["command"] + "` (the research harness, "
        "`tftrt compare-partitioners`). Models: " + ", ".join(f"`{m}`" for m in args.models) +
        " (tftrt/research/models.py), "
        f"batch 1; backend {args.backend}, {' and '.join(args.precision)} (TF native is "
        f"float32 throughout); latency is the median of {args.calls} interleaved calls per "
        "configuration, the configurations of one model and precision side by side in one "
        "run.\n\n" + text +
        f"\nMachine: {info['meta']['machine']}\n\n![partitioners](partitioners.png)\n",
        encoding="utf-8")
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
