"""Running the graph passes plugins register at a point of the pipeline.

Built-in passes register the same way (``tftrt_graph_passes``), so a point's
passes all run here, by their ``order``, each recorded for the summary.
"""

from __future__ import annotations

import logging

from tftrt.compiler.ir import IR, forget_decoded
from tftrt.errors import PartitionError
from tftrt.plugins.manager import Registry
from tftrt.plugins.passes import SEGMENT_ATTR, PassContext, PassRecord

log = logging.getLogger("tftrt.passes")

# The node data a pass's effect is judged by (besides the node's inputs).
_WATCHED = ("op", "supported", SEGMENT_ATTR)


def _fingerprint(g: IR, n: str) -> tuple:
    d = g.nodes[n]
    ins = sorted((u, e.get("src_slot"), e.get("dst_slot"), e.get("control"))
                 for u, _, e in g.in_edges(n, data=True))
    return tuple(d.get(k) for k in _WATCHED) + (tuple(ins),)


def run_passes(g: IR, ctx: PassContext, registry: Registry) -> tuple[IR, list[PassRecord]]:
    """Run the passes registered at ``ctx.point`` on ``g``; returns the IR and what each did."""
    records = []
    for graph_pass, plugin in registry.graph_passes(ctx.point):
        before = {n: _fingerprint(g, n) for n in g.nodes}
        try:
            out = graph_pass.run(g, ctx)
        except Exception as exc:
            raise PartitionError(f"graph pass {graph_pass.name!r} of plugin {plugin!r} at "
                                 f"{ctx.point} failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(out, IR):
            raise PartitionError(f"graph pass {graph_pass.name!r} of plugin {plugin!r} at "
                                 f"{ctx.point} returned {type(out).__name__}, not the IR "
                                 f"(a networkx.MultiDiGraph)")
        forget_decoded(out)  # the pass may have edited NodeDefs in place
        kept = [n for n in out.nodes if n in before]
        record = PassRecord(
            name=graph_pass.name, point=ctx.point, plugin=plugin,
            nodes_before=len(before), nodes_after=out.number_of_nodes(),
            added=out.number_of_nodes() - len(kept), removed=len(before) - len(kept),
            changed=sum(1 for n in kept if _fingerprint(out, n) != before[n]))
        log.info("graph pass %s", record.describe())
        records.append(record)
        g = out
    return g, records
