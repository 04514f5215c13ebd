"""TF-TRT's Python API, for TensorFlow releases that no longer ship it.

``from tftrt import trt_convert as trt`` replaces
``from tensorflow.python.compiler.tensorrt import trt_convert as trt``.
"""

from __future__ import annotations

import collections
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

import tftrt.env as env
import tftrt.progress as progress
from tftrt.compiler import calibration, precision
from tftrt.compiler.collector import full_collections_deferred
from tftrt.compiler.freeze import FrozenModel, load_and_freeze
from tftrt.compiler.partition import partitioner_name
from tftrt.compiler.pipeline import CompileOptions, Conversion, compile_model
from tftrt.errors import CalibrationError, ConversionStateError, InputSpecError
from tftrt.plugins.manager import get_registry
from tftrt.report.nonconversion import emit_nonconversion_report
from tftrt.report.summary import format_summary
from tftrt.runtime.backends import select_backend
from tftrt.runtime.executor import ConvertedFunction
from tftrt.runtime.signature import check_inputs
from tftrt.specs import PROFILE_STRATEGIES
from tftrt.specs import as_call as _as_call
from tftrt.summary_notes import engine_notes, plan_lines

log = logging.getLogger("tftrt.convert")


class TrtPrecisionMode:
    FP32 = "FP32"
    FP16 = "FP16"
    INT8 = "INT8"

    @staticmethod
    def supported_precision_modes() -> list[str]:
        return [TrtPrecisionMode.FP32, TrtPrecisionMode.FP16, TrtPrecisionMode.INT8]


class TrtProfileStrategy:
    RANGE = "Range"
    OPTIMAL = "Optimal"
    RANGE_OPTIMAL = "Range+Optimal"
    IMPLICIT_BATCH_MODE_COMPATIBLE = "ImplicitBatchModeCompatible"



# TF-TRT's default for TensorRT >= 8.4; engines use what they need.
DEFAULT_TRT_MAX_WORKSPACE_SIZE_BYTES = sys.maxsize - 512
DEFAULT_SIGNATURE_KEY = "serving_default"
DEFAULT_TAGS = ("serve",)

TrtConversionParams = collections.namedtuple(
    "TrtConversionParams",
    ["max_workspace_size_bytes", "precision_mode", "minimum_segment_size",
     "maximum_cached_engines", "use_calibration", "allow_build_at_runtime"])

DEFAULT_TRT_CONVERSION_PARAMS = TrtConversionParams(
    max_workspace_size_bytes=DEFAULT_TRT_MAX_WORKSPACE_SIZE_BYTES,
    precision_mode=TrtPrecisionMode.FP32, minimum_segment_size=3,
    maximum_cached_engines=1, use_calibration=True, allow_build_at_runtime=True)




class TrtGraphConverterV2:
    """Converts a SavedModel's signature into a graph whose convertible parts run as engines."""

    def __init__(self, input_saved_model_dir: str | None = None,
                 input_saved_model_tags: Iterable[str] | None = None,
                 input_saved_model_signature_key: str | None = None,
                 use_dynamic_shape: bool | None = None,
                 dynamic_shape_profile_strategy: str | None = None,
                 max_workspace_size_bytes: int = DEFAULT_TRT_MAX_WORKSPACE_SIZE_BYTES,
                 precision_mode: str = TrtPrecisionMode.FP32,
                 minimum_segment_size: int = 3,
                 maximum_cached_engines: int = 1,
                 use_calibration: bool = True,
                 allow_build_at_runtime: bool = True,
                 conversion_params: TrtConversionParams | None = None,
                 backend: str = "auto",
                 calibration_method: str | None = None,
                 partitioner: str | None = None,
                 partitioner_options: Mapping[str, Any] | None = None) -> None:
        if conversion_params is not None:
            log.warning("conversion_params is deprecated; pass the parameters directly")
            max_workspace_size_bytes = conversion_params.max_workspace_size_bytes
            precision_mode = conversion_params.precision_mode
            minimum_segment_size = conversion_params.minimum_segment_size
            maximum_cached_engines = conversion_params.maximum_cached_engines
            use_calibration = conversion_params.use_calibration
            allow_build_at_runtime = conversion_params.allow_build_at_runtime
        if not isinstance(precision_mode, str) or precision_mode.upper() not in \
                TrtPrecisionMode.supported_precision_modes():
            raise ValueError(f"precision_mode {precision_mode!r} is not one of "
                             f"{TrtPrecisionMode.supported_precision_modes()}")
        precision_mode = precision_mode.upper()
        if not (minimum_segment_size > 0 or minimum_segment_size == -1):
            raise ValueError("minimum_segment_size must be > 0 or -1 (skip the main graph), "
                             f"got {minimum_segment_size}")
        if maximum_cached_engines < 1:
            raise ValueError(f"maximum_cached_engines must be >= 1, got {maximum_cached_engines}")
        use_dynamic_shape = bool(use_dynamic_shape)
        if use_dynamic_shape:
            strategy = dynamic_shape_profile_strategy or "Range"
            match = [s for s in PROFILE_STRATEGIES if s.lower() == str(strategy).lower()]
            if not match:
                raise ValueError(f"Invalid profile strategy {strategy!r}; expected one of "
                                 f"{list(PROFILE_STRATEGIES)}")
            strategy = match[0]
            if strategy == TrtProfileStrategy.IMPLICIT_BATCH_MODE_COMPATIBLE:
                log.warning("the ImplicitBatchModeCompatible profile strategy is deprecated, "
                            "as in TF-TRT: it keeps implicit batch mode's engines")
        else:
            strategy = "Unknown"
        self._freeze = not env.feature("disable_graph_freezing")
        if not self._freeze and not use_dynamic_shape:
            log.warning("TF_TRT_EXPERIMENTAL_FEATURES=disable_graph_freezing needs "
                        "use_dynamic_shape=True; the graph will be frozen")
            self._freeze = True
        self._backend = select_backend(backend)
        partitioner = partitioner_name(partitioner)
        get_registry().partitioner(partitioner)  # unknown names fail here, listing the known
        if partitioner_options is not None and not isinstance(partitioner_options, Mapping):
            raise ValueError(f"partitioner_options must be a mapping, got "
                             f"{type(partitioner_options).__name__}")
        self._input_saved_model_dir = input_saved_model_dir
        self._input_saved_model_tags = list(input_saved_model_tags or DEFAULT_TAGS)
        self._input_saved_model_signature_key = (input_saved_model_signature_key
                                                 or DEFAULT_SIGNATURE_KEY)
        self._need_calibration = precision_mode == TrtPrecisionMode.INT8 and use_calibration
        self._calibration_method = calibration.calibration_method(calibration_method)
        self._pending_calibration: Callable[[], Iterable[Any]] | None = None
        self._options = CompileOptions(
            precision_mode=precision_mode, minimum_segment_size=minimum_segment_size,
            maximum_cached_engines=maximum_cached_engines,
            max_workspace_size_bytes=max_workspace_size_bytes,
            use_dynamic_shape=use_dynamic_shape, allow_build_at_runtime=True,
            profile_strategy=strategy, partitioner=partitioner,
            partitioner_options=dict(partitioner_options or {}))
        self._allow_build_at_runtime = allow_build_at_runtime
        self._use_calibration = use_calibration
        self._conversion: Conversion | None = None
        self._converted_func: ConvertedFunction | None = None
        self._built = False

    # -- properties -----------------------------------------------------------
    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def converted_graph_def(self):
        self._require_converted("converted_graph_def")
        return self._conversion.graph_def

    @property
    def frozen_graph_def(self):
        """The input signature's graph after freezing and Grappler, before segmentation."""
        self._require_converted("frozen_graph_def")
        return self._conversion.frozen.graph_def

    @property
    def nonconversion(self) -> dict[str, dict[str, int]]:
        """The non-conversion report's data: op type -> reason -> number of nodes."""
        self._require_converted("nonconversion")
        return self._conversion.nonconversion

    @property
    def engines(self) -> dict:
        self._require_converted("engines")
        return self._conversion.engines

    def _require_converted(self, what: str) -> None:
        if self._conversion is None:
            raise ConversionStateError(f"{what} needs convert() to be called first")

    # -- the workflow -----------------------------------------------------------
    def convert(self, calibration_input_fn: Callable[[], Iterable[Any]] | None = None
                ) -> ConvertedFunction:
        """Segment the signature's graph and splice in engine nodes; returns the callable.

        INT8 with ``use_calibration`` needs ``calibration_input_fn`` (items as for
        ``build()``, all of one shape): the engines are calibrated here, or in ``build()``
        with ``use_dynamic_shape``, as TF-TRT does.
        """
        if calibration_input_fn is not None and not self._need_calibration:
            raise ValueError("calibration_input_fn is only used with INT8 calibration")
        if self._conversion is not None:
            raise ConversionStateError("convert() can only be called once")
        if self._need_calibration and calibration_input_fn is None:
            raise CalibrationError("precision_mode INT8 with use_calibration=True needs "
                                   "calibration_input_fn (a callable yielding calibration "
                                   "inputs); pass use_calibration=False to take the ranges "
                                   "from the graph's quantization ops")
        with full_collections_deferred():
            frozen = load_and_freeze(self._input_saved_model_dir, self._input_saved_model_tags,
                                     self._input_saved_model_signature_key, freeze=self._freeze)
            conversion = compile_model(frozen, self._options, get_registry(), self._backend,
                                       sample_inputs=self._sample_feeds(frozen))
        emit_nonconversion_report(conversion.nonconversion)
        func = ConvertedFunction(conversion.graph_def, frozen.inputs, frozen.outputs,
                                 conversion.engines, captures=frozen.variables)
        if not self._need_calibration and self._options.precision_mode == "INT8":
            _ranges_from_graph(conversion, precision.int8_weight_limit(self._backend.name))
        if self._need_calibration and self._options.use_dynamic_shape:
            self._pending_calibration = calibration_input_fn
        elif self._need_calibration:
            self._calibrate(conversion, func, calibration_input_fn)
        self._conversion, self._converted_func = conversion, func
        viz = env.get("TF_TRT_EXPORT_GRAPH_VIZ_PATH")
        if viz:
            from tftrt.report.graphviz import write_graph

            write_graph(self._conversion.graph_def, viz)
        return self._converted_func

    def _sample_feeds(self, frozen: FrozenModel) -> list[dict[str, np.ndarray]]:
        """The partitioner's sample inputs (option ``inputs``, items as for ``build()``),
        keyed by graph tensor."""
        input_fn = self._options.partitioner_options.get("inputs")
        if input_fn is None:
            return []
        if not callable(input_fn):
            raise ValueError("partitioner_options['inputs'] must be a callable yielding "
                             "inputs, as build()'s input_fn")
        feeds = []
        for count, item in enumerate(input_fn()):
            args, kwargs = _as_call(item)
            try:
                arrays = check_inputs(frozen.inputs, args, kwargs)
            except InputSpecError as exc:
                raise InputSpecError(f"partitioner_options['inputs'] item {count}: "
                                     f"{exc}") from None
            feeds.append({t.ref: np.asarray(a) for t, a in zip(frozen.inputs, arrays,
                                                               strict=True)})
        return feeds

    def _calibrate(self, conversion: Conversion, func: ConvertedFunction,
                   input_fn: Callable[[], Iterable[Any]]) -> None:
        """Record each engine's inputs on ``input_fn``'s data and swap in quantized ONNX."""
        # The IR (the segmented graph, with its weights and their decoded copies) is
        # not used once the engines are made: calibration's peak is lower without it.
        conversion.ir = None
        data = calibration.record(func, conversion.engines, input_fn, _as_call,
                                  record_only=func.runs_without_tensorflow)
        reduce_range = precision.int8_weight_limit(self._backend.name) < 127
        quantized = calibration.calibrate(conversion.engines, data, self._calibration_method,
                                          reduce_range=reduce_range)
        for name, model in quantized.items():
            op = conversion.engines[name]
            op.replace_model(model)
            op.calibration = calibration.calibration_record(
                data, name, self._calibration_method, weight_bits=7 if reduce_range else 8)
            conversion.onnx_models[name] = model

    def build(self, input_fn: Callable[[], Iterable[Any]]) -> None:
        """Build the engines for the shapes ``input_fn`` yields (arrays, lists/tuples or dicts).

        Implicit batch mode: each item runs through the converted function, building an
        engine for each shape no cached engine serves (an engine of batch N serves every
        batch <= N). Dynamic shape mode: the items' shapes are collected (the segments run
        natively meanwhile), then each engine is built once, for the profiles
        ``dynamic_shape_profile_strategy`` makes of them. Afterwards runtime builds follow
        ``allow_build_at_runtime``.
        """
        if self._built:
            raise NotImplementedError("build() can only be called once")
        if input_fn is None:
            raise RuntimeError("input_fn is required to build engines")
        if self._converted_func is None:
            raise ConversionStateError("build() needs convert() to be called first")
        if self._pending_calibration is not None:
            self._calibrate(self._conversion, self._converted_func, self._pending_calibration)
            self._pending_calibration = None
        func, ops = self._converted_func, list(self._conversion.engines.values())
        dynamic = self._options.use_dynamic_shape
        if dynamic:
            for op in ops:
                op.begin_collecting()
                op.record_only = func.runs_without_tensorflow  # outputs unused: skip native
        try:
            with full_collections_deferred(), progress.bar(
                    "Collecting shapes" if dynamic else "Building engines", unit="input") as bar:
                count = _run_items(func, input_fn, bar, ops)
            if dynamic:
                with progress.bar("Building engines", len(ops), "engine") as bar:
                    for op in ops:
                        bar.note(op.name)
                        op.build_collected()
                        bar.update(1)
        except BaseException:
            for op in ops:  # a failed build() leaves no engine half the items built
                op.reset()
            raise
        finally:
            for op in ops:
                op.collector, op.record_only = None, False
        if count == 0:
            raise ValueError("input_fn yielded no inputs; engines need at least one")
        for op in ops:
            op.allow_build_at_runtime = self._allow_build_at_runtime
        self._built = True

    def save(self, output_saved_model_dir: str, save_gpu_specific_engines: bool = True,
             options: Any = None, overwrite: bool = False) -> None:
        """Write a SavedModel that plain TensorFlow runs, with the engines under assets/."""
        from tftrt.compiler.saving import save_converted

        self._require_converted("save()")
        if self._pending_calibration is not None:
            raise ConversionStateError("INT8 calibration has not run yet: with "
                                       "use_dynamic_shape it runs in build(); call build() "
                                       "before save()")
        save_converted(self._conversion, output_saved_model_dir,
                       save_engines=save_gpu_specific_engines,
                       allow_build_at_runtime=self._allow_build_at_runtime,
                       backend=self._backend, options=self._options,
                       remove_native_segments=env.feature("remove_native_segments"),
                       save_options=options, overwrite=overwrite)

    def summary(self, line_length: int = 160, detailed: bool = True,
                print_fn: Callable[[str], None] | None = None) -> None:
        """Print the engines, their inputs/outputs and op counts in TF-TRT's format."""
        if self._conversion is None:
            raise RuntimeError("summary() needs convert() to be called first")
        notes = {name: engine_notes(op) for name, op in self._conversion.engines.items()}
        text = format_summary(self._conversion.graph_def, line_length, detailed, notes)
        (print_fn or print)(text + plan_lines(self._conversion))


def _ranges_from_graph(conversion: Conversion, max_weight_level: int) -> None:
    """INT8 without calibration: the graph's FakeQuant/QuantizeAndDequantize ops give the
    ranges; an engine without any runs without INT8, as in TF-TRT."""
    for name, op in conversion.engines.items():
        if precision.has_qdq(op.onnx_model):
            model = precision.weights_to_int8(op.onnx_model, max_weight_level)
            op.replace_model(model)
            conversion.onnx_models[name] = model
            op.calibration = {"source": "graph"}
        else:
            log.warning("%s: INT8 without calibration, and its segment has no quantization "
                        "ops (FakeQuant*, QuantizeAndDequantize*): it runs without INT8", name)


def _run_items(func: ConvertedFunction, input_fn: Callable[[], Iterable[Any]],
               bar: progress.Bar | None = None, ops: Iterable[Any] = ()) -> int:
    """Call ``func`` on every item of ``input_fn()``; the number of items. ``bar`` counts
    the items and shows how many engines ``ops`` have built."""
    count, arity = 0, None
    items = input_fn()
    if bar is not None and hasattr(items, "__len__"):
        bar.set_total(len(items))
    for item in items:
        args, kwargs = _as_call(item)
        names = (len(args), tuple(sorted(kwargs)))
        if arity is None:
            arity = names
        elif names != arity:
            raise InputSpecError(
                f"input_fn item {count} has {_describe(names)} but item 0 had "
                f"{_describe(arity)}: every item must give the same inputs")
        try:
            func(*args, **kwargs)
        except InputSpecError as exc:
            raise InputSpecError(f"input_fn item {count}: {exc}") from None
        count += 1
        if bar is not None:
            bar.update(1)
            bar.note(f"{sum(op.stats.builds for op in ops)} engines built")
    return count


def _describe(arity: tuple[int, tuple[str, ...]]) -> str:
    n, names = arity
    return f"{n} positional inputs" if not names else f"inputs {list(names)}"
