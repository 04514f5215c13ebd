"""The uint8 SSD-style detector with combined_non_max_suppression and clip_boxes is one engine
(the uint8 Cast, the folded first filter and the NMS included) and gives TensorFlow's
detections on random images. Its speed is benchmarks/bench_detector.py's."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.zoo import hand
from tftrt import trt_convert as trt


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    src = str(tmp_path_factory.mktemp("ssd") / "ssd")
    hand.build_ssd(src)
    return src


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_detector_is_one_engine_matching_tf_on_50_inputs(detector: str, backend: str) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=detector, use_dynamic_shape=True,
                                   backend=backend)
    fn = conv.convert()
    assert len(conv.engines) == 1 and fn.runs_without_tensorflow
    rng = np.random.default_rng(0)
    conv.build(lambda: [hand.inputs_ssd(rng, 1), hand.inputs_ssd(rng, 8)])  # Range: 1 to 8
    (op,) = conv.engines.values()
    calls_before = op.stats.engine_calls
    serve = tf.saved_model.load(detector).signatures["serving_default"]
    detections = 0
    for k in range(50):
        images = hand.inputs_ssd(rng, 1 + k % 8)["images"]
        want = serve(images=tf.constant(images))
        got = fn(images=images)
        valid = want["valid_detections"].numpy()
        np.testing.assert_array_equal(got["valid_detections"].numpy(), valid)
        detections += int(valid.sum())
        for key in ("boxes", "scores", "classes"):
            np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), rtol=1e-5,
                                       atol=1e-5, err_msg=f"input {k}: {key}")
        # clip_boxes: every box inside the unit square
        assert got["boxes"].numpy().min() >= 0.0 and got["boxes"].numpy().max() <= 1.0
    assert detections > 200  # the comparison saw real detections, not padding
    assert op.stats.run_failures == 0 and op.stats.native_calls == 0
    assert op.stats.engine_calls - calls_before == 50
