"""The built-in cost models: ``analytic`` (from shapes alone) and ``measured``.

``analytic`` counts each node's floating-point work and bytes from its inferred
shapes and prices them with a few machine constants: TensorFlow's per-op
overhead and throughput, the engine's throughput, the cost of one engine call
from the graph (a py-function round trip) and of moving boundary tensors. It
needs no inputs and no build, so it serves conversions without sample inputs.
The constants were measured on this project's reference machine (2 x86 cores,
AVX-512; see docs/plugins.md); override any of them with the partitioner
option ``cost_constants={...}``.

``measured`` (``compiler/measure.py``) times each candidate for real on the
sample inputs, and whole partitions for the partitioner to check its choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from tftrt.compiler import ir as irmod
from tftrt.compiler.ir import IR
from tftrt.compiler.lowering import plan_segment, tensor_spec
from tftrt.compiler.segment import PASS_THROUGH_OPS
from tftrt.plugins.partitioning import CostModel, PartitionRequest, SegmentCost


@dataclass(frozen=True)
class Constants:
    """Machine constants of the analytic model (milliseconds, FLOP and bytes)."""

    native_op_ms: float = 0.03  # TensorFlow's cost per op in a converted graph's executor
    native_flops_per_ms: float = 1.2e8  # TensorFlow's arithmetic throughput (float32)
    native_bytes_per_ms: float = 4e6  # TensorFlow's elementwise memory throughput
    engine_op_ms: float = 0.0005  # per fused layer inside an engine
    engine_flops_per_ms: float = 2.8e8  # the engine's arithmetic throughput (float32)
    engine_bytes_per_ms: float = 8e6  # the engine's memory throughput
    call_ms: float = 0.3  # one engine call from the graph (py-function round trip)
    copy_bytes_per_ms: float = 4e6  # moving a boundary tensor in or out


DEFAULT_CONSTANTS = Constants()


def constants(request: PartitionRequest) -> Constants:
    """The defaults, with the request's ``cost_constants`` option applied."""
    given = dict(request.options.get("cost_constants") or {})
    unknown = set(given) - set(Constants.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown cost_constants {sorted(unknown)}; known: "
                         f"{sorted(Constants.__dataclass_fields__)}")
    return replace(DEFAULT_CONSTANTS, **{k: float(v) for k, v in given.items()})


def _elements(shape, batch: int) -> int:
    """Number of elements of ``shape``; an unknown size counts as ``batch`` (axis 0) or 1."""
    if shape is None:
        return 1
    return math.prod((batch if k == 0 else 1) if d is None or d < 0 else d
                     for k, d in enumerate(shape))


def _bytes(dtype, shape, batch: int) -> int:
    itemsize = np.dtype(dtype).itemsize if dtype is not None else 4
    return _elements(shape, batch) * itemsize


def node_work(g: IR, n: str, batch: int = 1) -> tuple[float, float]:
    """(floating-point operations, bytes touched) of one node, from its shapes."""
    d = g.nodes[n]
    op = d["op"]
    out = d["output_shapes"][0] if d["output_shapes"] else None
    out_n = _elements(out, batch)
    ins = [tensor_spec(g, r) for r in irmod.data_inputs(g, n)]
    touched = sum(_bytes(s.dtype, s.shape, batch) for s in ins) + sum(
        _bytes(dt, sh, batch) for dt, sh in zip(d["output_dtypes"], d["output_shapes"],
                                                strict=False))
    if op in ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3") and ins:
        a = ins[0].shape
        transposed = bool(irmod.attrs(g, n).get("transpose_a") or irmod.attrs(g, n).get("adj_x"))
        k = (a[-2] if transposed else a[-1]) if a else 1
        return 2.0 * out_n * (k or 1), touched
    if op.startswith("Conv") and len(ins) > 1 and ins[1].shape:
        kernel = [x or 1 for x in ins[1].shape]
        return 2.0 * out_n * math.prod(kernel[:-1]), touched
    if op.startswith("DepthwiseConv") and len(ins) > 1 and ins[1].shape:
        kernel = [x or 1 for x in ins[1].shape]
        return 2.0 * out_n * math.prod(kernel[:2]), touched
    if op.startswith(("Sum", "Mean", "Max", "Min", "Prod")) and ins:
        return float(_elements(ins[0].shape, batch)), touched
    return float(out_n), touched


def boundary_bytes(g: IR, nodes: frozenset[str], batch: int = 1) -> int:
    """Bytes of the tensors entering and leaving the segment ``nodes``."""
    plan = plan_segment(g, nodes)
    specs = [tensor_spec(g, r) for r in plan.inputs + plan.outputs]
    return sum(_bytes(s.dtype, s.shape, batch) for s in specs)


def analytic_cost(g: IR, nodes: frozenset[str], c: Constants, batch: int = 1) -> SegmentCost:
    """The analytic cost of one segment."""
    native = engine = 0.0
    for n in nodes:
        if irmod.is_const_like(g, n) or g.nodes[n]["op"] in PASS_THROUGH_OPS:
            continue
        flops, touched = node_work(g, n, batch)
        native += c.native_op_ms + max(flops / c.native_flops_per_ms,
                                       touched / c.native_bytes_per_ms)
        engine += c.engine_op_ms + max(flops / c.engine_flops_per_ms,
                                       touched / c.engine_bytes_per_ms)
    boundary = c.call_ms + boundary_bytes(g, nodes, batch) / c.copy_bytes_per_ms
    return SegmentCost(native, engine, boundary)


def _batch(request: PartitionRequest) -> int:
    """The batch size to assume for unknown dimensions: the samples', else the option's."""
    for feed in request.sample_inputs:
        for x in feed.values():
            if np.ndim(x):
                return int(np.shape(x)[0])
    return int(request.options.get("batch_size", 1))


def estimate_analytic(request: PartitionRequest, segments: Sequence[frozenset[str]]
                      ) -> list[SegmentCost]:
    c = constants(request)
    batch = _batch(request)
    return [analytic_cost(request.graph, frozenset(s), c, batch) for s in segments]


def _measured_unusable(request: PartitionRequest) -> str | None:
    if not request.sample_inputs:
        return "it needs sample inputs (partitioner_options={'inputs': input_fn})"
    return None


def _estimate_measured(request: PartitionRequest, segments: Sequence[frozenset[str]]
                       ) -> list[SegmentCost]:
    from tftrt.compiler import measure

    return measure.estimate(request, segments, constants(request))


ANALYTIC = CostModel("analytic", estimate_analytic,
                     description="FLOP and byte counts from inferred shapes, priced with "
                                 "machine constants; needs no inputs")
def _compare_measured(request: PartitionRequest,
                      partitions: Sequence[Sequence[frozenset[str]]]) -> list[float] | None:
    from tftrt.compiler import measure

    return measure.compare(request, partitions)


MEASURED = CostModel("measured", _estimate_measured, _measured_unusable,
                     description="each candidate built and timed, as an engine and in "
                                 "TensorFlow, on the sample inputs",
                     compare=_compare_measured)
