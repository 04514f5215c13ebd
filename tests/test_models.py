"""keras.applications models (random weights) convert into one engine and match TF."""

from __future__ import annotations

import keras
import numpy as np
import onnx
import pytest
import tensorflow as tf

from tests.conftest import max_rel_err
from tftrt import trt_convert as trt
from tftrt.compiler import ir

APPS = {
    "DenseNet121": keras.applications.DenseNet121,
    "EfficientNetB0": keras.applications.EfficientNetB0,
    "InceptionV3": keras.applications.InceptionV3,
    "MobileNetV2": keras.applications.MobileNetV2,
    "ResNet50": keras.applications.ResNet50,
}


@pytest.mark.parametrize("name", sorted(APPS))
def test_application_is_one_engine_and_matches_tf(name: str, tmp_path) -> None:
    keras.utils.set_random_seed(0)
    model = APPS[name](weights=None, classifier_activation=None)
    size = model.input_shape[1]
    src = str(tmp_path / name)
    model.export(src, verbose=False)
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src)
    fn = conv.convert()
    gd = conv.converted_graph_def
    assert [n.op for n in gd.node].count("TRTEngineOp") == 1
    assert fn.runs_without_tensorflow
    # NHWC is lowered to NCHW once, at the input: no transposes inside the network
    (engine_op,) = conv.engines.values()
    ops = [n.op_type for n in onnx.load_from_string(engine_op.onnx_model).graph.node]
    assert ops.count("Transpose") == 1
    # IR round trip on the model's frozen graph
    frozen = conv.frozen_graph_def
    assert ir.to_graph_def(ir.from_graph_def(frozen)) == frozen
    x = np.random.default_rng(0).random((2, size, size, 3), dtype=np.float32)
    serve = tf.saved_model.load(src).signatures["serving_default"]
    (in_name,) = serve.structured_input_signature[1]
    want = next(iter(serve(**{in_name: tf.constant(x)}).values())).numpy()
    got = next(iter(fn(x).values())).numpy()
    assert np.abs(want).max() > 0 and want.std() > 0  # a real signal to compare
    assert max_rel_err(got, want) < 1e-4
    (op,) = conv.engines.values()
    assert op.stats.engine_calls == 1 and op.stats.native_calls == 0
