"""The contracts of partitioners and cost models.

A partitioner decides *how* the nodes the capability pass marked supported are
grouped into engine segments; a cost model says what a candidate segment would
cost as an engine and natively. Both are plain data plus a function, declared by
plugins through ``tftrt_partitioners`` and ``tftrt_cost_models``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx
    import numpy as np

    from tftrt.plugins.manager import Registry
    from tftrt.plugins.types import EngineBackend

DEFAULT_PARTITIONER = "union-find"
ENV_PARTITIONER = "TFTRT_PARTITIONER"


@dataclass(frozen=True)
class PartitionRequest:
    """What a partitioner (and a cost model) is given.

    ``graph`` is the capability-marked IR: a ``networkx.MultiDiGraph`` keyed by
    node name whose nodes carry ``op``, ``supported`` (bool), ``reason``,
    ``index`` (GraphDef order), ``output_dtypes`` and ``output_shapes``; edges carry
    ``control``, ``src_slot`` and ``dst_slot``. Partitioners must not modify it.
    """

    graph: nx.MultiDiGraph
    minimum_segment_size: int
    max_engines: int  # <= 0: no cap
    backend: EngineBackend
    registry: Registry
    precision_mode: str = "FP32"
    dynamic_shape: bool = False
    # partitioner_options= of the converter, as given
    options: Mapping[str, Any] = field(default_factory=dict)
    # Sample feeds, each mapping a graph tensor ("node:slot") to an array; empty when the
    # converter was given none (see the cost partitioner's "inputs" option).
    sample_inputs: Sequence[Mapping[str, np.ndarray]] = ()
    # resource Placeholder name -> tf.Variable, when the graph was not frozen
    variables: Mapping[str, Any] = field(default_factory=dict)
    # the signature's graph tensors ("node:slot")
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


# partition(request) -> groups of node names, one group per engine segment
PartitionFn = Callable[[PartitionRequest], Iterable[Iterable[str]]]


@dataclass(frozen=True)
class Partitioner:
    """A named way to group supported nodes into segments."""

    name: str
    partition: PartitionFn
    description: str = ""


@dataclass(frozen=True)
class SegmentCost:
    """A candidate segment's estimated (or measured) cost, in milliseconds per call."""

    native_ms: float  # TensorFlow running the segment's nodes inside the graph
    engine_ms: float  # the engine computing the segment
    boundary_ms: float  # one engine call plus moving its inputs and outputs

    @property
    def gain_ms(self) -> float:
        """What converting the segment saves per call (negative: the engine loses)."""
        return self.native_ms - self.engine_ms - self.boundary_ms


# estimate(request, segments) -> one SegmentCost per segment, in order
EstimateFn = Callable[[PartitionRequest, Sequence[frozenset[str]]], list[SegmentCost]]


# compare(request, partitions) -> milliseconds per call of the whole graph with each
# partition's segments as its engines, in order; None where it cannot time this request
CompareFn = Callable[[PartitionRequest, Sequence[Sequence[frozenset[str]]]],
                     list[float] | None]


@dataclass(frozen=True)
class CostModel:
    """A named way to cost candidate segments.

    ``unusable(request)`` returns why the model cannot serve this request (e.g. it
    needs sample inputs and has none), or None. ``compare``, where a model has it,
    times whole partitions: the partitioner checks the segments it chose against
    the alternatives with it, because boundary costs do not add up (what a switch
    between TensorFlow and the engine runtime costs depends on what runs around it).
    """

    name: str
    estimate: EstimateFn
    unusable: Callable[[PartitionRequest], str | None] = lambda request: None
    description: str = ""
    compare: CompareFn | None = None
