"""INT8 quantization of one engine's ONNX by ONNX Runtime's static quantizer, on its
recorded batches, in as little memory as the quantizer allows (see ``quantize``)."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tftrt.compiler import onnxfold, onnxio
from tftrt.compiler.collector import release_memory


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
