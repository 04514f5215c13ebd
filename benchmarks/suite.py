"""One model's comparison: every candidate converted, then all timed side by side.

Candidates: the peers (``peers.py``) and tftrt per backend and precision. For
each batch, all candidates run in one interleaved timing (blocks of calls in
turn), so the machine's other load hits each alike; p50/p99 latency, single-
stream throughput (batch / p50), conversion time (convert + build for tftrt)
and the RSS a conversion added at its peak are recorded per candidate, with
the largest difference from TF native's outputs.
"""

from __future__ import annotations

import gc
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from benchmarks import peers, zoo
from benchmarks.timing import PeakRSS, interleaved_samples, summary

log = logging.getLogger("benchmarks")

TFTRT_CONFIGS = (("openvino", "FP32"), ("openvino", "FP16"), ("openvino", "INT8"),
                 ("onnxruntime", "FP32"), ("onnxruntime", "INT8"))
INT8_MODELS = ("resnet50", "mobilenet_v2")
CALIBRATION = (4, 8)  # batches of this size, as the calibration figure


@dataclass
class Row:
    model: str
    batch: int
    candidate: str
    kind: str  # "peer" or "tftrt"
    precision: str
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    calls: int = 0
    throughput: float = float("nan")  # items per second, one stream
    convert_s: float = float("nan")
    peak_mb: float = float("nan")  # RSS the conversion added, at its peak
    max_rel_err: float = float("nan")
    runs_as: str = ""
    engines: int = 0
    error: str = ""


def _first_output(result) -> np.ndarray:
    if isinstance(result, dict):
        value = result[sorted(result)[0]]
    elif isinstance(result, (list, tuple)):
        value = result[0]
    else:
        value = result
    return np.asarray(value)


def _rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("nan")
    scale = np.abs(want).max() or 1.0
    return float(np.abs(got - want).max() / scale)


@dataclass
class Candidate:
    name: str
    kind: str
    precision: str
    runs: dict[int, Callable[[], object]]  # batch -> one call
    convert_s: float
    peak_mb: float
    runs_as: str = ""
    engines: int = 0
    output: Callable[[object], np.ndarray] = _first_output


def _measure(make: Callable[[], object]) -> tuple[object, float, float]:
    gc.collect()
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        value = make()
        seconds = time.perf_counter() - t0
    return value, seconds, rss.added / 2**20


def _tftrt(path: str, backend: str, precision: str, feeds: dict[int, dict[str, np.ndarray]],
           calibration: list[dict[str, np.ndarray]] | None) -> Candidate:
    from tftrt import trt_convert as trt

    def make():
        conv = trt.TrtGraphConverterV2(
            input_saved_model_dir=path, backend=backend, precision_mode=precision,
            maximum_cached_engines=len(feeds))
        fn = conv.convert(calibration_input_fn=(lambda: iter(calibration))
                          if precision == "INT8" else None)
        # smallest first: each batch gets its own engine (an engine of batch N would
        # serve smaller batches too, on its slower bounded-dynamic model)
        conv.build(lambda: iter([feeds[b] for b in sorted(feeds)]))
        return conv, fn

    (conv, fn), seconds, peak = _measure(make)
    precisions = sorted({op.precision or "?" for op in conv.engines.values()})
    engines = len(conv.engines)
    del conv  # keep only what calls need
    runs = {b: (lambda f=f: fn(**f)) for b, f in feeds.items()}
    return Candidate(f"tftrt {backend} {precision}", "tftrt", precision, runs, seconds,
                     peak, "/".join(precisions), engines,
                     output=lambda r: np.asarray(r[sorted(r)[0]]))


def candidates(model: zoo.Model, path: str, serve, feeds: dict[int, dict[str, np.ndarray]],
               quick: bool) -> list[Candidate]:
    """Every candidate for ``model`` that builds; failures are logged and left out."""
    out: list[Candidate] = []
    names = sorted(next(iter(feeds.values())))
    int8 = model.name in INT8_MODELS and not quick
    calibration = None
    if int8:
        rng = np.random.default_rng(123)
        n, b = CALIBRATION
        calibration = [{k: rng.random((b, *v.shape[1:]), dtype=np.float32)
                        for k, v in feeds[min(feeds)].items()} for _ in range(n)]

    def attempt(label: str, fn: Callable[[], None]) -> None:
        log.info("%s: building %s", model.name, label)
        try:
            fn()
        except Exception as exc:  # a peer that cannot run this model is reported, not fatal
            log.warning("%s: %s failed: %s", model.name, label, exc)
            log.debug("%s", traceback.format_exc())
            failures.append((label, f"{type(exc).__name__}: {str(exc)[:200]}"))

    failures: list[tuple[str, str]] = []
    runs = {b: peers.tf_native(serve, f)[0] for b, f in feeds.items()}
    out.append(Candidate("TF native", "peer", "FP32", runs, 0.0, 0.0))

    def xla():
        runs, secs = {}, 0.0
        for b, f in feeds.items():
            runs[b], s = peers.tf_xla(serve, f)
            secs += s
        out.append(Candidate("TF XLA", "peer", "FP32", runs, secs, float("nan")))
    attempt("TF XLA", xla)

    onnx_model: list[bytes] = []

    def tf2onnx():
        (model_bytes, secs), _, peak = _measure(lambda: peers.tf2onnx_model(serve, names))
        onnx_model.append(model_bytes)
        runs = {b: peers.ort_session(model_bytes, f) for b, f in feeds.items()}
        out.append(Candidate("tf2onnx+ORT", "peer", "FP32", runs, secs, peak))
    attempt("tf2onnx+ORT", tf2onnx)

    def ov_direct():
        hints = ("f32", "bf16")
        per_batch, secs = {}, 0.0
        peak = 0.0
        for b, f in feeds.items():
            (ov_runs, s), _, p = _measure(lambda f=f: peers.openvino_direct(path, f, hints))
            per_batch[b], secs, peak = ov_runs, secs + s, max(peak, p)
        for hint, prec in (("f32", "FP32"), ("bf16", "FP16")):
            out.append(Candidate(f"OpenVINO direct {hint}", "peer", prec,
                                 {b: per_batch[b][hint] for b in feeds}, secs / len(feeds),
                                 peak, hint.upper()))
    attempt("OpenVINO direct", ov_direct)

    if int8 and onnx_model:
        def int8_peers():
            onnx_names = _onnx_input_names(onnx_model[0])
            calib = [dict(zip(onnx_names, [c[n] for n in names], strict=True))
                     for c in calibration]
            (q, secs), _, peak = _measure(lambda: peers.ort_quantized(onnx_model[0], calib))
            out.append(Candidate("ORT-quantized in OpenVINO", "peer", "INT8",
                                 {b: peers.openvino_onnx(q, f, "bf16") for b, f in
                                  feeds.items()}, secs, peak, "INT8"))
            out.append(Candidate("ORT-quantized in ORT", "peer", "INT8",
                                 {b: peers.ort_session(q, f) for b, f in feeds.items()},
                                 secs, peak, "INT8"))
        attempt("INT8 peers", int8_peers)

    configs = [c for c in TFTRT_CONFIGS if int8 or c[1] != "INT8"]
    if quick or model.name == "bert_base":
        configs = [c for c in configs if c != ("onnxruntime", "FP32") or quick]
    for backend, precision in configs:
        attempt(f"tftrt {backend} {precision}",
                lambda b=backend, p=precision: out.append(
                    _tftrt(path, b, p, feeds, calibration)))
    candidates.failures = failures  # type: ignore[attr-defined]
    return out


def _onnx_input_names(model: bytes) -> list[str]:
    import onnx

    m = onnx.load_from_string(model)
    inits = {i.name for i in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in inits]


def compare(model: zoo.Model, workdir: str, batches: Sequence[int], calls: int,
            budget_s: float, quick: bool) -> list[Row]:
    """Rows for every (batch, candidate) of ``model``."""
    import tensorflow as tf

    path = zoo.export(model, workdir)
    loaded = tf.saved_model.load(path)  # kept alive: the signature reads its variables
    serve = loaded.signatures["serving_default"]
    feeds = {b: zoo.named_inputs(model, b, serve) for b in batches}
    cands = candidates(model, path, serve, feeds, quick)
    rows = []
    for b in batches:
        fns = [c.runs[b] for c in cands]
        want = _first_output(fns[0]())
        samples = interleaved_samples(fns, max(20, calls // b), budget_s=budget_s)
        for c, t in zip(cands, samples, strict=True):
            s = summary(t)
            try:
                err = _rel_err(c.output(c.runs[b]()), want)
            except Exception:
                err = float("nan")
            rows.append(Row(model.name, b, c.name, c.kind, c.precision, s["p50_ms"],
                            s["p99_ms"], s["calls"], b * 1e3 / s["p50_ms"], c.convert_s,
                            c.peak_mb, err, c.runs_as, c.engines))
    for label, error in getattr(candidates, "failures", []):
        rows.append(Row(model.name, 0, label, "tftrt" if label.startswith("tftrt") else "peer",
                        "", error=error))
    del cands, loaded
    gc.collect()
    return rows


def as_dicts(rows: Sequence[Row]) -> list[dict]:
    return [asdict(r) for r in rows]


def workdir_default() -> str:
    return os.path.join(os.environ.get("TMPDIR", "/tmp"), "tftrt-bench-models")
