"""examples/tftrt-example-partitioner, pip-installed for real, is found through the ``tftrt``
entry point: its partitioner changes the segments, its plugin layer converts an op."""

from __future__ import annotations

import importlib.metadata
import pathlib
from collections.abc import Iterator

import numpy as np
import onnx
import pytest
import tensorflow as tf

from tests.conftest import export_module
from tests.test_example_plugin import installed
from tftrt import trt_convert as trt
from tftrt.plugins import Registry, reset_registry
from tftrt.plugins.layers import DOMAIN
from tftrt.specs import ENGINE_OP

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "tftrt-example-partitioner"
MODULE = "tftrt_example_partitioner"
RNG = np.random.default_rng(0)
W = RNG.standard_normal((8, 8)).astype(np.float32) / 3


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[Registry]:
    assert "chains" not in reset_registry().partitioner_names()
    with installed(EXAMPLE, MODULE, tmp_path_factory.mktemp("example_partitioner")):
        yield reset_registry()  # loads the tftrt entry points, the example's among them
    restored = reset_registry()
    assert "chains" not in restored.partitioner_names()
    assert restored.plugin_layer("Atan2") is None


def diamond(x):
    h = tf.nn.relu(tf.matmul(x, W))
    return {"y": tf.sigmoid(h) + tf.tanh(h)}


def angles(y, x):
    return {"a": tf.math.atan2(y * 2.0, x - 0.5)}


def _export(tmp_path, name, fn, n_inputs):
    return export_module(str(tmp_path / name), fn,
                         [tf.TensorSpec([4, 8], tf.float32)] * n_inputs)


def _engines(conv) -> list:
    return [n for n in conv.converted_graph_def.node if n.op == ENGINE_OP]


def test_installed_from_its_entry_point(registry: Registry) -> None:
    dist = importlib.metadata.distribution("tftrt-example-partitioner")
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "tftrt"] == [
        ("example-partitioner", MODULE)]
    part, plugin = registry.partitioner("chains")
    assert plugin == "example-partitioner" and part.partition.__module__ == MODULE


def test_the_chains_partitioner_changes_the_segments(registry: Registry, tmp_path) -> None:
    path = _export(tmp_path, "diamond", diamond, 1)
    kwargs = dict(input_saved_model_dir=path, minimum_segment_size=1, backend="onnxruntime")
    union_find = trt.TrtGraphConverterV2(**kwargs)
    union_find.convert()
    conv = trt.TrtGraphConverterV2(partitioner="chains", **kwargs)
    fn = conv.convert()
    assert len(_engines(union_find)) == 1  # the diamond is one segment
    # chains: {W, MatMul, Relu} ends where Relu fans out; Add joins one branch
    assert len(_engines(conv)) == 3
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_allclose(fn(x)["y"].numpy(), diamond(x)["y"].numpy(), rtol=1e-5,
                               atol=1e-6)


def test_a_plugin_layer_of_its_own(registry: Registry, tmp_path) -> None:
    assert registry.plugin_layer("Atan2").decompose.__module__ == MODULE
    path = _export(tmp_path, "angles", angles, 2)
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, minimum_segment_size=1,
                                   backend="onnxruntime")
    fn = conv.convert()
    (engine,) = _engines(conv)
    (op,) = conv.engines.values()
    model = onnx.load_from_string(op.onnx_model)
    assert "Atan" in {n.op_type for n in model.graph.node}
    assert not any(n.domain == DOMAIN for n in model.graph.node)  # the portable lowering
    y = RNG.standard_normal((4, 8)).astype(np.float32)
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    x[0, :4], y[0, :2] = 0.5, 0.0  # x - 0.5 == 0: the axes and the origin
    got, want = fn(y=y, x=x)["a"].numpy(), angles(y, x)["a"].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert op.stats.engine_calls == 1 and engine.name == op.name
