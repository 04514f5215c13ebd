"""The plugin manager and the registry built from it: converters, backends,
partitioners, cost models, graph passes and plugin layers."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from dataclasses import dataclass

import pluggy

import tftrt.env as env
from tftrt.plugins import hookspecs
from tftrt.plugins.layers import LayerLowering, PluginLayer
from tftrt.plugins.partitioning import CostModel, Partitioner
from tftrt.plugins.passes import PASS_POINTS, GraphPass
from tftrt.plugins.types import EngineBackend, OpConverter

log = logging.getLogger("tftrt.plugins")

# Loaded when the tftrt distribution's own entry points are not installed
# (running from a source tree); the same modules the entry points name.
BUILTIN_PLUGINS = (
    "tftrt.converters.builtin",
    "tftrt.engines.openvino_backend",
    "tftrt.engines.onnxruntime_backend",
    "tftrt.engines.tensorrt_backend",
    "tftrt.compiler.partitioners",
    "tftrt.layers.builtin",
)


class PluginConflictError(RuntimeError):
    """Two plugins register the same name (a partitioner, pass, layer, ...)."""


class ConverterConflictError(PluginConflictError):
    """Two plugins register one op type at the same priority."""


@dataclass(frozen=True)
class _Entry:
    converter: OpConverter
    plugin: str


class Registry:
    """Op type -> converter, and backend name -> backend, from all plugins."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.plugin_manager = pm
        self._converters: dict[str, _Entry] = {}
        self._backends: dict[str, EngineBackend] = {}
        for conv, plugin in _contributions(pm, pm.hook.tftrt_op_converters):
            for op in conv.op_types:
                self._add_converter(op, conv, plugin)
        self._partitioners = _by_name(pm, pm.hook.tftrt_partitioners, "partitioner",
                                      lambda p: p.name)
        self._cost_models = _by_name(pm, pm.hook.tftrt_cost_models, "cost model",
                                     lambda m: m.name)
        self._layers = _by_name(pm, pm.hook.tftrt_plugin_layers, "plugin layer",
                                lambda layer: layer.op_type)
        passes = _by_name(pm, pm.hook.tftrt_graph_passes, "graph pass",
                          lambda p: (p.point, p.name))
        for (point, name), (_, plugin) in passes.items():
            if point not in PASS_POINTS:
                raise ValueError(f"graph pass {name!r} of plugin {plugin!r} names the point "
                                 f"{point!r}; the points are {list(PASS_POINTS)}")
        self._passes = sorted(passes.values(), key=lambda e: (e[0].order, e[0].name))
        for impl in pm.hook.tftrt_engine_backends.get_hookimpls():
            for backend in impl.function() or []:
                if backend.name in self._backends:
                    raise ConverterConflictError(
                        f"engine backend {backend.name!r} is registered twice")
                self._backends[backend.name] = backend
        self.fake_ops = env.get("TF_TRT_OP_FAKELIST")  # read once, as TF-TRT does

    def _add_converter(self, op: str, conv: OpConverter, plugin: str) -> None:
        old = self._converters.get(op)
        if old is not None:
            if conv.priority == old.converter.priority:
                raise ConverterConflictError(
                    f"op {op!r} has converters from {old.plugin!r} and {plugin!r} at the same "
                    f"priority {conv.priority}; give the override a higher priority")
            if conv.priority < old.converter.priority:
                return
            log.info("converter for %s from %s overrides %s", op, plugin, old.plugin)
        self._converters[op] = _Entry(conv, plugin)

    def converter(self, op_type: str) -> OpConverter | None:
        """The converter that wins for ``op_type``, or None."""
        entry = self._converters.get(op_type)
        return entry.converter if entry else None

    def converter_plugin(self, op_type: str) -> str | None:
        entry = self._converters.get(op_type)
        return entry.plugin if entry else None

    def supported_ops(self) -> list[str]:
        return sorted(self._converters)

    def backend(self, name: str) -> EngineBackend:
        try:
            return self._backends[name]
        except KeyError:
            raise ValueError(
                f"unknown engine backend {name!r}; registered: {sorted(self._backends)}"
            ) from None

    def backend_names(self) -> list[str]:
        return sorted(self._backends)

    def partitioner(self, name: str) -> tuple[Partitioner, str]:
        """The partitioner called ``name`` and the plugin that registered it."""
        return _lookup(self._partitioners, name, "partitioner")

    def partitioner_names(self) -> list[str]:
        return sorted(self._partitioners)

    def cost_model(self, name: str) -> tuple[CostModel, str]:
        """The cost model called ``name`` and the plugin that registered it."""
        return _lookup(self._cost_models, name, "cost model")

    def cost_model_names(self) -> list[str]:
        return sorted(self._cost_models)

    def graph_passes(self, point: str) -> list[tuple[GraphPass, str]]:
        """The passes of ``point`` with their plugins, in the order they run."""
        return [(p, plugin) for p, plugin in self._passes if p.point == point]

    def plugin_layer(self, op_type: str) -> PluginLayer | None:
        entry = self._layers.get(op_type)
        return entry[0] if entry else None

    def layer_lowerings(self, backend: str) -> list[tuple[str, LayerLowering]]:
        """(op type, lowering) of every plugin layer with an available lowering for ``backend``."""
        out = []
        for op_type, (layer, _) in sorted(self._layers.items()):
            lowering = layer.lowering(backend)
            if lowering is not None:
                out.append((op_type, lowering))
        return out


def _lookup(table: dict, name: str, what: str) -> tuple:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; registered: {sorted(table)}") from None


def _contributions(pm: pluggy.PluginManager, hook) -> list[tuple[object, str]]:
    """Everything the implementations of ``hook`` return, each with its plugin's name."""
    out = []
    for impl in hook.get_hookimpls():
        plugin = pm.get_name(impl.plugin) or repr(impl.plugin)
        out.extend((item, plugin) for item in impl.function() or [])
    return out


def _by_name(pm: pluggy.PluginManager, hook, what: str, key) -> dict:
    """key(item) -> (item, plugin) over ``hook``'s contributions; a key twice is a conflict."""
    found: dict = {}
    for item, plugin in _contributions(pm, hook):
        k = key(item)
        if k in found:
            raise PluginConflictError(f"{what} {k!r} is registered by {found[k][1]!r} and "
                                      f"{plugin!r}")
        found[k] = (item, plugin)
    return found


# The built-ins that serve conversion only; they import TensorFlow (the compiler).
CONVERSION_PLUGINS = ("tftrt.converters.builtin", "tftrt.compiler.partitioners")


def _load_runtime_entry_points(pm: pluggy.PluginManager) -> None:
    """The ``tftrt`` entry points but tftrt's conversion plugins; one that fails to import
    is skipped with a warning (a deployment image may lack what a plugin needs)."""
    for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        if ep.value.split(":")[0] in CONVERSION_PLUGINS:
            continue
        try:
            module = ep.load()
        except Exception as exc:
            log.warning("tftrt plugin %s (%s) not loaded: %s", ep.name, ep.value, exc)
            continue
        if not pm.is_registered(module):
            pm.register(module, name=ep.name)


def make_plugin_manager(extra_plugins: tuple[object, ...] = (),
                        runtime_only: bool = False) -> pluggy.PluginManager:
    """A plugin manager with the built-ins, the ``tftrt`` entry points and ``extra_plugins``;
    ``runtime_only``: without the conversion plugins, so that no TensorFlow is imported."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if runtime_only:
        _load_runtime_entry_points(pm)
    else:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    for modname in BUILTIN_PLUGINS:
        if runtime_only and modname in CONVERSION_PLUGINS:
            continue
        module = importlib.import_module(modname)
        if not pm.is_registered(module):
            pm.register(module, name=modname)
    for plugin in extra_plugins:
        if pm.is_registered(plugin):
            continue
        base = getattr(plugin, "__name__", None) or type(plugin).__name__
        name, k = base, 1
        while pm.get_plugin(name) is not None:
            k += 1
            name = f"{base}#{k}"
        pm.register(plugin, name=name)
    return pm


_REGISTRY: Registry | None = None
_RUNTIME_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry (built on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry(make_plugin_manager())
    return _REGISTRY


def runtime_registry() -> Registry:
    """What running engines needs (backends, plugin layers): the full registry where this
    process has built it, else one without the conversion plugins, which imports no
    TensorFlow (``tftrt.runtime.load``)."""
    global _RUNTIME_REGISTRY
    if _REGISTRY is not None:
        return _REGISTRY
    if _RUNTIME_REGISTRY is None:
        _RUNTIME_REGISTRY = Registry(make_plugin_manager(runtime_only=True))
    return _RUNTIME_REGISTRY


def reset_registry(*extra_plugins: object) -> Registry:
    """Rebuild the registry, e.g. after installing a plugin package or for tests."""
    global _REGISTRY
    _REGISTRY = Registry(make_plugin_manager(tuple(extra_plugins)))
    return _REGISTRY
