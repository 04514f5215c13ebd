"""The built-in partitioners and cost models, registered as a plugin's would be."""

from __future__ import annotations

from tftrt.compiler import cost_partitioner, costs, segment
from tftrt.plugins.hookspecs import hookimpl
from tftrt.plugins.partitioning import CostModel, Partitioner, PartitionRequest


def union_find(request: PartitionRequest) -> list[frozenset[str]]:
    """TF-TRT's union-find contraction of the supported nodes (``segment.cluster``)."""
    return [s.nodes for s in segment.cluster(request.graph)]


UNION_FIND = Partitioner(
    "union-find", union_find,
    "TF-TRT's algorithm: contract supported neighbours from the outputs toward the inputs "
    "unless another path joins them")
COST = Partitioner(
    "cost", cost_partitioner.partition,
    "union-find's clusters, kept, merged or dropped so that each engine pays for itself "
    "by the chosen cost model (option cost_model: measured with sample inputs, else "
    "analytic)")


@hookimpl
def tftrt_partitioners() -> list[Partitioner]:
    return [UNION_FIND, COST]


@hookimpl
def tftrt_cost_models() -> list[CostModel]:
    return [costs.ANALYTIC, costs.MEASURED]
