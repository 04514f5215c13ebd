"""Hook specifications of tftrt's plugin system.

A plugin is any module or object with functions marked ``@hookimpl`` named like
the specs below. Third-party packages register theirs in the ``tftrt``
entry-point group; the built-ins are registered the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from tftrt.plugins.types import EngineBackend, OpConverter

PROJECT = "tftrt"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def tftrt_op_converters() -> list[OpConverter]:
    """Return the op converters this plugin provides.

    Each converter names the TensorFlow op types it lowers. Two converters for
    one op type at the same priority are a conflict; a higher ``priority``
    overrides deliberately.
    """


@hookspec
def tftrt_engine_backends() -> list[EngineBackend]:
    """Return the engine backends this plugin provides (one per name)."""
