"""Differential fuzzing: random graphs, converted under random parameters, must match TF.

For each generated graph (see ``tests/fuzz_graphs.py``), saved as a SavedModel and
converted, the test asserts that the converted graph is acyclic, that every node
of the graph segmentation saw lands in exactly one place (see
``assert_node_placement``), and that the outputs equal TensorFlow's (float32 within
tolerance, int32 exactly).

The quick profile runs in the default suite. The long profile is run by hand::

    TFTRT_FUZZ_EXAMPLES=2000 python -m pytest -m slow -s tests/test_fuzz.py
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter

import networkx as nx
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, example, given, settings

import tftrt
from tests.conftest import export_module
from tests.fuzz_graphs import (
    ConvertParams,
    GraphSpec,
    OpSpec,
    build_function,
    convert_params,
    graph_specs,
)
from tftrt import trt_convert as trt
from tftrt.compiler import ir
from tftrt.compiler.codegen import ENGINE_OP, native_segment_name
from tftrt.report.summary import original_op

RTOL = 1e-4
STATS: Counter = Counter()


def assert_node_placement(conv: trt.TrtGraphConverterV2) -> None:
    """Every node of the IR segmentation saw lands in exactly one place.

    The places are the top level of the converted GraphDef and each engine's
    native segment function. A node that is not a Const is in exactly one of
    them. A Const is in at least one; besides its one home it may be copied as a
    weight into a segment function that has a data consumer of it (TF-TRT copies
    outside Const producers into segments). Nothing else appears: the top level
    holds only IR nodes and engine nodes, and the functions only IR nodes. With
    freezing disabled, a variable read whose value is known counts as a Const.
    """
    g = conv._conversion.ir  # the frozen graph, as segmentation saw it
    gd = conv.converted_graph_def
    top = [n.name for n in gd.node if n.op != ENGINE_OP]
    engines = [n.name for n in gd.node if n.op == ENGINE_OP]
    library = {f.signature.name: f for f in gd.library.function}
    assert set(library) == {native_segment_name(e) for e in engines}
    funcs = {e: [n.name for n in library[native_segment_name(e)].node_def] for e in engines}
    assert len(top) == len(set(top))
    for e, names in funcs.items():
        assert len(names) == len(set(names)), f"{e} holds a node twice"
        assert set(names) <= set(g.nodes), f"{e} holds nodes not in the IR"
    assert set(top) <= set(g.nodes), "the converted graph holds nodes not in the IR"
    for n, data in g.nodes(data=True):
        places = [e for e, names in funcs.items() if n in names] + (["<top>"] if n in top
                                                                   else [])
        if not ir.is_const_like(g, n):
            assert len(places) == 1, f"node {n} ({data['op']}) is in {places or 'no place'}"
            continue
        assert places, f"Const {n} is in no place"
        copies = [e for e in places if e != "<top>" and not any(
            dst in funcs[e] for _, dst, d in g.out_edges(n, data=True) if not d["control"])]
        assert len(copies) <= 1 and (not copies or "<top>" not in places), \
            f"Const {n} is in {places} without a consumer there"


def assert_acyclic(graph_def) -> None:
    g = ir.from_graph_def(graph_def, infer_shapes=False)
    assert nx.is_directed_acyclic_graph(g), "the converted graph has a cycle"


def assert_same(got, want, name: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{name}: {got.dtype}{got.shape} != {want.dtype}{want.shape}"
    if want.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want, err_msg=name)
        return
    scale = max(float(np.abs(want[np.isfinite(want)]).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, equal_nan=True,
                               err_msg=name)


def check_graph(spec: GraphSpec, params: ConvertParams, workdir: str) -> None:
    """Save, convert and run one graph; assert acyclic, node placement and equal outputs."""
    fn = build_function(spec)
    path = export_module(os.path.join(workdir, "model"), fn, spec.signature(), fn.variables)
    deny = ",".join(params.deny) or None
    max_engines = None if params.max_engines is None else str(params.max_engines)
    features = "disable_graph_freezing" if params.unfrozen else None
    env = {"TF_TRT_OP_DENYLIST": deny, "TF_TRT_MAX_ALLOWED_ENGINES": max_engines,
           "TF_TRT_EXPERIMENTAL_FEATURES": features}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            if value is None:
                mp.delenv(key, raising=False)
            else:
                mp.setenv(key, value)
        conv = trt.TrtGraphConverterV2(
            input_saved_model_dir=path, minimum_segment_size=params.minimum_segment_size,
            use_dynamic_shape=params.dynamic_shape, backend=params.backend)
        converted = conv.convert()
    gd = conv.converted_graph_def
    assert_acyclic(gd)
    assert_node_placement(conv)
    n_engines = sum(1 for n in gd.node if n.op == ENGINE_OP)
    runs = [converted]
    if params.save:
        out = os.path.join(workdir, "converted")
        conv.build(lambda: iter([dict(zip(spec.input_names(), spec.inputs(), strict=True))]))
        conv.save(out)
        runs += [tftrt.load(out).signatures["serving_default"],
                 tf.saved_model.load(out).signatures["serving_default"]]
    batches = [spec.batch] + ([spec.batch + 2] if spec.dynamic_batch else [])
    for k, batch in enumerate(batches):
        xs = spec.inputs(batch, seed=k)
        want = fn(*xs)
        for run in runs:
            got = run(**dict(zip(spec.input_names(), xs, strict=True)))
            assert set(got) == set(want)
            for name in want:
                assert_same(got[name], want[name].numpy(), name)
    for op in conv.engines.values():
        assert op.stats.build_failures == 0 and op.stats.run_failures == 0, op.stats.last_error
    STATS["graphs"] += 1
    g = conv._conversion.ir
    STATS["graphs_with_control_edges"] += any(d["control"] for *_, d in g.edges(data=True))
    STATS["graphs_with_int32_engine_io"] += any(
        s.dtype == np.int32 for op in conv.engines.values() for s in op.inputs + op.outputs)
    STATS["engines"] += n_engines
    STATS["graphs_with_variables_baked_into_engines"] += any(
        original_op(nd) == "ReadVariableOp" for f in gd.library.function for nd in f.node_def)
    STATS["graphs_reading_variables_natively"] += any(n.op == "ReadVariableOp" for n in gd.node)
    STATS["graphs_with_engines"] += bool(n_engines)
    STATS["graphs_with_native_ops"] += any(n.op != ENGINE_OP and n.op not in (
        "Placeholder", "Identity", "Const", "NoOp") for n in gd.node)


def _run(spec: GraphSpec, params: ConvertParams) -> None:
    with tempfile.TemporaryDirectory(prefix="tftrt-fuzz-") as d:
        check_graph(spec, params, d)


@settings(max_examples=int(os.environ.get("TFTRT_FUZZ_QUICK_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(spec=graph_specs(max_ops=10), params=convert_params)
# Found by the long run: the signature's outputs kept control edges from a captured
# variable's Placeholder, so the unfrozen converted graph could not run.
@example(spec=GraphSpec(
    width=5, batch=1, dynamic_batch=True, rank3=False, float_inputs=2, int_input=False,
    ops=(OpSpec("Abs", 0, 0, 0, 0, None), OpSpec("ConstBinary", 9, 6, 0, 1, 0),
         OpSpec("AddN", 2, 1, 0, 0, 1)),
    outputs=(0, 2), int_outputs=(), seed=993, variables=True),
    params=ConvertParams(minimum_segment_size=2, max_engines=1, deny=(), dynamic_shape=True,
                         backend="onnxruntime", save=True, unfrozen=True))
def test_fuzz_quick(spec: GraphSpec, params: ConvertParams) -> None:
    _run(spec, params)


@pytest.mark.slow
def test_fuzz_long() -> None:
    """The long profile: TFTRT_FUZZ_EXAMPLES graphs (default 2000); prints its figures."""
    examples = int(os.environ.get("TFTRT_FUZZ_EXAMPLES", "2000"))
    STATS.clear()
    start = time.monotonic()

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(spec=graph_specs(max_ops=16), params=convert_params)
    def prop(spec: GraphSpec, params: ConvertParams) -> None:
        STATS["tried"] += 1
        try:
            _run(spec, params)
        except Exception as exc:  # recorded, so one bug does not hide the others
            kind = "cycles" if "cycle" in str(exc) else \
                "placement" if "place" in str(exc) or "holds" in str(exc) else \
                "mismatches" if isinstance(exc, AssertionError) else "errors"
            STATS[kind] += 1
            print(f"[fuzz] {kind}: {exc!r}\n  {spec!r}\n  {params!r}", flush=True)
        if STATS["tried"] % 100 == 0:
            elapsed = time.monotonic() - start
            print(f"[fuzz] {STATS['tried']} graphs, {STATS['graphs']} passed, {elapsed:.0f} s",
                  flush=True)

    try:
        prop()
    finally:
        print(f"[fuzz] graphs tried: {STATS['tried']}, passed: {STATS['graphs']}, "
              f"mismatches: {STATS['mismatches']}, cycles: {STATS['cycles']}, "
              f"placement errors: {STATS['placement']}, other errors: {STATS['errors']}, "
              f"engines: {STATS['engines']}, "
              f"graphs with engines: {STATS['graphs_with_engines']}, graphs with native ops: "
              f"{STATS['graphs_with_native_ops']}, graphs with control edges: "
              f"{STATS['graphs_with_control_edges']}, graphs with int32 engine I/O: "
              f"{STATS['graphs_with_int32_engine_io']}, graphs with variables baked into "
              f"engines: {STATS['graphs_with_variables_baked_into_engines']}, graphs reading "
              f"variables natively: {STATS['graphs_reading_variables_natively']}, "
              f"wall time: {time.monotonic() - start:.0f} s",
              flush=True)
    assert STATS["tried"] >= examples
    assert STATS["tried"] == STATS["graphs"], "some graphs failed: see the [fuzz] lines"
