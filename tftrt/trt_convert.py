"""TF-TRT's Python API, for TensorFlow releases that no longer ship it.

``from tftrt import trt_convert as trt`` replaces
``from tensorflow.python.compiler.tensorrt import trt_convert as trt``.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from tftrt.compiler.freeze import load_and_freeze
from tftrt.compiler.pipeline import CompileOptions, Conversion, compile_model
from tftrt.errors import ConversionStateError, InputSpecError
from tftrt.plugins.manager import get_registry
from tftrt.plugins.types import EngineBackend
from tftrt.report.summary import format_summary
from tftrt.runtime.executor import ConvertedFunction

log = logging.getLogger("tftrt")


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


_PROFILE_STRATEGIES = ("Range", "Optimal", "Range+Optimal", "ImplicitBatchModeCompatible")

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


def _experimental_features() -> set[str]:
    return {f.strip() for f in os.environ.get("TF_TRT_EXPERIMENTAL_FEATURES", "").split(",")
            if f.strip()}


def select_backend(name: str) -> EngineBackend:
    """The backend called ``name``; "auto" picks tensorrt, openvino, onnxruntime in turn."""
    registry = get_registry()
    if not isinstance(name, str):
        raise ValueError(f"backend must be a string, got {name!r}")
    if name.lower() == "auto":
        for candidate in ("tensorrt", "openvino", "onnxruntime"):
            if candidate in registry.backend_names() and registry.backend(candidate).available():
                return registry.backend(candidate)
        raise ValueError("no engine backend is available: install openvino or onnxruntime")
    backend = registry.backend(name.lower())
    if not backend.available():
        raise ValueError(f"engine backend {name!r} is not available on this machine")
    return backend


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
                 backend: str = "auto") -> None:
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
        if precision_mode == TrtPrecisionMode.INT8:
            raise NotImplementedError("precision_mode INT8 is not implemented yet in tftrt; "
                                      "use FP32 or FP16")
        if not (minimum_segment_size > 0 or minimum_segment_size == -1):
            raise ValueError("minimum_segment_size must be > 0 or -1 (skip the main graph), "
                             f"got {minimum_segment_size}")
        if maximum_cached_engines < 1:
            raise ValueError(f"maximum_cached_engines must be >= 1, got {maximum_cached_engines}")
        use_dynamic_shape = bool(use_dynamic_shape)
        if use_dynamic_shape:
            strategy = dynamic_shape_profile_strategy or "Range"
            match = [s for s in _PROFILE_STRATEGIES if s.lower() == str(strategy).lower()]
            if not match:
                raise ValueError(f"Invalid profile strategy {strategy!r}; expected one of "
                                 f"{list(_PROFILE_STRATEGIES)}")
            strategy = match[0]
        else:
            strategy = "Unknown"
        self._backend = select_backend(backend)
        self._input_saved_model_dir = input_saved_model_dir
        self._input_saved_model_tags = list(input_saved_model_tags or DEFAULT_TAGS)
        self._input_saved_model_signature_key = (input_saved_model_signature_key
                                                 or DEFAULT_SIGNATURE_KEY)
        self._need_calibration = False
        self._options = CompileOptions(
            precision_mode=precision_mode, minimum_segment_size=minimum_segment_size,
            maximum_cached_engines=maximum_cached_engines,
            max_workspace_size_bytes=max_workspace_size_bytes,
            use_dynamic_shape=use_dynamic_shape, allow_build_at_runtime=True,
            profile_strategy=strategy)
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
    def engines(self) -> dict:
        self._require_converted("engines")
        return self._conversion.engines

    def _require_converted(self, what: str) -> None:
        if self._conversion is None:
            raise ConversionStateError(f"{what} needs convert() to be called first")

    # -- the workflow -----------------------------------------------------------
    def convert(self, calibration_input_fn: Callable[[], Iterable[Any]] | None = None
                ) -> ConvertedFunction:
        """Segment the signature's graph and splice in engine nodes; returns the callable."""
        if calibration_input_fn is not None and not self._need_calibration:
            raise ValueError("calibration_input_fn is only used with INT8 calibration")
        if self._conversion is not None:
            raise ConversionStateError("convert() can only be called once")
        frozen = load_and_freeze(self._input_saved_model_dir, self._input_saved_model_tags,
                                 self._input_saved_model_signature_key)
        self._conversion = compile_model(frozen, self._options, get_registry(), self._backend)
        self._converted_func = ConvertedFunction(
            self._conversion.graph_def, frozen.inputs, frozen.outputs,
            self._conversion.engines)
        viz = os.environ.get("TF_TRT_EXPORT_GRAPH_VIZ_PATH")
        if viz:
            from tftrt.report.graphviz import write_dot

            write_dot(self._conversion.graph_def, viz)
        return self._converted_func

    def build(self, input_fn: Callable[[], Iterable[Any]]) -> None:
        """Build the engines for the shapes ``input_fn`` yields (arrays, lists/tuples or dicts)."""
        if self._built:
            raise NotImplementedError("build() can only be called once")
        if input_fn is None:
            raise RuntimeError("input_fn is required to build engines")
        if self._converted_func is None:
            raise ConversionStateError("build() needs convert() to be called first")
        count = 0
        for item in input_fn():
            args, kwargs = _as_call(item)
            try:
                self._converted_func(*args, **kwargs)
            except InputSpecError as exc:
                raise InputSpecError(f"input_fn item {count}: {exc}") from None
            count += 1
        if count == 0:
            raise ValueError("input_fn yielded no inputs; engines need at least one")
        self._built = True

    def save(self, output_saved_model_dir: str, save_gpu_specific_engines: bool = True,
             options: Any = None, overwrite: bool = False) -> None:
        """Write a SavedModel that plain TensorFlow runs, with the engines under assets/."""
        from tftrt.compiler.saving import save_converted

        self._require_converted("save()")
        save_converted(self._conversion, output_saved_model_dir,
                       save_engines=save_gpu_specific_engines,
                       allow_build_at_runtime=self._allow_build_at_runtime,
                       backend=self._backend, options=self._options,
                       remove_native_segments="remove_native_segments"
                       in _experimental_features(),
                       save_options=options, overwrite=overwrite)

    def summary(self, line_length: int = 160, detailed: bool = True,
                print_fn: Callable[[str], None] | None = None) -> None:
        """Print the engines, their inputs/outputs and op counts in TF-TRT's format."""
        if self._conversion is None:
            raise RuntimeError("summary() needs convert() to be called first")
        notes = {}
        for name, op in self._conversion.engines.items():
            precision = op.precision or f"{op.precision_mode} (not built yet)"
            notes[name] = [f"Backend: {op.backend.name}, precision: {precision}"]
            st = op.stats
            if st.build_failures or st.run_failures or st.load_failures or st.native_calls:
                notes[name].append(
                    f"Native fallback: {st.native_calls} native calls, {st.engine_calls} engine "
                    f"calls; failures: {st.build_failures} build, {st.run_failures} run, "
                    f"{st.load_failures} load; last error: {st.last_error}")
        text = format_summary(self._conversion.graph_def, line_length, detailed, notes)
        (print_fn or print)(text)


def _as_call(item: Any) -> tuple[tuple, dict]:
    if isinstance(item, dict):
        return (), item
    if isinstance(item, (list, tuple)):
        return tuple(item), {}
    return (item,), {}
