"""Weights on their way through a conversion: read from the variables without a copy,
written once into the engine's ONNX and once into the native segment, same outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tensorflow as tf
from onnx import numpy_helper

from tests.conftest import export_module, max_rel_err
from tftrt import trt_convert as trt

RNG = np.random.default_rng(7)
K = tf.Variable(RNG.standard_normal((3, 3, 32, 64)).astype(np.float32) * 0.1)  # 72 KiB
W = tf.Variable(RNG.standard_normal((8 * 8 * 64, 64)).astype(np.float32) * 0.05)  # 1 MiB
B = tf.Variable(RNG.standard_normal(64).astype(np.float32))


def convnet(x):
    h = tf.nn.relu(tf.nn.conv2d(x, K, 1, "SAME"))
    return tf.matmul(tf.reshape(h, [-1, 8 * 8 * 64]), W) + B


@pytest.fixture(scope="module")
def convnet_dir(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("m") / "convnet"), convnet,
                         [tf.TensorSpec([None, 8, 8, 32], tf.float32)], [K, W, B])


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_large_weights_reach_engine_and_native_segment_unchanged(convnet_dir, backend) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=convnet_dir, backend=backend)
    fn = conv.convert()
    ((name, data),) = conv._conversion.onnx_models.items()  # noqa: SLF001
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    inits = {tuple(t.dims): numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(inits[(8 * 8 * 64, 64)], W.numpy())
    np.testing.assert_array_equal(inits[(64, 32, 3, 3)], K.numpy().transpose(3, 2, 0, 1))
    (fdef,) = conv.converted_graph_def.library.function
    consts = {tuple(d.size for d in n.attr["value"].tensor.tensor_shape.dim):
              tf.make_ndarray(n.attr["value"].tensor) for n in fdef.node_def if n.op == "Const"}
    np.testing.assert_array_equal(consts[(8 * 8 * 64, 64)], W.numpy())
    np.testing.assert_array_equal(consts[(3, 3, 32, 64)], K.numpy())
    x = RNG.standard_normal((2, 8, 8, 32)).astype(np.float32)
    (out,) = fn(x).values()
    assert max_rel_err(out.numpy(), convnet(x).numpy()) < 1e-4
    assert conv.engines[name].stats.engine_calls == 1
