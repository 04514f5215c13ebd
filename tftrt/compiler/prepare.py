"""The IR passes between import and capability: what the model's facts tell the converters.

Each pass takes the IR and returns the IR:
  * the function library, for the converters of control flow (``subgraphs``);
  * static tables' value ranges onto their resource nodes (``intervals`` reads them);
  * constant folding of every all-constant subgraph (``constfold``);
  * control flow whose functions do not convert entirely is lowered into the graph, so
    that its body's ops become candidates (``controlflow``).
"""

from __future__ import annotations

from collections.abc import Mapping

from tftrt.compiler import capability, constfold, controlflow
from tftrt.compiler.freeze import FrozenModel
from tftrt.compiler.ir import IR
from tftrt.compiler.subgraphs import FunctionLowering
from tftrt.plugins.manager import Registry
from tftrt.specs import parse_input


def attach_functions(g: IR, registry: Registry, backend: object | None,
                     dynamic_shape: bool) -> IR:
    """``g`` with its function library where converters find it (``NodeInfo.functions``)."""
    g.graph["functions"] = FunctionLowering(g.graph.get("library"), registry, backend,
                                            dynamic_shape)
    return g


def annotate_tables(g: IR, table_ranges: Mapping[str, tuple[float, float]]) -> IR:
    """Resource nodes of static tables get ``table_range``: (min, max) of their values."""
    for name, rng in table_ranges.items():
        if name in g:
            g.nodes[name]["table_range"] = rng
    return g


def fold(g: IR, keep: frozenset[str], fold_variable_reads: bool = True) -> IR:
    """Constant folding, keeping the nodes ``keep``."""
    return constfold.fold_constants(g, keep, fold_variable_reads=fold_variable_reads)


def prepare(g: IR, frozen: FrozenModel, registry: Registry, backend: object | None = None,
            dynamic_shape: bool = False) -> IR:
    """All passes, in order, for the model ``frozen`` imported as ``g``."""
    g = attach_functions(g, registry, backend, dynamic_shape)
    g = annotate_tables(g, frozen.table_ranges)
    keep = frozenset(parse_input(t.ref)[0] for t in frozen.inputs + frozen.outputs)
    g = fold(g, keep, fold_variable_reads=frozen.frozen)
    flow = controlflow.control_flow_nodes(g)
    if flow:
        facts = capability.backend_facts(g, backend)
        reasons = {n: capability.node_reason(g, n, registry, frozenset(), frozenset(),
                                             dynamic_shape, facts) for n in flow}
        lowered = controlflow.lower_unconvertible(
            g, reasons, [t.ref for t in frozen.inputs + frozen.outputs],
            frozen.variable_values)
        if lowered is not g:
            g = fold(attach_functions(lowered, registry, backend, dynamic_shape), keep,
                     fold_variable_reads=frozen.frozen)
    return g
