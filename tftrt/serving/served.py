"""A converted model as a server runs it: loaded once with its saved engines, never
building an engine at request time, taking one batch of rows for all the requests a
server gathered, padded or split so that every call lands on a built engine.

Triton's Python model (``tftrt/serving/triton_model.py``) and the serving benchmark's
in-process baseline both call it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tftrt.errors import InputSpecError, SavedModelError
from tftrt.manifest import read_manifest
from tftrt.serving.batching import BatchPlan, batch_plan
from tftrt.specs import SignatureTensor

log = logging.getLogger("tftrt")

LOADERS = ("auto", "tftrt", "runtime")


def _load(model_dir: str, manifest: Mapping, loader: str) -> tuple[Any, dict, str]:
    """(callable signature, {engine name: EngineOp}, loader used).

    ``runtime`` is the TensorFlow-free ``tftrt.runtime.load`` (models that are one engine
    end to end); ``tftrt`` is ``tftrt.load``; ``auto`` takes the first where it applies.
    """
    if loader not in LOADERS:
        raise ValueError(f"loader must be one of {LOADERS}, got {loader!r}")
    if loader in ("auto", "runtime") and manifest.get("whole_model"):
        try:
            from tftrt.runtime import load as runtime_load
        except ImportError:
            runtime_load = None
        if runtime_load is not None:
            model = runtime_load(model_dir)
            return model, {model.engine.name: model.engine}, "runtime"
    if loader == "runtime":
        raise SavedModelError(f"{model_dir!r} cannot run without TensorFlow (it is not one "
                              "engine end to end, or this tftrt has no TensorFlow-free "
                              "runtime): serve it with the tftrt loader")
    import tftrt

    loaded = tftrt.load(model_dir)
    return loaded.signatures[manifest["signature_key"]], dict(loaded.engines), "tftrt"


def batched(inputs: Sequence[SignatureTensor], outputs: Sequence[SignatureTensor]) -> bool:
    """True when every signature tensor has an unknown leading (batch) dimension."""
    return all(t.shape is not None and len(t.shape) >= 1 and t.shape[0] in (None, -1)
               for t in (*inputs, *outputs))


class ServedModel:
    """``model.run({input name: array})`` -> {output name: array}, rows in request order."""

    def __init__(self, model_dir: str, loader: str = "auto") -> None:
        self.model_dir = os.path.abspath(model_dir)
        self.manifest = read_manifest(self.model_dir)
        self.inputs = tuple(SignatureTensor.from_json(d) for d in self.manifest["inputs"])
        self.outputs = tuple(SignatureTensor.from_json(d) for d in self.manifest["outputs"])
        self.batched = batched(self.inputs, self.outputs)
        self.plan: BatchPlan = batch_plan(self.manifest) if self.batched \
            else BatchPlan(None, ())
        self._fn, self.engines, self.loader = _load(self.model_dir, self.manifest, loader)
        for op in self.engines.values():
            op.allow_build_at_runtime = False  # a server never builds at request time
        missing = [name for name, op in self.engines.items() if not op.engines()]
        if missing:
            log.warning("tftrt serving: %s have no saved engine: those parts run natively",
                        ", ".join(sorted(missing)))

    @property
    def builds(self) -> int:
        """Engines built since loading (a server keeps this at 0)."""
        return sum(op.stats.builds for op in self.engines.values())

    @property
    def native_calls(self) -> int:
        return sum(op.stats.native_calls for op in self.engines.values())

    def check(self, feeds: Mapping[str, np.ndarray]) -> int:
        """The batch's row count; an ``InputSpecError`` naming the input that does not fit."""
        names = {t.name for t in self.inputs}
        extra = sorted(set(feeds) - names)
        if extra:
            raise InputSpecError(f"unknown input {extra[0]!r}; the model takes "
                                 f"{sorted(names)}")
        rows = set()
        for t in self.inputs:
            if t.name not in feeds:
                raise InputSpecError(f"input {t.name!r} is missing")
            x = feeds[t.name]
            if x.dtype != t.dtype:
                raise InputSpecError(f"input {t.name!r} has dtype {x.dtype}, the model "
                                     f"takes {np.dtype(t.dtype).name}")
            if t.shape is not None and (len(x.shape) != len(t.shape) or any(
                    d not in (None, -1) and d != s for d, s in zip(t.shape, x.shape,
                                                                    strict=True))):
                want = [-1 if d is None else d for d in t.shape]
                raise InputSpecError(f"input {t.name!r} has shape {list(x.shape)}, the "
                                     f"model takes {want}")
            if self.batched:
                rows.add(x.shape[0])
        if len(rows) > 1:
            raise InputSpecError(f"the inputs have different batch sizes {sorted(rows)}")
        return rows.pop() if rows else 0

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; split into, or padded up to, batch sizes the engines were built for."""
        n = self.check(feeds)
        if not self.batched or n == 0:
            return self._call(feeds)
        parts: list[dict[str, np.ndarray]] = []
        start = 0
        for rows, size in self.plan.chunks(n):
            chunk = {k: v[start:start + rows] for k, v in feeds.items()}
            if size > rows:  # pad with copies of the last row; the extra rows are dropped
                chunk = {k: np.concatenate([v, np.repeat(v[-1:], size - rows, axis=0)])
                         for k, v in chunk.items()}
            out = self._call(chunk)
            parts.append({k: v[:rows] for k, v in out.items()})
            start += rows
        if len(parts) == 1:
            return parts[0]
        return {t.name: np.concatenate([p[t.name] for p in parts]) for t in self.outputs}

    def _call(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._fn(**feeds)
        return {t.name: np.asarray(out[t.name]) for t in self.outputs}
