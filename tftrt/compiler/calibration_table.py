"""INT8 scales from a TensorRT calibration table (what TF-TRT keeps in ``calibration_data``).

TensorRT writes its calibration cache as text: a header line (``TRT-<version>-
<calibrator>``), then one ``<tensor name>: <scale>`` line per tensor, the scale being
the hex of its IEEE float32 bits (the tensor's range is scale * 127). TF-TRT names
each TensorRT tensor after the TF node producing it (``node`` for output 0,
``node:k`` otherwise), and the engine's inputs and outputs ``TensorRTInputPH_<k>``
and ``TensorRTOutputPH_<k>``. Scales whose names map onto the segment's lowered
tensors become the ranges of ONNX Runtime's static quantizer (Q/DQ pairs, the same
format as ``ort_quantize.quantize``); tensors the table does not name stay in float.
"""

from __future__ import annotations

import logging
import math
import os
import struct
import tempfile
from collections.abc import Mapping

import numpy as np
import onnx


def parse(data: bytes | str) -> dict[str, float]:
    """Tensor name -> scale of a TensorRT calibration table; {} if ``data`` is not one."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        return {}
    table = {}
    for line in lines[1:]:
        name, sep, value = line.rpartition(":")
        if not sep or not name.strip():
            return {}
        try:
            scale = struct.unpack(">f", bytes.fromhex(value.strip().rjust(8, "0")))[0]
        except (ValueError, struct.error):
            return {}
        if math.isfinite(scale) and scale > 0:
            table[name.strip()] = scale
    return table


def format_table(scales: Mapping[str, float], calibrator: str = "EntropyCalibration2",
                 version: int = 8601) -> str:
    """``scales`` as a TensorRT calibration table (for tests and tools)."""
    lines = [f"TRT-{version}-{calibrator}"]
    lines += [f"{name}: {struct.unpack('>I', struct.pack('>f', s))[0]:08x}"
              for name, s in scales.items()]
    return "\n".join(lines) + "\n"


def ranges(table: Mapping[str, float], names: Mapping[str, str], model: onnx.ModelProto
           ) -> dict[str, float]:
    """ONNX tensor -> absolute range, for the table's tensors that the model holds."""
    present = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    present |= {o for n in model.graph.node for o in n.output}
    out = {}
    for trt_name, scale in table.items():
        onnx_name = names.get(trt_name)
        if onnx_name in present:
            out[onnx_name] = scale * 127.0
    return out


def apply(model_bytes: bytes, table: Mapping[str, float], names: Mapping[str, str],
          reduce_range: bool = False) -> tuple[bytes, int]:
    """The model with Q/DQ pairs at the table's scales, and how many tensors got one."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

    model = onnx.load_from_string(model_bytes)
    found = ranges(table, names, model)
    if not found:
        return model_bytes, 0
    data = TensorsData(CalibrationMethod.MinMax,
                       {k: TensorData(lowest=np.float32(-v), highest=np.float32(v))
                        for k, v in found.items()})
    quiet = _DropPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        return _quantize(model, data, reduce_range), len(found)
    finally:
        logging.getLogger().removeFilter(quiet)


class _DropPreprocessAdvice(logging.Filter):
    """ONNX Runtime's root-logger advice to pre-process: pre-processing would rename the
    tensors the table's scales are for, so it is not done here on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def _quantize(model: onnx.ModelProto, data, reduce_range: bool) -> bytes:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    with tempfile.TemporaryDirectory(prefix="tftrt-table-") as tmp:
        src, out, cache = (os.path.join(tmp, f) for f in ("in.onnx", "q.onnx", "ranges.json"))
        onnx.save(model, src)
        save_tensors_data(data, cache)
        quantize_static(src, out, None, quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibration_cache_path=cache,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        with open(out, "rb") as f:
            return f.read()
