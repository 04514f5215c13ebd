"""Measure one zoo model in a process of its own and print its row as JSON.

    python -m tests.zoo NAME [--calls N]

The zoo's models are large: converting them one per process keeps memory bounded
(benchmarks/bench_zoo.py and the slow profile of tests/test_zoo.py run it so).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tests.zoo import ZOO  # noqa: E402
from tests.zoo.measure import machine_line, measure  # noqa: E402

MARK = "ZOO-ROW "


def row(name: str, calls: int) -> dict:
    model = ZOO[name]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, name)
        t0 = time.perf_counter()
        model.build(src)
        m = measure(name, src, model.inputs, bench_calls=calls, use_dynamic_shape=model.dynamic)
    return {"engines": m.engines, "ops": m.ops, "ops_in_engines": m.ops_in_engines,
            "native": {r: dict(c) for r, c in m.native.items()}, "max_error": m.max_error,
            "tf_ms": m.tf_ms, "tftrt_ms": m.tftrt_ms, "run_failures": m.run_failures,
            "build_failures": m.build_failures, "native_calls": m.native_calls,
            "engine_calls": m.engine_calls, "backend": m.backend,
            "runs_without_tensorflow": m.runs_without_tensorflow,
            "convert_s": round(m.convert_s, 1), "calls": calls, "dynamic": model.dynamic,
            "machine": machine_line(), "total_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(ZOO))
    parser.add_argument("--calls", type=int, default=0, help="timed calls (0: no timing)")
    args = parser.parse_args()
    logging.getLogger("tftrt").setLevel(logging.ERROR)
    print(MARK + json.dumps(row(args.name, args.calls)), flush=True)


if __name__ == "__main__":
    main()
