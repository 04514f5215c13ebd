"""What tftrt adds to each call, printed beside the engine called alone.

``tiny``: a fully converted 32x32 MLP (one engine is the whole model). Engine
alone is timed two ways: OpenVINO's own Python API (``compiled_model(x)``) and
the leanest request calls Python can make (what tftrt's engine uses); tftrt is
the converted function, returning ``tf.Tensor``s as TF-TRT's does.

``two_engines``: matmul layers, ops without converters, matmul layers: two
engines with native TensorFlow ops between them. The overhead per engine call
is (tftrt - the same graph with each engine node replaced by an identity - both
engines called alone) / 2: everything but the engines' own work and
TensorFlow's own ops. tftrt called eagerly runs the native ops as one stage
(here two eager ops: ``tftrt/runtime/eager_stage.py``) and calls the engines between
stages (``tftrt/runtime/stages.py``); the
py-func path (the whole graph in TensorFlow, each engine node a ``PyFunc``,
what runs inside a ``tf.function``) is timed beside it.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from benchmarks.timing import interleaved_samples, summary


def _median(samples) -> float:
    return summary(samples)["p50_ms"]


def _save(module, path: str) -> None:
    import tensorflow as tf

    tf.saved_model.save(module, path, signatures={"serving_default": module.f})


def tiny(calls: int = 3000) -> dict:
    import openvino as ov
    import tensorflow as tf

    from tftrt import trt_convert as trt

    rng = np.random.default_rng(0)
    w1, w2 = (tf.constant(rng.standard_normal((32, 32)).astype(np.float32)) for _ in "ab")
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2)},
                           input_signature=[tf.TensorSpec([1, 32], tf.float32)])
    with tempfile.TemporaryDirectory() as d:
        _save(module, os.path.join(d, "m"))
        conv = trt.TrtGraphConverterV2(input_saved_model_dir=os.path.join(d, "m"),
                                       backend="openvino")
        fn = conv.convert()
    x = np.ones((1, 32), np.float32)
    conv.build(lambda: [[x]])
    (op,) = conv.engines.values()
    ((_, engine),) = op.engines()
    compiled = engine._parts[0].compiled  # noqa: SLF001 - the very engine tftrt runs
    request = compiled.create_infer_request()
    n_out = len(compiled.outputs)

    def lean():
        request.set_input_tensor(0, ov.Tensor(x, shared_memory=True))
        request.infer()
        return [request.get_output_tensor(k).data.copy() for k in range(n_out)]

    fns = {"OpenVINO API compiled_model(x)": lambda: compiled([x]),
           "OpenVINO lean request calls": lean,
           "tftrt EngineOp (numpy out)": lambda: op([x]),
           "tftrt converted function (tf.Tensor out)": lambda: fn(x)}
    samples = interleaved_samples(list(fns.values()), calls, block=20)
    ms = {k: _median(s) for k, s in zip(fns, samples, strict=True)}
    return {"ms": ms, "calls": calls,
            "overhead_vs_lean_ms": ms["tftrt converted function (tf.Tensor out)"]
            - ms["OpenVINO lean request calls"],
            "overhead_vs_api_ms": ms["tftrt converted function (tf.Tensor out)"]
            - ms["OpenVINO API compiled_model(x)"]}


def two_engines(calls: int = 1500, backend: str = "openvino") -> dict:
    import tensorflow as tf
    from tensorflow.core.framework import node_def_pb2

    from tftrt import trt_convert as trt
    from tftrt.runtime import tfgraph

    rng = np.random.default_rng(0)
    ws = [tf.constant(rng.standard_normal((64, 64)).astype(np.float32) * 0.1)
          for _ in range(4)]

    def model(x):
        h = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(x, ws[0])), ws[1]))
        h = tf.math.bessel_i0e(h) * tf.math.bessel_i1e(h)  # no converters: stays native
        h = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(h, ws[2])), ws[3]))
        return {"y": h}

    module = tf.Module()
    module.f = tf.function(model, input_signature=[tf.TensorSpec([1, 64], tf.float32)])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m")
        _save(module, path)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, backend=backend)
        fn = conv.convert()
    x = np.ones((1, 64), np.float32)
    xt = tf.constant(x)
    conv.build(lambda: [[x]])
    ops = list(conv.engines.values())
    assert len(ops) == 2, f"expected two engines, got {len(ops)}"
    fn(x)
    recorded = []
    for op in ops:  # the engines' inputs in the graph
        op.recorder = []
    fn(x)
    for op in ops:
        recorded.append(op.recorder[0])
        op.recorder = None

    def identity(node):
        n = node_def_pb2.NodeDef(name=node.name, op="IdentityN", input=list(node.input))
        n.attr["T"].CopyFrom(node.attr["InT"])
        return n

    base = tfgraph.graph_function(tfgraph.rewrite_engines(conv.converted_graph_def, identity),
                                  [s.ref for s in fn.inputs], [s.ref for s in fn.outputs])
    engines = [op.engines()[0][1] for op in ops]
    pyfunc_graph = fn._build_tf_function()  # noqa: SLF001 - the graph a tf.function runs
    fns = {"TF native (signature)": lambda: serve(x=xt) if False else serve(**{
               next(iter(serve.structured_input_signature[1])): xt}),
           "graph, engines as identities": lambda: base(xt),
           "engine 1 alone": lambda: engines[0].run(recorded[0]),
           "engine 2 alone": lambda: engines[1].run(recorded[1]),
           "tftrt (tf.Tensor in)": lambda: fn(xt),
           "tftrt (numpy in)": lambda: fn(x),
           "tftrt py-func path (tf.Tensor in)": lambda: pyfunc_graph(xt)}
    samples = interleaved_samples(list(fns.values()), calls, block=10)
    ms = {k: _median(s) for k, s in zip(fns, samples, strict=True)}
    def per_engine(path: str) -> float:
        return (ms[path] - ms["graph, engines as identities"] - ms["engine 1 alone"]
                - ms["engine 2 alone"]) / 2

    return {"ms": ms, "calls": calls, "backend": backend,
            "overhead_per_engine_ms": per_engine("tftrt (tf.Tensor in)"),
            "overhead_per_engine_pyfunc_ms": per_engine("tftrt py-func path (tf.Tensor in)")}
