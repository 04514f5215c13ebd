"""Running and migrating SavedModels that TF-TRT wrote.

``load_legacy`` runs such a model with tftrt engines; ``migrate`` writes it as a
tftrt converted SavedModel (``compiler/saving.py``'s format: plain TensorFlow 2.18+
runs it natively, ``tftrt.load`` with its engines), optionally with engines built
for the shapes of ``build_input_fn`` first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tftrt.compiler import calibration, calibration_table, precision
from tftrt.compiler.legacy_assets import unused_engines_warning
from tftrt.compiler.legacy_convert import LegacyConversion, convert_legacy
from tftrt.errors import CalibrationError, InputSpecError, SaveError
from tftrt.plugins.manager import get_registry
from tftrt.plugins.types import EngineBackend
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.executor import ConvertedFunction
from tftrt.specs import as_call

log = logging.getLogger("tftrt.migrate")

InputFn = Callable[[], Iterable[Any]]
Formatter = Callable[[LegacyConversion, Mapping[str, EngineOp]], str]


@dataclass
class LegacyModel:
    """A TF-TRT model running on tftrt engines; ``signatures[key](x)`` runs it."""

    signatures: dict[str, ConvertedFunction]
    engines: dict[str, EngineOp]
    migration: LegacyConversion
    formatter: Formatter | None = None

    def summary(self, print_fn: Callable[[str], None] | None = None) -> None:
        """Print what became of each TF-TRT engine and what runs now."""
        if self.formatter is not None:
            (print_fn or print)(self.formatter(self.migration, self.engines))


def _function(conv: LegacyConversion) -> ConvertedFunction:
    c = conv.conversion
    return ConvertedFunction(c.graph_def, c.frozen.inputs, c.frozen.outputs, c.engines,
                             captures=c.frozen.variables)


def prepare_int8(conv: LegacyConversion, func: ConvertedFunction, backend: EngineBackend,
                 calibration_input_fn: InputFn | None, method: str | None = None) -> None:
    """Give every INT8 engine its scales: TF-TRT's calibration table where it maps onto the
    segment, else calibration on ``calibration_input_fn``, else the graph's Q/DQ ops."""
    reduce_range = precision.int8_weight_limit(backend.name) < 127
    to_calibrate = {}
    for record in conv.records:
        op = conv.conversion.engines.get(record.name)
        if op is None or record.options.precision_mode != "INT8":
            continue
        table = calibration_table.parse(record.source.calibration_data)
        if table and calibration_input_fn is None:
            model, used = calibration_table.apply(op.onnx_model, table,
                                                  conv.tensor_names[record.name],
                                                  reduce_range=reduce_range)
            if used:
                op.replace_model(model)
                conv.conversion.onnx_models[record.name] = model
                op.calibration = {"source": "tensorrt-table", "tensors": used,
                                  "table_tensors": len(table)}
                record.calibration = (f"TF-TRT's calibration table: scales for {used} of its "
                                      f"{len(table)} tensors")
                continue
        if calibration_input_fn is not None:
            to_calibrate[record.name] = op
        elif not record.source.use_calibration and precision.has_qdq(op.onnx_model):
            model = precision.weights_to_int8(op.onnx_model,
                                              precision.int8_weight_limit(backend.name))
            op.replace_model(model)
            conv.conversion.onnx_models[record.name] = model
            op.calibration = {"source": "graph"}
            record.calibration = "the graph's quantization ops"
        else:
            why = ("its calibration_data holds no TensorRT calibration table whose tensors "
                   "map onto the segment" if record.source.calibration_data
                   else "it has no calibration_data")
            raise CalibrationError(
                f"{record.name} is an INT8 engine but {why}: pass calibration_input_fn= "
                "(calibration data) to tftrt.migrate(), or precision_mode='FP16' or 'FP32'")
    if to_calibrate:
        method = calibration.calibration_method(method)
        data = calibration.record(func, to_calibrate, calibration_input_fn, as_call,
                                  record_only=func.runs_without_tensorflow)
        quantized = calibration.calibrate(to_calibrate, data, method, reduce_range=reduce_range)
        for name, model in quantized.items():
            op = to_calibrate[name]
            op.replace_model(model)
            op.calibration = calibration.calibration_record(
                data, name, method, weight_bits=7 if reduce_range else 8)
            conv.conversion.onnx_models[name] = model
            rec = next(r for r in conv.records if r.name == name)
            rec.calibration = f"{method} calibration on {len(data.batches[name])} batches"


def load_legacy(path: str, backend: EngineBackend, formatter: Formatter | None = None,
                tags: Sequence[str] = ("serve",), signature_key: str | None = None,
                **overrides: Any) -> LegacyModel:
    """Run the TF-TRT model in ``path`` with tftrt engines (built on first use)."""
    conv = convert_legacy(path, get_registry(), backend, overrides, tags, signature_key)
    unused_engines_warning(conv, backend)
    func = _function(conv)
    prepare_int8(conv, func, backend, None)
    _runtime_builds_as_saved(conv)
    key = conv.conversion.frozen.signature_key
    return LegacyModel({key: func}, dict(conv.conversion.engines), conv, formatter)


def _runtime_builds_as_saved(conv: LegacyConversion) -> None:
    """Each engine op builds at run time only if its engine allows it (builds during
    conversion are always allowed, as in TF-TRT)."""
    for name, op in conv.conversion.engines.items():
        record = next(r for r in conv.records if r.name == name)
        op.allow_build_at_runtime = record.options.allow_build_at_runtime


def check_destination(dst: str, src: str) -> str:
    """``dst`` as an absolute path, refused when it exists and is not an empty directory."""
    if not dst:
        raise SaveError("the migration needs a destination directory")
    target = os.path.abspath(os.fspath(dst))
    if os.path.exists(target) and not os.path.isdir(target):
        raise SaveError(f"destination {dst!r} exists and is not a directory")
    if os.path.isdir(target) and os.listdir(target):
        raise SaveError(f"destination {dst!r} is not empty; migrate into a new directory")
    if os.path.commonpath([target, os.path.abspath(src)]) == os.path.abspath(src):
        raise SaveError(f"destination {dst!r} is inside the source model {src!r}")
    return target


def migrate(src: str, dst: str, backend: EngineBackend,
            build_input_fn: InputFn | None = None, calibration_input_fn: InputFn | None = None,
            calibration_method: str | None = None, tags: Sequence[str] = ("serve",),
            signature_key: str | None = None, **overrides: Any) -> LegacyModel:
    """Write TF-TRT model ``src`` as a tftrt SavedModel in ``dst`` (atomically; nothing is
    written when anything fails); the migrated model, as ``load_legacy`` returns it."""
    from tftrt.compiler.saving import save_converted

    target = check_destination(dst, src)
    conv = convert_legacy(src, get_registry(), backend, overrides, tags, signature_key)
    unused_engines_warning(conv, backend)
    func = _function(conv)
    prepare_int8(conv, func, backend, calibration_input_fn, calibration_method)
    if build_input_fn is not None:
        count = 0
        for item in build_input_fn():
            args, kwargs = as_call(item)
            try:
                func(*args, **kwargs)
            except InputSpecError as exc:
                raise InputSpecError(f"build_input_fn item {count}: {exc}") from None
            count += 1
        if count == 0:
            raise ValueError("build_input_fn yielded no inputs; engines need at least one")
    save_converted(conv.conversion, target, save_engines=True,
                   allow_build_at_runtime=conv.options.allow_build_at_runtime,
                   backend=backend, options=conv.options)
    _runtime_builds_as_saved(conv)
    return LegacyModel({conv.conversion.frozen.signature_key: func},
                       dict(conv.conversion.engines), conv)
