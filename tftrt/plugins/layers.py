"""The contract of plugin layers: custom ONNX ops in the ``tftrt`` domain.

A converter emits a layer as one ONNX node of domain :data:`DOMAIN`. Before an
engine is built, each such node is either kept, for a backend that lowers the
layer natively (a :class:`LayerLowering` for that backend, e.g. an OpenVINO
frontend extension), or replaced by the layer's portable decomposition into
standard ONNX, which every backend runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DOMAIN = "tftrt"
DOMAIN_VERSION = 1
# Set to 1 to run every layer's portable decomposition, whatever the backend lowers.
ENV_PORTABLE = "TFTRT_PORTABLE_LAYERS"


@dataclass(frozen=True)
class LayerNode:
    """A ``tftrt``-domain ONNX node as a lowering sees it."""

    name: str
    op_type: str
    inputs: tuple[str, ...]  # ONNX tensor names
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]  # decoded: int, float, str, list of int/float/str

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


# decompose(ctx, node) -> one ONNX tensor name per node output. ``ctx`` is a
# tftrt.converters.LoweringContext whose names do not clash with the model's; the
# nodes it gets must be standard ONNX (the default domain).
DecomposeFn = Callable[[Any, LayerNode], Sequence[str]]


@dataclass(frozen=True)
class LayerLowering:
    """How one backend runs a layer natively.

    ``extension()`` builds what the backend installs before it reads a model:
    for ``openvino``, an ``openvino.frontend.onnx.ConversionExtension`` for the
    layer's op in the ``tftrt`` domain (added to the backend's ``openvino.Core``).
    """

    backend: str
    extension: Callable[[], Any]
    available: Callable[[], bool] = lambda: True


@dataclass(frozen=True)
class PluginLayer:
    """A custom op of the ``tftrt`` domain with its lowerings."""

    op_type: str
    decompose: DecomposeFn
    lowerings: tuple[LayerLowering, ...] = ()
    description: str = ""

    def lowering(self, backend: str) -> LayerLowering | None:
        """This layer's native lowering for ``backend``, if it has one that is available."""
        for lowering in self.lowerings:
            if lowering.backend == backend and lowering.available():
                return lowering
        return None
