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

import contextlib
import functools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import tftrt.env as env
import tftrt.progress as progress
from tftrt.compiler import onnxfold, onnxio
from tftrt.compiler.collector import release_memory
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


class _Reader:
    """ONNX Runtime's CalibrationDataReader over one engine's recorded batches."""

    def __init__(self, names: list[str], batches: list[list[np.ndarray]]) -> None:
        self._names = names
        self._batches = batches
        self._it = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else dict(zip(self._names, batch, strict=True))

    def rewind(self) -> None:
        self._it = iter(self._batches)


class _One:
    """A CalibrationDataReader of one batch."""

    def __init__(self, item: dict[str, np.ndarray]) -> None:
        self._item: dict[str, np.ndarray] | None = item

    def get_next(self) -> dict[str, np.ndarray] | None:
        item, self._item = self._item, None
        return item


@contextlib.contextmanager
def _lean_calibrators() -> Iterator[None]:
    """ONNX Runtime's calibrators, run in a sample's memory rather than the whole data's.

    Its histogram calibrators (entropy, percentile) run every batch, hold every
    activation of every batch, then histogram them all (ResNet50, 4 batches of 8:
    5.6 GB); its min-max calibrator holds every batch's run the same way. Fed one sample
    at a time, they merge each sample's histograms (or minima and maxima) into the
    running ones and free its activations: the same ranges' method in a sample's memory.
    Each calibrator's session (the model with every calibrated tensor as an output)
    runs without ONNX Runtime's memory arena and memory pattern, which would keep the
    largest run's intermediates allocated on top of the outputs handed back; the
    kernels, and so the ranges, are the same. The calibrators save the model they run
    (the model with those outputs added) with its weights in a side file, as ONNX
    Runtime's ``use_external_data_format`` does, rather than serializing it whole in
    memory; the session reads the same weights from there, and the calibrator keeps
    the model without them.
    """
    import onnxruntime
    from onnxruntime.quantization import calibrate

    def streaming(original: Callable) -> Callable:
        def collect_data(self, data_reader) -> None:
            while True:
                item = data_reader.get_next()
                if not item:
                    return
                for part in _samples(item, self.model):
                    original(self, _One(part))
        return collect_data

    def create_inference_session(self) -> None:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        self.infer_session = onnxruntime.InferenceSession(
            self.augmented_model_path, sess_options=options, providers=self.execution_providers)

    def external_weights(original: Callable) -> Callable:
        def augment_graph(self) -> None:
            self.use_external_data_format = True
            original(self)  # saving moved the weights out of self.model, but not its memory
            light = onnx.ModelProto()
            light.CopyFrom(self.model)
            self.model = light
        return augment_graph

    calibraters = (calibrate.HistogramCalibrater, calibrate.MinMaxCalibrater)
    patched = [(cls, "collect_data", streaming(cls.collect_data)) for cls in calibraters]
    patched += [(cls, "augment_graph", external_weights(cls.augment_graph))
                for cls in calibraters]
    patched.append((calibrate.CalibraterBase, "create_inference_session",
                    create_inference_session))
    originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in patched]
    for cls, name, fn in patched:
        setattr(cls, name, fn)
    try:
        yield
    finally:
        for cls, name, fn in originals:
            setattr(cls, name, fn)


def _samples(item: dict[str, np.ndarray], model: onnx.ModelProto | None
             ) -> list[dict[str, np.ndarray]]:
    """``item`` one sample at a time where every input is batched along a dynamic first
    dimension (an inference model's samples are independent: the histograms are the
    same data, with one sample's activations in memory instead of a batch's)."""
    sizes = {v.shape[0] if v.ndim else None for v in item.values()}
    if len(sizes) != 1 or None in sizes or next(iter(sizes)) < 2 or model is None:
        return [item]
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if vi.name in item and (not dims or dims[0].HasField("dim_value")):
            return [item]  # a fixed batch: the model takes only whole batches
    (n,) = sizes
    return [{k: v[i:i + 1] for k, v in item.items()} for i in range(n)]


_QUANTIZE_LOCK = threading.Lock()  # the streaming patch is process-wide


def quantize(model_bytes: bytes, batches: list[list[np.ndarray]], method: str,
             reduce_range: bool = False) -> bytes:
    """The model with Q/DQ pairs: activation ranges calibrated on ``batches`` by ``method``,
    weights symmetric per output channel, all int8 with zero point 0; ``reduce_range``
    keeps weights to 7 bits (CPUs without VNNI, see ``precision.int8_weight_limit``)."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    methods = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
               "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory(prefix="tftrt-calib-") as tmp:
        src, pre, out = (os.path.join(tmp, f) for f in ("in.onnx", "pre.onnx", "q.onnx"))
        names, opset = _fold_and_save(model_bytes, src)
        release_memory(collect=False)
        # Folds constants and fuses scale/shift into convolutions first, so that the
        # quantized convolutions are the whole layer. (quantize_static infers the
        # shapes again itself: inferring them here too only costs time and memory.)
        upgraded = opset is not None and opset <= _OPSET_UPGRADED_BY_PRE_PROCESS
        if upgraded:
            quant_pre_process(src, pre, skip_symbolic_shape=True, skip_onnx_shape=True)
        else:
            _pre_process(src, pre)
        release_memory(collect=False)
        reader: _Reader | None = _Reader(names, batches)
        cache = None
        with _QUANTIZE_LOCK, _lean_calibrators():
            if not upgraded and _ranges_cache_supported():
                cache = os.path.join(tmp, "ranges.json")
                _calibrate_ranges(pre, reader, methods[method], cache)
                reader = None
                release_memory(collect=False)
            quantize_static(pre, out, reader, quant_format=QuantFormat.QDQ,
                            per_channel=True, reduce_range=reduce_range,
                            activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, calibrate_method=methods[method],
                            extra_options={"ActivationSymmetric": True,
                                           "WeightSymmetric": True},
                            calibration_cache_path=cache)
        release_memory(collect=False)
        with open(out, "rb") as f:
            return f.read()


# quant_pre_process converts models of this opset or older to opset 11 first
_OPSET_UPGRADED_BY_PRE_PROCESS = 10


@functools.cache
def _ranges_cache_supported() -> bool:
    """Whether this ONNX Runtime's quantize_static takes ranges from a calibration cache
    (newer than our oldest supported version)."""
    import inspect

    from onnxruntime.quantization import calibrate, quantize_static

    return (hasattr(calibrate, "save_tensors_data")
            and "calibration_cache_path" in inspect.signature(quantize_static).parameters)


def _calibrate_ranges(model: str, reader: _Reader, method: Any, cache: str) -> None:
    """The activation ranges ``quantize_static(model, ..., reader, calibrate_method=method)``
    computes (the same calibrator, for the same tensors), saved as its calibration cache.

    ``quantize_static`` holds its parsed model while calibrating; computed first,
    the ranges are calibrated without it, and it then quantizes without the
    calibrator (ResNet50: the peak 510 -> 340 MB over what the process held).
    """
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    op_types = list(set(QLinearOpsRegistry) | set(QDQRegistry))  # quantize_static's default
    with tempfile.TemporaryDirectory(prefix="tftrt-ranges-") as tmp:
        calibrator = create_calibrator(
            Path(model), op_types, augmented_model_path=os.path.join(tmp, "augmented.onnx"),
            calibrate_method=method)
        calibrator.collect_data(reader)
        ranges = calibrator.compute_data()
        del calibrator  # its session and the model it ran, before quantize_static loads it
    save_tensors_data(ranges, cache)


def _pre_process(src: str, pre: str) -> None:
    """What ``quant_pre_process(src, pre, skip_symbolic_shape=True, skip_onnx_shape=True)``
    does to a model of opset 11 or later, the same file, in less memory.

    It holds a parsed copy of the model while ONNX Runtime optimizes it, and
    serializes the result in one buffer; here ONNX Runtime reads and optimizes the
    file alone, and the result is written one initializer at a time (ResNet50: the
    step's peak 460 -> 310 MB over what the process held).
    """
    import onnxruntime
    from onnxruntime.quantization.quant_utils import add_pre_process_metadata

    optimized = pre + ".optimized"
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = optimized
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    onnxruntime.InferenceSession(src, options, providers=["CPUExecutionProvider"])
    model = onnx.load(optimized)
    add_pre_process_metadata(model)
    onnxio.save(model, pre)


def _fold_and_save(model_bytes: bytes, path: str) -> tuple[list[str], int | None]:
    """Save the model with its convolutions' scales folded (each convolution the whole
    layer: no Q/DQ pair on a batch norm's scale after it); returns its input names and
    its default-domain opset (None if it imports none).
    The parsed model is dropped on return, before the calibration runs."""
    model = onnx.load_from_string(model_bytes)
    onnxfold.fold_conv_scales(model)
    onnxio.save(model, path)
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return [i.name for i in model.graph.input], opsets[0] if opsets else None


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
