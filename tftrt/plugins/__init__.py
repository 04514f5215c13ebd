"""Plugin system: hook specifications and the plugin manager."""

from tftrt.plugins.hookspecs import hookimpl, hookspec
from tftrt.plugins.manager import (
    ConverterConflictError,
    PluginConflictError,
    Registry,
    get_registry,
    reset_registry,
)

__all__ = [
    "ConverterConflictError",
    "PluginConflictError",
    "Registry",
    "get_registry",
    "hookimpl",
    "hookspec",
    "reset_registry",
]
