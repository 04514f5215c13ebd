"""Which batch sizes a converted model's built engines run, and how a server splits or pads
a request batch so that it always lands on a built engine.

Read from the manifest alone (no TensorFlow, no engine runtime). Engine instances are
read tolerantly: an instance holds its build ``shapes`` (one list of dims per engine
input) and, in newer manifests, ``profiles`` (``min``/``opt``/``max``, each one list of
dims per input). An instance without profiles runs exactly its build batch; a profile
runs any batch from its ``min`` to its ``max``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Range = tuple[int, int]  # inclusive batch range [lo, hi]
# What one more engine call costs, in rows of compute, when choosing between padding a
# batch up and splitting it (per-call overhead is small next to a row of a CNN).
CALL_COST = 1.0


@dataclass(frozen=True)
class BatchPlan:
    """The batch sizes every engine of a model can run, as sorted disjoint ranges.

    ``ranges`` None: no engine constrains the batch (none has a batch dimension, or
    none states its limits).
    """

    ranges: tuple[Range, ...] | None
    preferred: tuple[int, ...]  # the sizes engines were built or optimized for

    @property
    def max_batch(self) -> int | None:
        return self.ranges[-1][1] if self.ranges else None

    def runs(self, n: int) -> bool:
        return self.ranges is None or any(lo <= n <= hi for lo, hi in self.ranges)

    def chunks(self, n: int) -> list[tuple[int, int]]:
        """Split ``n`` rows into (rows, padded size) chunks, each padded size runnable.

        Full chunks of the largest runnable size first; the rest in the way that computes
        the fewest rows (padding included), counting each extra call as ``CALL_COST`` rows.
        """
        if n <= 0:
            return []
        if self.runs(n) or not self.ranges:
            return [(n, n)]
        top = self.ranges[-1][1]
        out = []
        while n > top:
            out.append((top, top))
            n -= top
        return out + self._fewest_rows(n)

    def _fewest_rows(self, n: int) -> list[tuple[int, int]]:
        # best[m]: (cost, chunks) for m rows, m <= the largest runnable batch
        best: list[tuple[float, list[tuple[int, int]]]] = [(0.0, [])]
        for m in range(1, n + 1):
            if self.runs(m):
                best.append((m, [(m, m)]))
                continue
            up = next(lo for lo, _ in self.ranges if lo > m)
            cand = [(float(up), [(m, up)])]
            for s in range(1, m):
                if self.runs(s):
                    c, rest = best[m - s]
                    cand.append((s + c + CALL_COST, [(s, s), *rest]))
            best.append(min(cand, key=lambda t: t[0]))
        return best[n][1]


def _merge(ranges: Sequence[Range]) -> tuple[Range, ...]:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def _intersect(a: tuple[Range, ...], b: tuple[Range, ...]) -> tuple[Range, ...]:
    out = [(max(x0, y0), min(x1, y1)) for x0, x1 in a for y0, y1 in b
           if max(x0, y0) <= min(x1, y1)]
    return _merge(out)


def _batch_of(dims_per_input: object, batched: Sequence[bool]) -> int | None:
    """The one leading dim of the batched inputs, or None if absent or inconsistent."""
    if not isinstance(dims_per_input, list) or len(dims_per_input) != len(batched):
        return None
    lead = {d[0] for d, b in zip(dims_per_input, batched, strict=True)
            if b and isinstance(d, list) and d and isinstance(d[0], int) and d[0] > 0}
    return lead.pop() if len(lead) == 1 else None


def engine_ranges(meta: Mapping) -> tuple[tuple[Range, ...], tuple[int, ...]] | None:
    """(runnable batch ranges, preferred sizes) of one manifest engine; None if it does
    not constrain the batch (no input with an unknown leading dim, or no usable instance).
    """
    batched = [isinstance(s.get("shape"), list) and bool(s["shape"]) and s["shape"][0] in
               (None, -1) for s in meta.get("inputs", [])]
    if not any(batched):
        return None
    ranges, preferred = [], set()
    for inst in meta.get("instances", []):
        profiles = inst.get("profiles") if isinstance(inst, Mapping) else None
        if isinstance(profiles, list) and profiles:
            for p in profiles:
                if not isinstance(p, Mapping):
                    continue
                lo, hi = _batch_of(p.get("min"), batched), _batch_of(p.get("max"), batched)
                opt = _batch_of(p.get("opt"), batched)
                if lo is not None and hi is not None and lo <= hi:
                    ranges.append((lo, hi))
                    preferred.add(opt if opt is not None and lo <= opt <= hi else hi)
        elif isinstance(inst, Mapping):
            b = _batch_of(inst.get("shapes"), batched)
            if b is not None:
                ranges.append((b, b))
                preferred.add(b)
    if not ranges:
        return None
    return _merge(ranges), tuple(sorted(preferred))


def batch_plan(manifest: Mapping) -> BatchPlan:
    """The batch sizes every engine of the model runs (the intersection over engines)."""
    ranges: tuple[Range, ...] | None = None
    preferred: set[int] = set()
    for meta in manifest.get("engines", {}).values():
        got = engine_ranges(meta)
        if got is None:
            continue
        r, p = got
        ranges = r if ranges is None else _intersect(ranges, r)
        preferred.update(p)
    if ranges is not None and not ranges:
        raise ValueError("the engines were built for batch sizes that no single batch fits "
                         "all of")
    keep = tuple(sorted(b for b in preferred if ranges is None or
                        any(lo <= b <= hi for lo, hi in ranges)))
    return BatchPlan(ranges, keep)
