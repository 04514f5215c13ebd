"""The contract of graph passes: IR-to-IR rewrites at named points of the pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx

# The points, in pipeline order:
#   after_import         the IR as imported from the frozen GraphDef (shapes annotated)
#   before_segmentation  after the built-in graph passes and the capability pass: nodes
#                        carry ``supported`` and ``reason``
#   after_segmentation   nodes of engine segments carry ``segment`` (an int, one per
#                        segment); the others carry none
AFTER_IMPORT = "after_import"
BEFORE_SEGMENTATION = "before_segmentation"
AFTER_SEGMENTATION = "after_segmentation"
PASS_POINTS = (AFTER_IMPORT, BEFORE_SEGMENTATION, AFTER_SEGMENTATION)

# The node attribute holding a node's segment at after_segmentation.
SEGMENT_ATTR = "segment"


@dataclass(frozen=True)
class PassContext:
    """What a pass may read besides the IR."""

    point: str
    # graph tensors ("node:slot") of the signature: a pass must keep them computable
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    # partitioner_options= of the converter, as given (passes may read their own keys)
    options: Mapping[str, Any] = field(default_factory=dict)


# run(ir, context) -> ir (a new graph, or the one given, changed)
PassFn = Callable[["nx.MultiDiGraph", PassContext], "nx.MultiDiGraph"]


@dataclass(frozen=True)
class GraphPass:
    """A rewrite of the IR at one of :data:`PASS_POINTS`.

    Passes of one point run by ``order`` (lower first), then by name.
    """

    name: str
    point: str
    run: PassFn
    order: int = 0
    description: str = ""


@dataclass(frozen=True)
class PassRecord:
    """What one pass did, for the summary."""

    name: str
    point: str
    plugin: str
    nodes_before: int
    nodes_after: int
    added: int
    removed: int
    changed: int  # nodes kept whose op, inputs, support mark or segment changed

    def describe(self) -> str:
        effect = (f"{self.nodes_before} -> {self.nodes_after} nodes "
                  f"({self.added} added, {self.removed} removed, {self.changed} changed)")
        return f"{self.point}: {self.name} (plugin {self.plugin}): {effect}"
