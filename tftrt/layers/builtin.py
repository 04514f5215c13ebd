"""The built-in plugin layers, registered as a plugin's would be."""

from __future__ import annotations

from tftrt.layers import nms
from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.layers import PluginLayer


@hookimpl
def tftrt_plugin_layers() -> list[PluginLayer]:
    return [nms.LAYER]
