"""Timing side by side, and the machine the figures come from.

Every candidate of one comparison is timed in alternating blocks of calls, in a
shuffled order, each block after an untimed call, so that whatever else the
machine does (it is shared) hits all of them alike and none pays for the one
timed before it.
"""

from __future__ import annotations

import os
import platform
import random
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata

import numpy as np

from tftrt.engines import cpu

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
         "amx_int8", "amx_bf16")


def interleaved_samples(fns: Sequence[Callable[[], object]], calls: int, block: int = 3,
                        warmup: int = 3, budget_s: float | None = None,
                        settle: int = 1) -> list[list[float]]:
    """Per-call milliseconds of each of ``fns``, timed in alternating blocks of ``block``
    calls until each has ``calls`` samples (or ``budget_s`` seconds have passed, with at
    least 3 blocks each).

    Each block starts with ``settle`` untimed calls: the first call after another
    candidate runs cold (that candidate's threads still spin, its data fills the caches),
    and which candidate came before would otherwise decide part of the figure. The
    order of the candidates is shuffled every round (seeded) for the same reason.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns)))
    shuffle = random.Random(0).shuffle
    start = time.perf_counter()
    rounds = 0
    while len(times[0]) < calls:
        shuffle(order)
        for k in order:
            fn = fns[k]
            for _ in range(settle):
                fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
        if budget_s is not None and rounds >= 3 and time.perf_counter() - start > budget_s:
            break
    return times


def summary(samples: Sequence[float]) -> dict[str, float]:
    """p50 and p99 in ms, and how many calls they are of."""
    a = np.asarray(samples)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "calls": int(a.size)}


def rss_bytes() -> int:
    """This process's resident set size now."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """``with PeakRSS() as p: ...`` -> ``p.peak``: the highest RSS seen (sampled every
    10 ms), and ``p.base``: the RSS when it started."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def added(self) -> int:
        return self.peak - self.base


def cpu_flags() -> list[str]:
    """The instruction-set features that figures depend on, as /proc/cpuinfo lists them."""
    have = cpu.cpu_flags()
    return [f for f in FLAGS if f in have]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_ticks() -> tuple[int, int]:
    """(all CPU time, time stolen by the hypervisor) so far, in ticks; (0, 0) unknown."""
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return sum(fields[:8]), (fields[7] if len(fields) > 7 else 0)


def steal_pct(since: tuple[int, int]) -> float | None:
    """Percent of all CPU time since ``since`` (``cpu_ticks()``) that a virtual machine's
    host took for others: time a timing on a VM did not get; None where unknown."""
    total, stolen = cpu_ticks()
    if total <= since[0]:
        return None
    return round(100.0 * (stolen - since[1]) / (total - since[0]), 2)


def machine() -> dict:
    """The machine and every version a figure depends on."""
    versions = {d: _version(d) for d in ("tftrt", "tensorflow-cpu", "tensorflow", "keras",
                                          "keras-hub", "openvino", "onnxruntime", "onnx",
                                          "tf2onnx", "numpy")}
    return {"cpu": cpu.cpu_model(), "cores": os.cpu_count(), "flags": cpu_flags(),
            "python": platform.python_version(), "os": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "versions": {k: v for k, v in versions.items() if v}}
