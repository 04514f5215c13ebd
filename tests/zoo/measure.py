"""Convert one zoo model and measure it: engines, ops converted, what stays native and why,
max error against TensorFlow, engine statistics and (optionally) speed at batch 1."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from tftrt import trt_convert as trt
from tftrt.cli import interleaved_median_ms
from tftrt.compiler import codegen
from tftrt.research.harness import machine
from tftrt.testing import _live_nodes

# nodes that are bookkeeping, not compute: never counted as ops
TRIVIAL_OPS = frozenset({"Placeholder", "Const", "Identity", "NoOp", "IdentityN", "Snapshot",
                         "StopGradient"})
SUPPORTED_LEFT_OUT = "supported, but its segment was not kept (too small, or dropped)"


@dataclass
class Measurement:
    name: str
    engines: int
    ops: int  # compute ops of the frozen graph
    ops_in_engines: int
    native: dict[str, Counter] = field(default_factory=dict)  # reason -> op type counts
    max_error: float = 0.0
    run_failures: int = 0
    build_failures: int = 0
    native_calls: int = 0
    engine_calls: int = 0
    runs_without_tensorflow: bool = False
    tf_ms: float | None = None
    tftrt_ms: float | None = None
    convert_s: float = 0.0
    backend: str = ""

    @property
    def native_ops(self) -> set[str]:
        return {op for ops in self.native.values() for op in ops}

    @property
    def converted_pct(self) -> float:
        return 100.0 * self.ops_in_engines / max(1, self.ops)

    @property
    def speedup(self) -> float | None:
        if self.tf_ms is None or self.tftrt_ms is None:
            return None
        return self.tf_ms / self.tftrt_ms

    def native_summary(self) -> str:
        parts = []
        for reason, ops in sorted(self.native.items()):
            listed = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(ops.items()))
            parts.append(f"{listed}: {reason}")
        return "; ".join(parts)


def _ops(nodes, library: dict, seen: tuple = ()) -> int:
    """Compute ops among ``nodes``, counting the bodies of the functions control flow calls."""
    count = 0
    for n in nodes:
        if n.op in TRIVIAL_OPS:
            continue
        count += 1
        for key in ("body", "cond", "then_branch", "else_branch"):
            name = n.attr[key].func.name if key in n.attr else ""
            if name in library and name not in seen:
                count += _ops(library[name].node_def, library, (*seen, name))
    return count


def op_census(conv: trt.TrtGraphConverterV2) -> tuple[int, int, dict[str, Counter]]:
    """(compute ops, ops inside engines, reason -> op type counts of ops left native).

    Ops inside the functions of While/If count too (an ONNX Loop holds its body's ops).
    """
    conversion = conv._conversion  # noqa: SLF001 - the zoo reads the compiler's result
    gd = conversion.graph_def
    live = _live_nodes(conversion)
    library = {f.signature.name: f for f in gd.library.function}
    inside = 0
    native: dict[str, Counter] = {}
    for node in gd.node:
        if node.name not in live:
            continue
        if node.op == codegen.ENGINE_OP:
            fdef = library[node.attr["segment_func"].func.name]
            inside += _ops(fdef.node_def, library)
            continue
        if node.op in TRIVIAL_OPS:
            continue
        ir = conversion.ir  # None after INT8 calibration (released)
        data = ir.nodes[node.name] if ir is not None and node.name in ir else {}
        reason = data.get("reason") or SUPPORTED_LEFT_OUT
        native.setdefault(reason, Counter())[node.op] += 1
    left = sum(sum(c.values()) for c in native.values())
    return inside + left, inside, native


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape} != TensorFlow's {want.shape}")
    if want.dtype.kind not in "fc":
        return 0.0 if np.array_equal(got, want) else float("inf")
    scale = max(float(np.abs(want).max()), 1e-30)
    return float(np.abs(got.astype(np.float64) - want).max() / scale)


def measure(name: str, src: str, make_inputs: Callable[[object, np.random.Generator, int], dict],
            *, batches: tuple[int, ...] = (1, 2), bench_calls: int = 0,
            backend: str = "auto", use_dynamic_shape: bool = True) -> Measurement:
    """Convert the SavedModel at ``src`` and compare it with TensorFlow on random inputs
    (``make_inputs(serving signature, rng, batch)``) at ``batches``; with ``bench_calls``,
    time batch 1 too.

    Dynamic shape mode builds the engines for those inputs with the ``Optimal`` profile
    strategy (a static profile per shape, as a user who knows them would); implicit
    batch mode builds one engine per batch as calls arrive.
    """
    loaded = tf.saved_model.load(src)
    serve = loaded.signatures["serving_default"]
    rng = np.random.default_rng(0)
    feeds = [make_inputs(serve, rng, batch) for batch in batches]
    t0 = time.perf_counter()
    conv = trt.TrtGraphConverterV2(
        input_saved_model_dir=src, use_dynamic_shape=use_dynamic_shape, backend=backend,
        maximum_cached_engines=len(batches),
        dynamic_shape_profile_strategy="Optimal" if use_dynamic_shape else None)
    fn = conv.convert()
    conv.build(lambda: iter(feeds))  # in dynamic shape mode its calls run natively
    convert_s = time.perf_counter() - t0
    before = {name: (op.stats.native_calls, op.stats.engine_calls)
              for name, op in conv.engines.items()}
    worst = 0.0
    for inputs in feeds:
        want = serve(**{k: tf.constant(v) for k, v in inputs.items()})
        got = fn(**inputs)
        for key in want:
            worst = max(worst, _rel_err(np.asarray(got[key]), want[key].numpy()))
    ops, inside, native = op_census(conv)
    m = Measurement(name, len(conv.engines), ops, inside, native, worst,
                    runs_without_tensorflow=fn.runs_without_tensorflow, convert_s=convert_s,
                    backend=conv.backend)
    if bench_calls:
        inputs = feeds[list(batches).index(1)] if 1 in batches else make_inputs(serve, rng, 1)
        # both sides get the same numpy arrays (each converts them as it needs)
        m.tf_ms, m.tftrt_ms = interleaved_median_ms(
            [lambda: serve(**inputs), lambda: fn(**inputs)], bench_calls)
    for name, op in conv.engines.items():
        st = op.stats
        m.run_failures += st.run_failures
        m.build_failures += st.build_failures
        m.native_calls += st.native_calls - before[name][0]
        m.engine_calls += st.engine_calls - before[name][1]
    del loaded
    return m


def machine_line() -> str:
    """Load average and the CPU flags that decide engine speed, for every printed figure."""
    m = machine()
    flags = " ".join(m["flags"]) or "none of avx2/avx512f/avx512_vnni/avx512_bf16/amx_tile"
    load = ", ".join(f"{x:.2f}" for x in m["loadavg"])
    return f"{m['cpu_count']} cores; CPU flags: {flags}; load average {load}"


def measure_isolated(name: str, calls: int = 0, timeout: float = 1800) -> dict:
    """``python -m tests.zoo name``: one zoo model measured in a process of its own."""
    root = pathlib.Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([sys.executable, "-m", "tests.zoo", name, "--calls", str(calls)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("ZOO-ROW "):
            return json.loads(line[len("ZOO-ROW "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f"measuring {name} failed (exit {proc.returncode}): {' | '.join(tail)}")
