"""The per-call path: prepared input checks, remembered engine picks, engine nodes as
PyFunc, OpenVINO requests sharing inputs, outputs no one else holds."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import export_module
from tftrt import trt_convert as trt
from tftrt.errors import InputSpecError
from tftrt.runtime import tfgraph
from tftrt.runtime.cache import EngineCache
from tftrt.runtime.eager_stage import EagerStage
from tftrt.runtime.signature import InputPlan
from tftrt.specs import SignatureTensor

RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((8, 8)).astype(np.float32)
W2 = RNG.standard_normal((8, 8)).astype(np.float32)


def mlp(x):
    return {"y": tf.matmul(tf.nn.relu(tf.matmul(x, W1)), W2)}


def two_engines(x):
    h = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(x, W1)), W2))
    h = tf.math.bessel_i0e(h)  # no converter: stays native between the engines
    return {"y": tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(h, W2)), W1))}


def _converted(tmp_path, fn, shape=(None, 8)):
    path = export_module(str(tmp_path / "m"), fn, [tf.TensorSpec(list(shape), tf.float32)])
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, backend="openvino")
    return conv, conv.convert()


def test_input_plan_takes_exact_arrays_and_leaves_the_rest_to_check_inputs() -> None:
    plan = InputPlan([SignatureTensor("x", "x:0", np.dtype(np.float32), (None, 8))])
    x = np.zeros((2, 8), np.float32)
    assert plan.quick((x,), {})[0] is x
    assert plan.quick((), {"x": x})[0] is x
    for args, kwargs in [((x.astype(np.float64),), {}), ((np.zeros((2, 7), np.float32),), {}),
                         ((x, x), {}), ((), {"z": x}), (([[0.0] * 8],), {})]:
        assert plan.quick(args, kwargs) is None
    with pytest.raises(InputSpecError, match="shape"):
        plan.arrays((np.zeros((2, 7), np.float32),), {})


def test_whole_model_outputs_are_fresh_tensors(tmp_path) -> None:
    conv, fn = _converted(tmp_path, mlp)
    assert fn.runs_without_tensorflow
    x = RNG.standard_normal((3, 8)).astype(np.float32)
    want = mlp(x)["y"].numpy()
    first = fn(x)["y"]
    x[:] = 0  # the caller's array changing afterwards changes no result
    second = fn(x)["y"]
    np.testing.assert_allclose(first.numpy(), want, rtol=1e-5, atol=1e-5)
    assert isinstance(first, tf.Tensor) and not np.allclose(first.numpy(), second.numpy())
    ro = RNG.standard_normal((3, 8)).astype(np.float32)[:, ::1]
    ro.setflags(write=False)  # OpenVINO shares only writeable arrays: this one is copied
    np.testing.assert_allclose(fn(ro)["y"].numpy(), mlp(ro)["y"].numpy(), rtol=1e-5,
                               atol=1e-5)
    strided = np.asfortranarray(RNG.standard_normal((3, 8)).astype(np.float32))
    np.testing.assert_allclose(fn(strided)["y"].numpy(), mlp(strided)["y"].numpy(),
                               rtol=1e-5, atol=1e-5)
    (op,) = conv.engines.values()
    assert op.stats.engine_calls == 4 and op.stats.native_calls == 0


def test_whole_model_takes_eager_tensors_through_the_prepared_checks(tmp_path) -> None:
    conv, fn = _converted(tmp_path, mlp)
    x = RNG.standard_normal((3, 8)).astype(np.float32)
    want = mlp(x)["y"].numpy()
    np.testing.assert_allclose(fn(tf.constant(x))["y"].numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fn(x=tf.constant(x))["y"].numpy(), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputSpecError, match="'x' must have dtype float32, got float64"):
        fn(tf.constant(x.astype(np.float64)))
    with pytest.raises(InputSpecError, match="'x' must have shape"):
        fn(tf.constant(np.zeros((3, 7), np.float32)))


def test_engines_in_a_graph_run_between_native_stages_when_called_eagerly(tmp_path) -> None:
    conv, fn = _converted(tmp_path, two_engines)
    assert len(conv.engines) == 2 and not fn.runs_without_tensorflow
    x = RNG.standard_normal((2, 8)).astype(np.float32)
    for arg in (x, tf.constant(x), x[:, ::1]):
        out = fn(arg)["y"]
        assert isinstance(out, tf.Tensor)
        np.testing.assert_allclose(out.numpy(), two_engines(x)["y"].numpy(), rtol=1e-4,
                                   atol=1e-5)
    steps = fn._staged._steps  # noqa: SLF001
    # the native op between the engines is the only TensorFlow call; no py-func is made
    first, second = sorted(conv.engines)
    assert [(stage is not None, [e.name for e in engines]) for stage, engines in steps] == \
        [(False, [first]), (True, [second])]
    assert isinstance(steps[1][0].fn, EagerStage)  # one op: run eagerly, no function call
    assert fn._tf_fn is None  # noqa: SLF001
    for op in conv.engines.values():
        assert op.stats.engine_calls == 3 and op.stats.builds == 1


def test_engines_in_a_graph_inside_a_tf_function_run_as_pyfunc(tmp_path) -> None:
    conv, fn = _converted(tmp_path, two_engines)
    x = RNG.standard_normal((2, 8)).astype(np.float32)
    traced = tf.function(lambda t: fn(t)["y"])
    for _ in range(2):
        np.testing.assert_allclose(traced(tf.constant(x)).numpy(), two_engines(x)["y"].numpy(),
                                   rtol=1e-4, atol=1e-5)
    graph = fn._tf_fn.function.graph  # noqa: SLF001
    assert sorted(op.type for op in graph.get_operations()
                  if op.name in conv.engines) == ["PyFunc", "PyFunc"]
    for op in conv.engines.values():
        assert op.stats.engine_calls == 2 and op.stats.builds == 1


def test_cache_remembers_its_pick_until_its_engines_change() -> None:
    from tftrt.plugins.types import ShapeProfile

    cache = EngineCache(2)
    small = (ShapeProfile(((1, 8),), ((4, 8),), ((4, 8),)),)
    big = (ShapeProfile(((1, 8),), ((16, 8),), ((16, 8),)),)
    cache.put(big, "big")
    assert cache.hit(((2, 8),)) is None  # nothing picked yet
    rank = lambda k: k[0].max  # noqa: E731
    assert cache.acquire(((2, 8),), big, lambda: None, may_build=False, exclusive=False,
                         rank=rank) == "big"
    assert cache.hit(((2, 8),)) == "big"
    cache.put(small, "small")  # a better engine for those shapes: the pick is forgotten
    assert cache.hit(((2, 8),)) is None
    assert cache.acquire(((2, 8),), small, lambda: None, may_build=False, exclusive=False,
                         rank=rank) == "small"
    assert cache.hit([[2, 8]]) is None  # shapes as lists are never remembered as such


def test_adopt_and_graph_function_flat_call() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tfgraph.adopt(a)
    np.testing.assert_array_equal(t.numpy(), a)
    gd = tf.function(lambda x: tf.identity(x * 2.0, name="y"),
                     input_signature=[tf.TensorSpec([None, 3], tf.float32)]
                     ).get_concrete_function().graph.as_graph_def()
    fn = tfgraph.graph_function(gd, ["x:0"], ["y:0"])
    (out,) = fn(t)
    np.testing.assert_array_equal(out.numpy(), a * 2)


def test_adopted_tensors_are_host_tensors_inside_a_cpu_device_scope_too() -> None:
    a = np.arange(4, dtype=np.int32)
    for scope in ("/CPU:0", "/job:localhost/replica:0/task:0/device:CPU:0"):
        with tf.device(scope):
            t = tfgraph.adopt(a.copy())
            assert t.device.endswith("CPU:0")
            np.testing.assert_array_equal((t + 1).numpy(), a + 1)
    assert tfgraph.adopt(a.copy()).device.endswith("CPU:0")


def test_small_openvino_engines_run_on_one_thread_and_keep_it_when_saved(tmp_path) -> None:
    from tftrt.engines.onnx_work import multiply_adds
    from tftrt.engines.openvino_backend import SMALL_ENGINE_MACS

    conv, fn = _converted(tmp_path, mlp, shape=(4, 8))
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    conv.build(lambda: [[x]])
    (op,) = conv.engines.values()
    assert multiply_adds(op.onnx_model) == 2 * 4 * 8 * 8 < SMALL_ENGINE_MACS
    ((key, engine),) = op.engines()
    assert engine.threads == "1"
    again = op.backend.deserialize(engine.serialize(), op.build_config(key))
    assert again.threads == "1"
    np.testing.assert_allclose(again.run([x])[0], mlp(x)["y"].numpy(), rtol=1e-5, atol=1e-5)


def test_stages_leave_graphs_they_cannot_cut_to_the_pyfunc_path() -> None:
    from tensorflow.core.framework import graph_pb2

    from tftrt.runtime import stages
    from tftrt.specs import ENGINE_OP

    spec = [SignatureTensor("x", "x:0", np.dtype(np.float32), (None, 8))]
    gd = graph_pb2.GraphDef()
    gd.node.add(name="x", op="Placeholder")
    gd.node.add(name="y", op="Identity", input=["x"])
    assert stages.plan(gd, spec, spec, {}) is None  # no engine
    looped = graph_pb2.GraphDef()
    looped.CopyFrom(gd)
    looped.node.add(name="e", op=ENGINE_OP, input=["x"])
    looped.node.add(name="enter", op="Enter", input=["e"])
    assert stages.plan(looped, spec, spec, {"e": object()}) is None  # v1 loop frames
    inner = graph_pb2.GraphDef()
    inner.CopyFrom(gd)
    inner.library.function.add().node_def.add(name="e", op=ENGINE_OP)
    assert stages.plan(inner, spec, spec, {"e": object()}) is None  # engine in a function

