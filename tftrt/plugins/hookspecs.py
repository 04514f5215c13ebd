"""Hook specifications of tftrt's plugin system.

A plugin is any module or object with functions marked ``@hookimpl`` named like
the specs below. Third-party packages register theirs in the ``tftrt``
entry-point group; the built-ins are registered the same way.

Every hook here is a *collecting* hook: tftrt calls each plugin's implementation
once, when it builds its registry (``tftrt.plugins.get_registry()``, or
``reset_registry()`` after installing a package), and gathers what they return.
None is ``firstresult``: no plugin hides another's contributions; conflicts
(the same name twice) are errors, except for converters, which resolve by
``priority``. Implementations must be cheap and free of side effects: import
heavy libraries inside the functions they return, not at module level. The
docstrings below are the contracts; ``docs/plugins.md`` shows each with an example.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from tftrt.plugins.layers import PluginLayer
    from tftrt.plugins.partitioning import CostModel, Partitioner
    from tftrt.plugins.passes import GraphPass
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


@hookspec
def tftrt_partitioners() -> list[Partitioner]:
    """Return the partitioners this plugin provides.

    A partitioner groups the nodes the capability pass marked supported into
    engine segments. It is chosen by name: ``TrtGraphConverterV2(partitioner=)``,
    else ``$TFTRT_PARTITIONER``, else ``"union-find"`` (TF-TRT's algorithm).

    :returns: :class:`tftrt.plugins.partitioning.Partitioner` objects, each with a
        name no other plugin uses (a second one is an error naming both plugins).

    Contract of ``Partitioner.partition(request)``:

    - It receives a :class:`~tftrt.plugins.partitioning.PartitionRequest` and
      returns groups of node names, one group per segment, and must not modify
      ``request.graph``.
    - Every name is a node of the graph marked ``supported``; no node is in two
      groups; contracting each group into one node leaves the graph acyclic
      (no path leaves a group and comes back into it through other nodes; data
      and control edges both count).
    - tftrt checks all of that and refuses a partition that breaks it with a
      ``tftrt.errors.PartitionError`` naming the partitioner and its plugin; it
      never repairs one.
    - Afterwards tftrt applies the same refinements to every partitioner's
      segments: constants leaving a segment stay outside, segments without a data
      input are dropped, then ``minimum_segment_size`` and the engine cap
      (``TF_TRT_MAX_ALLOWED_ENGINES``, the largest segments kept). A partitioner
      that wants to choose which segments survive the cap returns at most
      ``request.max_engines`` groups.
    """


@hookspec
def tftrt_cost_models() -> list[CostModel]:
    """Return the cost models this plugin provides (for cost-aware partitioners).

    :returns: :class:`tftrt.plugins.partitioning.CostModel` objects with names no
        other plugin uses.

    Contract of ``CostModel.estimate(request, segments)``: one
    :class:`~tftrt.plugins.partitioning.SegmentCost` per node set in ``segments``,
    in order, in milliseconds per call of the model: the segment's native time
    (TensorFlow running those nodes inside the graph), its engine time, and its
    boundary time (one engine call plus moving the segment's inputs and outputs).
    Node sets may be any acyclic groups of supported nodes, including unions of
    segments. ``unusable(request)`` says why the model cannot serve a request
    (e.g. it measures and has no sample inputs); the partitioner then falls back
    to the ``analytic`` model and logs why. ``compare(request, partitions)``, if
    the model has one, returns milliseconds per call of the whole graph with each
    partition's node sets as its engines, in order (an empty partition: no
    engine), or None where it cannot time this request; the cost partitioner
    keeps the fastest of the partitions it offers.
    """


@hookspec
def tftrt_graph_passes() -> list[GraphPass]:
    """Return the graph passes this plugin provides.

    :returns: :class:`tftrt.plugins.passes.GraphPass` objects; each names one of the
        points in :data:`tftrt.plugins.passes.PASS_POINTS` and a name unique
        among the passes of that point.

    Contract of ``GraphPass.run(ir, context)``:

    - It receives the IR (a ``networkx.MultiDiGraph``, see docs/architecture.md)
      and a :class:`~tftrt.plugins.passes.PassContext`, and returns the IR to
      continue with: the same graph changed in place, or a new one.
    - It keeps the signature's tensors (``context.inputs``, ``context.outputs``)
      computable, keeps each node's ``node_def`` consistent with its edges, and
      gives a node it adds the attributes import gives (``op``, ``node_def``,
      ``index``, ``output_dtypes``, ``output_shapes``). A large Const's
      ``node_def`` is the frozen graph's own (weights are not copied): a pass
      changing a Const gives it a new ``node_def`` rather than editing it in place.
    - At ``before_segmentation``, nodes carry ``supported``/``reason``; a node
      added without them is marked by the capability pass after the pass.
    - At ``after_segmentation``, nodes of a segment carry ``segment`` (an int); a
      pass may move nodes between segments or out of them. The result is checked
      as a partitioner's is, and a bad one is refused naming the pass.
    - Each pass run is listed in ``converter.summary()`` with its effect (nodes
      added, removed and changed).
    """


@hookspec
def tftrt_plugin_layers() -> list[PluginLayer]:
    """Return the plugin layers this plugin provides.

    A plugin layer is an ONNX op of the ``tftrt`` domain that a converter emits
    (``ctx.node(op_type, ..., domain="tftrt")``).

    :returns: :class:`tftrt.plugins.layers.PluginLayer` objects, one per op type
        (a second one for the same op type is an error naming both plugins).

    Contract:

    - ``decompose(ctx, node)`` lowers one node into standard ONNX, giving results
      identical to every native lowering; it is used for every backend without
      an available native lowering of the layer, and for INT8 engines.
    - A ``LayerLowering`` for a backend gives what that backend installs to run
      the op natively (see :class:`tftrt.plugins.layers.LayerLowering`).
    - An engine's ONNX keeps a ``tftrt`` node only for a backend that lowers it;
      ``TFTRT_PORTABLE_LAYERS=1`` forces the decomposition everywhere.
    """
