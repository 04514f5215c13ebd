"""tftrt's benchmark suite, one entry point.

    python -m benchmarks [--quick] [--models M ...] [--batches 1 16]   # the model zoo
    python -m benchmarks overhead                                     # per-call overhead
    python -m benchmarks costs                                        # conversion cost
    python -m benchmarks report                                       # docs from results

Each part writes its raw results under benchmarks/results/ (one JSON per model,
``overhead.json``, ``costs.json``, each with the machine and every version),
then docs/benchmarks/ is regenerated from all results found: README.md (the
tables), results.csv and the plots. ``--quick`` runs a few small models at
batch 1 with few calls, in a few minutes. tf2onnx is not a dependency of
tftrt: ``pip install --no-deps tf2onnx`` for that peer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "benchmarks"


def _write(name: str, payload: dict) -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=float), encoding="utf-8")
    print(f"wrote {path}")
    return path


def _models(args: argparse.Namespace) -> None:
    from benchmarks import suite, zoo
    from benchmarks.timing import cpu_ticks, machine, steal_pct

    names = args.models or (list(zoo.QUICK) if args.quick else list(zoo.MODELS))
    batches = args.batches or ([1] if args.quick else [1, 16])
    calls = args.calls or (30 if args.quick else 200)
    budget = args.budget or (20.0 if args.quick else 90.0)
    os.makedirs(args.workdir, exist_ok=True)
    for name in names:
        meta, ticks = machine(), cpu_ticks()
        rows = suite.compare(zoo.MODELS[name], args.workdir, batches, calls, budget, args.quick)
        meta["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        meta["cpu_steal_pct"] = steal_pct(ticks)
        meta.update(command=" ".join(["python -m benchmarks"] + sys.argv[1:]),
                    quick=args.quick, note=zoo.MODELS[name].note)
        _write(f"{'quick-' if args.quick else ''}model-{name}",
               {"meta": meta, "rows": suite.as_dicts(rows)})
        for r in rows:
            if r.batch:
                print(f"{r.model:18} b{r.batch:<3} {r.candidate:32} p50 {r.p50_ms:9.3f} ms  "
                      f"p99 {r.p99_ms:9.3f}  err {r.max_rel_err:.1e}", flush=True)
            else:
                print(f"{r.model:18} {r.candidate:32} FAILED {r.error}", flush=True)


def _overhead(args: argparse.Namespace) -> None:
    from benchmarks import overhead
    from benchmarks.timing import cpu_ticks, machine, steal_pct

    meta, ticks = machine(), cpu_ticks()
    tiny = overhead.tiny()
    two = overhead.two_engines()
    meta["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["cpu_steal_pct"] = steal_pct(ticks)
    meta["command"] = "python -m benchmarks overhead"
    _write("overhead", {"meta": meta, "tiny": tiny, "two_engines": two})
    print(json.dumps({"tiny": tiny, "two_engines": two}, indent=1))


def _costs(args: argparse.Namespace) -> None:
    from benchmarks import costs
    from benchmarks.timing import cpu_ticks, machine, steal_pct

    meta, ticks = machine(), cpu_ticks()
    results = costs.run_all()
    meta["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["cpu_steal_pct"] = steal_pct(ticks)
    meta["command"] = "python -m benchmarks costs"
    _write("costs", {"meta": meta, "results": results})


def _report(args: argparse.Namespace) -> None:
    from benchmarks import docs

    docs.write(RESULTS, DOCS, quick=args.quick)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("part", nargs="?", default="models",
                   choices=["models", "overhead", "costs", "report"])
    p.add_argument("--quick", action="store_true", help="a few small models, batch 1, few calls")
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--batches", nargs="+", type=int, default=None)
    p.add_argument("--calls", type=int, default=None, help="calls per candidate at batch 1")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of timing per (model, batch) at most")
    p.add_argument("--workdir", default=os.path.join("/tmp", "tftrt-bench-models"))
    p.add_argument("--no-report", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("tftrt").setLevel(logging.ERROR)
    {"models": _models, "overhead": _overhead, "costs": _costs, "report": _report}[args.part](
        args)
    if args.part != "report" and not args.no_report:
        _report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
