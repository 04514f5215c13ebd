"""INT8 calibration: record each engine's inputs on calibration data, then quantize.

``calibrate`` runs ``calibration_input_fn`` through the converted function
with every engine in recording mode (each engine keeps its inputs and runs its
native segment, so every engine sees FP32 data, as TF-TRT's calibration
does). Each engine's ONNX is then quantized by ONNX Runtime's static
quantizer: its calibrator computes activation ranges (entropy by default, as
TF-TRT's calibrator; min-max or percentile on request), weights are quantized
symmetrically per output channel, and QuantizeLinear/DequantizeLinear pairs
are inserted (int8, zero point 0: the form TensorRT, OpenVINO and ONNX
Runtime all run). The quantized ONNX replaces the engine's model, so saving
stores it and loading never recalibrates.

The method is ``calibration_method=`` of the converter, else the
``TFTRT_CALIBRATION_METHOD`` environment variable, else ``entropy``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

import tftrt.env as env
import tftrt.progress as progress
from tftrt.compiler.collector import release_memory
from tftrt.compiler.ort_quantize import quantize
from tftrt.errors import CalibrationError
from tftrt.runtime.engine_op import EngineOp

log = logging.getLogger("tftrt.calibration")

METHODS = env.CALIBRATION_METHODS
DEFAULT_METHOD = "entropy"
ENV_METHOD = "TFTRT_CALIBRATION_METHOD"
# Engines calibrated in this process; tests use it to prove loading never calibrates.
CALIBRATIONS = 0


def calibration_method(name: str | None) -> str:
    """The calibration method to use: ``name``, else $TFTRT_CALIBRATION_METHOD, else entropy."""
    chosen = name if name is not None else env.get(ENV_METHOD) or DEFAULT_METHOD
    if not isinstance(chosen, str) or chosen.lower() not in METHODS:
        raise ValueError(f"calibration method {chosen!r} is not one of {list(METHODS)}")
    return chosen.lower()


@dataclass(frozen=True)
class CalibrationData:
    """What calibration recorded: each engine's input batches, and the signature's shapes."""

    batches: dict[str, list[list[np.ndarray]]]
    input_shapes: list[list[int]]
    seconds: float


def _shapes(args: tuple, kwargs: Mapping[str, Any]) -> list[list[int]]:
    values = list(args) + [kwargs[k] for k in sorted(kwargs)]
    return [list(np.shape(v)) for v in values]


def record(run: Callable[..., Any], engines: Mapping[str, EngineOp],
           input_fn: Callable[[], Iterable[Any]],
           as_call: Callable[[Any], tuple[tuple, dict]],
           record_only: bool = False) -> CalibrationData:
    """Run every item of ``input_fn()`` through ``run`` with the engines recording inputs;
    ``record_only``: the engines' outputs are not needed (one engine is the whole model),
    so their native segments are not run."""
    if input_fn is None or not callable(input_fn):
        raise CalibrationError("INT8 calibration needs calibration_input_fn: a callable that "
                               "yields the calibration inputs")
    recorders: dict[str, list[list[np.ndarray]]] = {name: [] for name in engines}
    for name, op in engines.items():
        op.recorder, op.record_only = recorders[name], record_only
    start = time.perf_counter()
    shapes: list[list[int]] | None = None
    count = 0
    bar = progress.bar("INT8 calibration: running calibration data", unit="batch")
    try:
        for item in _items(input_fn):
            args, kwargs = as_call(item)
            got = _shapes(args, kwargs)
            if shapes is None:
                shapes = got
            elif got != shapes:
                raise CalibrationError(
                    f"calibration data must have a single shape (one INT8 engine is built "
                    f"from it): item 0 has shapes {shapes}, item {count} has {got}")
            try:
                run(*args, **kwargs)
            except CalibrationError:
                raise
            except Exception as exc:
                raise CalibrationError(f"calibration input {count} failed to run: "
                                       f"{type(exc).__name__}: {exc}") from exc
            count += 1
            bar.update(1)
            log.info("calibration: batch %d done, %.1f s", count, time.perf_counter() - start)
    finally:
        for op in engines.values():
            op.recorder, op.record_only = None, False
        bar.close()
    if count == 0:
        raise CalibrationError("calibration_input_fn yielded no inputs; INT8 calibration "
                               "needs at least one batch")
    return CalibrationData(recorders, shapes or [], time.perf_counter() - start)


def _items(input_fn: Callable[[], Iterable[Any]]) -> Iterator[Any]:
    """The items of ``input_fn()``; an exception it raises becomes a CalibrationError."""
    try:
        it = iter(input_fn())
    except Exception as exc:
        raise CalibrationError(f"calibration_input_fn raised {type(exc).__name__}: {exc}"
                               ) from exc
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as exc:
            raise CalibrationError(f"calibration_input_fn raised {type(exc).__name__}: "
                                   f"{exc}") from exc
        yield item


def calibrate(engines: Mapping[str, EngineOp], data: CalibrationData, method: str,
              reduce_range: bool = False) -> dict[str, bytes]:
    """The quantized ONNX of each engine that saw calibration data, keyed by engine name."""
    global CALIBRATIONS
    quantized = {}
    release_memory()  # the conversion's garbage, before calibration's own peak
    with progress.bar(f"INT8 calibration: {method} scales", len(engines), "engine") as bar:
        for name, op in sorted(engines.items()):
            batches = data.batches[name]
            bar.update(1)
            if not batches:
                log.warning("%s saw no calibration data; it stays unquantized", name)
                continue
            start = time.perf_counter()
            try:
                quantized[name] = quantize(op.onnx_model, batches, method, reduce_range)
            except Exception as exc:
                raise CalibrationError(f"{name}: computing INT8 scales failed: "
                                       f"{type(exc).__name__}: {exc}") from exc
            CALIBRATIONS += 1
            log.info("calibration: %s quantized (%s, %d batches) in %.1f s", name, method,
                     len(batches), time.perf_counter() - start)
    return quantized


def calibration_record(data: CalibrationData, name: str, method: str,
                       weight_bits: int = 8) -> dict:
    """What the manifest and the summary say about one engine's calibration."""
    batches = data.batches[name]
    return {"source": "calibration", "method": method, "batches": len(batches),
            "input_shapes": [list(x.shape) for x in batches[0]] if batches else [],
            "weight_bits": weight_bits}


__all__ = ["CALIBRATIONS", "METHODS", "CalibrationData", "calibrate", "calibration_method",
           "calibration_record", "quantize", "record", "release_memory"]
