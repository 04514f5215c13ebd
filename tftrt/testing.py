"""A harness for converter authors: prove a converter against TensorFlow.

Two levels:

* ``check_conversion(fn, inputs)`` and ``check_op(op_type, inputs)`` run the
  real pipeline (freeze + Grappler, capability, segmentation, lowering,
  codegen, engines), require the function to become exactly one engine and
  compare every available engine backend with TensorFlow. They return a
  ``Report`` saying which converters and backends ran.
* ``check_function(fn, inputs)`` and ``lower_function(fn, specs)`` lower all
  of a traced function's nodes into one ONNX model directly, without
  segmentation, and run it on ONNX Runtime: quicker to debug a single
  lowering.

Both work the same for built-in and third-party converters: pass
``registry=reset_registry(plugin)`` or rely on the installed ``tftrt`` entry
points.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from tftrt.compiler import capability, codegen, layers
from tftrt.compiler import ir as irmod
from tftrt.compiler.freeze import freeze_function
from tftrt.compiler.lowering import lower_segment, plan_segment
from tftrt.compiler.pipeline import CompileOptions, Conversion, compile_model
from tftrt.compiler.segment import DEFAULT_MAX_ENGINES
from tftrt.plugins.manager import Registry, get_registry
from tftrt.plugins.types import EngineBackend
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.executor import ConvertedFunction

__all__ = [
    "DEFAULT_TOLERANCES",
    "BackendResult",
    "Const",
    "Report",
    "Tolerance",
    "available_backends",
    "check_conversion",
    "check_function",
    "check_op",
    "lower_function",
    "run_onnx",
    "trace",
]


# -- tolerances ----------------------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """Allowed error of one output: ``|got - want| <= atol + rtol * max(|want|)``.

    ``max(|want|)`` is the largest finite magnitude of TensorFlow's output, so
    ``rtol`` is relative to the output's scale, not to each element. NaN and
    infinities must appear at the same places in both. ``Tolerance()`` is exact.
    """

    rtol: float = 0.0
    atol: float = 0.0


EXACT = Tolerance()

#: Defaults per output dtype; dtypes not listed (ints, bools, ...) must match exactly.
DEFAULT_TOLERANCES: Mapping[np.dtype, Tolerance] = {
    np.dtype(np.float32): Tolerance(rtol=1e-5, atol=1e-6),
    np.dtype(np.float64): Tolerance(rtol=1e-5, atol=1e-6),  # engines may compute in float32
    np.dtype(np.float16): Tolerance(rtol=1e-2, atol=1e-3),
    np.dtype(tf.bfloat16.as_numpy_dtype): Tolerance(rtol=2e-2, atol=1e-2),
}

ToleranceSpec = float | Tolerance | Mapping[Any, float | Tolerance] | None


def _tolerance_for(dtype: np.dtype, spec: ToleranceSpec) -> Tolerance:
    """The tolerance for an output of ``dtype`` under the user's ``spec``."""
    default = DEFAULT_TOLERANCES.get(np.dtype(dtype), EXACT)
    floating = np.issubdtype(dtype, np.inexact) or np.dtype(dtype) in DEFAULT_TOLERANCES

    def coerce(value: float | Tolerance) -> Tolerance:
        if isinstance(value, Tolerance):
            return value
        return Tolerance(rtol=float(value), atol=default.atol)

    if spec is None:
        return default
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            if np.dtype(tf.as_dtype(key).as_numpy_dtype) == np.dtype(dtype):
                return coerce(value)
        return default
    return coerce(spec) if floating else default


def _compare(got: np.ndarray, want: np.ndarray, tol: Tolerance, what: str) -> float:
    """Assert ``got`` matches ``want`` within ``tol``; returns the scaled max error."""
    if got.shape != want.shape:
        raise AssertionError(f"{what}: shape {list(got.shape)}, TensorFlow gives "
                             f"{list(want.shape)}")
    if got.dtype != want.dtype:
        raise AssertionError(f"{what}: dtype {got.dtype}, TensorFlow gives {want.dtype}")
    if tol == EXACT or not (np.issubdtype(want.dtype, np.inexact)
                            or want.dtype in DEFAULT_TOLERANCES):
        if not np.array_equal(got, want, equal_nan=want.dtype.kind in "fc"):
            bad = np.argwhere(got != want)
            first = tuple(int(i) for i in bad[0]) if bad.size else ()
            raise AssertionError(
                f"{what}: {len(bad)} of {want.size} elements differ (exact match required); "
                f"first at {list(first)}: got {got[first]}, TensorFlow gives {want[first]}")
        return 0.0
    g, w = got.astype(np.float64), want.astype(np.float64)
    nan_g, nan_w = np.isnan(g), np.isnan(w)
    if not np.array_equal(nan_g, nan_w):
        raise AssertionError(f"{what}: NaN at {int((nan_g != nan_w).sum())} places where "
                             "TensorFlow has none, or the other way round")
    inf_w = np.isinf(w)
    if not np.array_equal(np.where(inf_w, w, 0), np.where(np.isinf(g), g, 0)):
        raise AssertionError(f"{what}: infinities differ from TensorFlow's")
    finite = ~(nan_w | inf_w)
    if not finite.any():
        return 0.0
    scale = float(np.abs(w[finite]).max())
    err = np.abs(g[finite] - w[finite])
    worst = float(err.max())
    allowed = tol.atol + tol.rtol * scale
    if worst > allowed:
        k = int(np.argmax(err))
        raise AssertionError(
            f"{what}: max |error| {worst:.3g} exceeds {allowed:.3g} (atol {tol.atol:g} + rtol "
            f"{tol.rtol:g} x max|TF| {scale:.3g}); worst element: got {g[finite][k]:.6g}, "
            f"TensorFlow gives {w[finite][k]:.6g}")
    return worst / scale if scale > 0 else worst


# -- the report ----------------------------------------------------------------

@dataclass(frozen=True)
class BackendResult:
    """What one engine backend computed."""

    backend: str
    precision: str | None  # the precision the engine actually ran at
    outputs: tuple[np.ndarray, ...]
    # per output: max |got - want| / max |want| (0 when exact)
    max_errors: tuple[float, ...]


@dataclass
class Report:
    """A passed ``check_conversion``: the engine, the converters that made it, the results."""

    engine: str  # the TRTEngineOp node name
    onnx_model: onnx.ModelProto  # the engine's ONNX model
    conversion: Conversion
    # op type of every TF node inside the engine -> the winning converter / its plugin
    converters: dict[str, str]
    converter_plugins: dict[str, str]
    expected: tuple[np.ndarray, ...]  # TensorFlow's outputs
    results: dict[str, BackendResult] = field(default_factory=dict)

    @property
    def backends(self) -> list[str]:
        """The backends that ran, in order."""
        return list(self.results)

    @property
    def onnx_op_types(self) -> list[str]:
        """The ONNX op types in the engine's model, sorted."""
        return sorted({n.op_type for n in self.onnx_model.graph.node})

    def __str__(self) -> str:
        lines = [f"{self.engine}: ONNX ops {', '.join(self.onnx_op_types)}"]
        for op in sorted(self.converters):
            lines.append(f"  {op}: {self.converters[op]} (plugin {self.converter_plugins[op]})")
        for r in self.results.values():
            errs = ", ".join(f"{e:.2g}" for e in r.max_errors)
            lines.append(f"  {r.backend} [{r.precision}]: max relative error {errs}")
        return "\n".join(lines)


# -- inputs of check_op ----------------------------------------------------------

@dataclass(frozen=True)
class Const:
    """An input of ``check_op`` that the graph holds as a Const node, not as a function input."""

    value: Any

    def array(self) -> np.ndarray:
        return np.asarray(self.value)


# -- check_conversion --------------------------------------------------------------

def available_backends(registry: Registry | None = None) -> list[str]:
    """Names of the registered engine backends that can run on this machine."""
    registry = registry or get_registry()
    return [n for n in registry.backend_names() if registry.backend(n).available()]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    logger = logging.getLogger("tftrt")
    handler = _Capture()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _live_nodes(conversion: Conversion) -> set[str]:
    """Names of the converted graph's nodes that some signature output depends on."""
    inputs = {n.name: [irmod.parse_input(i)[0] for i in n.input]
              for n in conversion.graph_def.node}
    todo = [irmod.parse_input(t.ref)[0] for t in conversion.frozen.outputs]
    live: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in live:
            live.add(name)
            todo.extend(inputs.get(name, ()))
    return live


def _unconverted(conversion: Conversion, live: set[str]) -> list[str]:
    """Lines naming each node TensorFlow still runs (signature inputs/outputs aside)."""
    marked = conversion.ir
    lines = []
    for node in conversion.graph_def.node:
        if node.op == codegen.ENGINE_OP or node.name not in live:
            continue
        data = marked.nodes[node.name] if marked is not None and node.name in marked else {}
        reason = data.get("reason")
        if reason == capability.EXCLUDED:
            continue
        if node.op == "Const" and reason is None:
            continue  # a weight the engine copied in, or one nothing reads
        if reason is None:
            reason = ("supported, but left out of the engines (segmentation or lowering; "
                      "see the messages below)")
        lines.append(f"  - {node.name} (op {node.op}): {reason}")
    return lines


def _one_engine(conversion: Conversion, messages: Sequence[str]) -> str:
    """The name of the single engine, or AssertionError saying what stayed in TensorFlow."""
    live = _live_nodes(conversion)
    engines = [e for e in codegen.engine_nodes(conversion.graph_def) if e.name in live]
    left = _unconverted(conversion, live)
    if len(engines) == 1 and not left:
        return engines[0].name
    what = {0: "no engine", 1: "1 engine"}.get(len(engines), f"{len(engines)} engines")
    parts = [f"the function did not convert into exactly one engine: {what}"]
    library = {f.signature.name: f for f in conversion.graph_def.library.function}
    for e in engines:
        fdef = library.get(codegen.native_segment_name(e.name))
        held = sorted(f"{n.name} ({n.op})" for n in fdef.node_def) if fdef else ["?"]
        parts.append(f"  {e.name} holds {', '.join(held)}")
    if len(engines) > 1 and not left:
        parts.append("(the engines are not connected, or joining them would make a cycle "
                     "through TensorFlow nodes)")
    if left:
        parts.append("nodes left to TensorFlow:")
        parts += left
    elif not engines:
        parts.append("(nothing to convert: Grappler may have folded the whole graph into "
                     "constants; give the op at least one non-constant input)")
    messages = [m.strip() for m in messages
                if m.strip() and "non-converted OP Report" not in m]
    if messages:
        parts.append("messages:")
        parts += [f"  - {m}" for m in messages]
    raise AssertionError("\n".join(parts))


def _no_native(op: EngineOp, backend: str) -> Callable[[Sequence[np.ndarray]], list]:
    def refuse(inputs: Sequence[np.ndarray]) -> list:
        raise AssertionError(f"{backend}: engine {op.name} did not run: {op.stats.last_error}")

    return refuse


def _engines_for(conversion: Conversion, backend: EngineBackend, opts: CompileOptions
                 ) -> dict[str, EngineOp]:
    """Fresh engine runtimes of ``conversion`` on ``backend``, without native fallback."""
    out = {}
    for name, template in conversion.engines.items():
        op = EngineOp(name=name, onnx_model=template.onnx_model, backend=backend,
                      inputs=template.inputs, outputs=template.outputs,
                      precision_mode=opts.precision_mode, dynamic_shape=opts.use_dynamic_shape,
                      max_cached_engines=opts.maximum_cached_engines,
                      max_workspace_size_bytes=int(opts.max_workspace_size_bytes))
        op.native = _no_native(op, backend.name)
        out[name] = op
    return out


def _flatten(outputs: object) -> list[np.ndarray]:
    return [np.asarray(t) for t in tf.nest.flatten(outputs)]


def check_conversion(fn: Callable[..., object], inputs: Sequence[np.ndarray], *,
                     specs: Sequence[tf.TensorSpec] | None = None,
                     backends: Sequence[str] | None = None,
                     tolerance: ToleranceSpec = None,
                     registry: Registry | None = None,
                     minimum_segment_size: int = 1,
                     use_dynamic_shape: bool = False) -> Report:
    """Assert that ``fn`` converts into exactly one engine that gives TensorFlow's results.

    ``fn`` is traced with ``specs`` (default: the inputs' exact shapes and
    dtypes), frozen with Grappler and compiled by the real pipeline with
    ``registry`` (default: the process registry). The converted function runs
    on each of ``backends`` (default: every registered backend that is
    available) and is compared with TensorFlow per output: ``tolerance`` is a
    ``Tolerance``, a float (relative tolerance of floating outputs), or a
    mapping from dtype to either; unnamed dtypes keep ``DEFAULT_TOLERANCES``
    (exact for integers and bools). Raises AssertionError naming every node
    left to TensorFlow, and why, when the function is not one engine. Nodes
    no output depends on (Grappler can leave such nodes behind) do not count.
    """
    registry = registry or get_registry()
    arrays = [np.asarray(x) for x in inputs]
    if not arrays:
        raise ValueError("check_conversion needs at least one input: Grappler folds a graph "
                         "without inputs into constants")
    specs = list(specs) if specs is not None else [
        tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)) for x in arrays]
    names = list(backends) if backends is not None else available_backends(registry)
    if not names:
        raise ValueError(f"no engine backend is available; registered: "
                         f"{registry.backend_names()}")
    chosen = []
    for name in names:
        backend = registry.backend(name)
        if not backend.available():
            raise ValueError(f"engine backend {name!r} is not available on this machine")
        chosen.append(backend)

    concrete = tf.function(fn).get_concrete_function(*specs)
    frozen = freeze_function(concrete, "serving_default")
    opts = CompileOptions(minimum_segment_size=minimum_segment_size,
                          use_dynamic_shape=use_dynamic_shape,
                          max_engines=DEFAULT_MAX_ENGINES, denylist=frozenset())
    with _captured_warnings() as messages:
        conversion = compile_model(frozen, opts, registry, chosen[0])
    engine = _one_engine(conversion, messages)
    model = onnx.load_from_string(conversion.onnx_models[engine])
    onnx.checker.check_model(model)

    library = {f.signature.name: f for f in conversion.graph_def.library.function}
    inside = [n.op for n in library[codegen.native_segment_name(engine)].node_def]
    converters = {op: registry.converter(op).name for op in inside}
    plugins = {op: registry.converter_plugin(op) or "?" for op in inside}

    expected = _flatten(concrete(*[tf.constant(x) for x in arrays]))
    report = Report(engine, model, conversion, converters, plugins, tuple(expected))
    for backend in chosen:
        engines = _engines_for(conversion, backend, opts)
        func = ConvertedFunction(conversion.graph_def, frozen.inputs, frozen.outputs, engines)
        try:
            result = func(*arrays)
        except AssertionError:
            raise
        except Exception as exc:  # e.g. TensorFlow wrapping an engine's failure
            stats = engines[engine].stats
            raise AssertionError(f"{backend.name}: running the converted function failed: "
                                 f"{exc}; engine {engine}: {stats.last_error}") from exc
        got = [np.asarray(result[s.name]) for s in frozen.outputs]
        if len(got) != len(expected):
            raise AssertionError(f"{backend.name}: {len(got)} outputs, TensorFlow gives "
                                 f"{len(expected)}")
        stats = engines[engine].stats
        if stats.engine_calls < 1 or stats.native_calls:
            raise AssertionError(f"{backend.name}: engine {engine} did not run "
                                 f"({stats}); last error: {stats.last_error}")
        errors = tuple(
            _compare(g, e, _tolerance_for(e.dtype, tolerance),
                     f"{backend.name}: output {k} ({frozen.outputs[k].name})")
            for k, (g, e) in enumerate(zip(got, expected, strict=True)))
        report.results[backend.name] = BackendResult(
            backend.name, engines[engine].precision, tuple(got), errors)
    return report


# -- check_op ------------------------------------------------------------------

def _op_def(op_type: str):
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(op_type)
    if op_def is None or not hasattr(tf.raw_ops, op_type):
        raise ValueError(f"{op_type!r} is not a TensorFlow op with a tf.raw_ops function")
    return op_def


def check_op(op_type: str, inputs: Sequence[Any] | Mapping[str, Any],
             attrs: Mapping[str, Any] | None = None, *,
             specs: Sequence[tf.TensorSpec] | None = None,
             backends: Sequence[str] | None = None,
             tolerance: ToleranceSpec = None,
             registry: Registry | None = None,
             use_dynamic_shape: bool = False) -> Report:
    """``check_conversion`` of a function made of one ``tf.raw_ops.<op_type>`` node.

    ``inputs`` follow the op's input arguments, in order or by name: a numpy
    array (or anything ``np.asarray`` takes) becomes a function input, a
    ``Const(value)`` a constant in the graph, and a list argument (such as
    ConcatV2's ``values``) takes a list of those. At least one input must not
    be a ``Const``. ``attrs`` are the op's attributes that TensorFlow does not
    infer from the inputs. ``specs`` describe the non-Const inputs, in order.
    """
    op_def = _op_def(op_type)
    arg_names = [a.name for a in op_def.input_arg]
    if isinstance(inputs, Mapping):
        unknown = sorted(set(inputs) - set(arg_names))
        if unknown:
            raise ValueError(f"{op_type} has no inputs {unknown}; its inputs are {arg_names}")
        given = [(name, inputs[name]) for name in arg_names if name in inputs]
    else:
        if len(inputs) > len(arg_names):
            raise ValueError(f"{op_type} takes {len(arg_names)} inputs {arg_names}, "
                             f"got {len(inputs)}")
        given = list(zip(arg_names, inputs, strict=False))
    is_list = {a.name: bool(a.number_attr or a.type_list_attr) for a in op_def.input_arg}

    feeds: list[np.ndarray] = []

    def place(value: Any) -> Any:
        if isinstance(value, Const):
            return value
        feeds.append(np.asarray(value))
        return len(feeds) - 1

    layout = []
    for name, value in given:
        if is_list[name]:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"input {name!r} of {op_type} is a list: pass a list of arrays")
            layout.append((name, [place(v) for v in value], True))
        else:
            layout.append((name, place(value), False))
    if not feeds:
        raise ValueError(f"check_op({op_type!r}) needs at least one input that is not a Const: "
                         "Grappler folds an op whose inputs are all constants")
    raw = getattr(tf.raw_ops, op_type)
    extra = dict(attrs or {})

    def materialize(slot: Any, args: Sequence[tf.Tensor]) -> tf.Tensor:
        return tf.constant(slot.array()) if isinstance(slot, Const) else args[slot]

    def one_op(*args: tf.Tensor) -> object:
        kwargs = {name: [materialize(s, args) for s in slot] if listed else
                  materialize(slot, args) for name, slot, listed in layout}
        out = raw(**kwargs, **extra)
        return tuple(out) if isinstance(out, (list, tuple)) else out

    one_op.__name__ = f"check_{op_type}"
    return check_conversion(one_op, feeds, specs=specs, backends=backends, tolerance=tolerance,
                            registry=registry, use_dynamic_shape=use_dynamic_shape)


# -- direct lowering (no segmentation) ---------------------------------------------

def trace(fn: Callable[..., object], specs: Sequence[tf.TensorSpec]) -> tuple[irmod.IR, list[str],
                                                                             list[str]]:
    """Trace and freeze ``fn`` (no Grappler); returns the IR and its input and output refs."""
    concrete = tf.function(fn).get_concrete_function(*specs)
    frozen = convert_variables_to_constants_v2(concrete)
    g = irmod.from_graph_def(frozen.graph.as_graph_def())
    ins = [irmod.tensor_ref(*irmod.parse_input(t.name)[:2]) for t in frozen.inputs]
    outs = [irmod.tensor_ref(*irmod.parse_input(t.name)[:2]) for t in frozen.outputs]
    return g, ins, outs


def lower_function(fn: Callable[..., object], specs: Sequence[tf.TensorSpec],
                   registry: Registry | None = None, backend: str | None = None
                   ) -> onnx.ModelProto:
    """``fn`` lowered into one ONNX model (every node but its Placeholders).

    Plugin layers are lowered for ``backend``: kept where it lowers them natively,
    else decomposed; ``None`` (the default) gives the portable, standard ONNX model.
    """
    registry = registry or get_registry()
    g, ins, outs = trace(fn, specs)
    members = [n for n in g.nodes if g.nodes[n]["op"] not in ("Placeholder", "NoOp")]
    lowered = lower_segment(g, plan_segment(g, members), registry, "under_test", outputs=outs)
    if [s.ref for s in lowered.inputs] != ins:
        raise AssertionError(f"segment inputs {lowered.inputs} differ from function inputs {ins}")
    return layers.resolve(lowered.model, registry, backend)


def run_onnx(model: onnx.ModelProto, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run an ONNX model on ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, inputs, strict=True)))


def check_function(fn: Callable[..., object], inputs: Sequence[np.ndarray], *,
                   specs: Sequence[tf.TensorSpec] | None = None, rtol: float = 1e-5,
                   atol: float = 1e-5, registry: Registry | None = None) -> onnx.ModelProto:
    """Assert that ``fn`` lowered to ONNX gives TensorFlow's results on ``inputs``.

    ``specs`` default to the inputs' exact shapes and dtypes; pass specs with
    None dims to check dynamic shapes. Returns the ONNX model.
    """
    specs = specs or [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)) for x in inputs]
    model = lower_function(fn, specs, registry)
    onnx.checker.check_model(model)
    expected = fn(*[tf.constant(x) for x in inputs])
    expected = [expected] if not isinstance(expected, (list, tuple)) else list(expected)
    got = run_onnx(model, inputs)
    assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
    for k, (g, e) in enumerate(zip(got, expected, strict=True)):
        e = np.asarray(e)
        assert g.shape == e.shape, f"output {k}: shape {g.shape}, TensorFlow gives {e.shape}"
        assert g.dtype == e.dtype, f"output {k}: dtype {g.dtype}, TensorFlow gives {e.dtype}"
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"output {k}")
    return model

