"""keras_hub BertBackbone (random weights) with dynamic batch and sequence length."""

from __future__ import annotations

import keras_hub  # installed by tests/requirements-nodeps.txt
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import max_rel_err
from tftrt import trt_convert as trt


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> str:
    import keras

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=1000, num_layers=4, num_heads=4, hidden_dim=256,
        intermediate_dim=512, max_sequence_length=128)
    path = str(tmp_path_factory.mktemp("bert") / "bert")
    backbone.export(path, verbose=False)
    return path


def bert_inputs(rng: np.random.Generator, batch: int, length: int) -> dict[str, np.ndarray]:
    mask = np.ones((batch, length), np.int32)
    mask[-1, length // 2:] = 0  # a padded sequence
    return {"token_ids": rng.integers(0, 1000, (batch, length)).astype(np.int32),
            "segment_ids": rng.integers(0, 2, (batch, length)).astype(np.int32),
            "padding_mask": mask}


def test_bert_dynamic_shapes_at_most_two_engines(bert_dir: str) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=bert_dir, use_dynamic_shape=True)
    fn = conv.convert()
    assert 1 <= len(conv.engines) <= 2  # the bound; today it is one engine:
    assert len(conv.engines) == 1 and fn.runs_without_tensorflow
    serve = tf.saved_model.load(bert_dir).signatures["serving_default"]
    rng = np.random.default_rng(0)
    # The Range profile [2, 64-128] from build() serves both lengths
    conv.build(lambda: (bert_inputs(rng, 2, n) for n in (64, 128)))
    for length in (64, 96, 128):
        inputs = bert_inputs(rng, 2, length)
        want = serve(**{k: tf.constant(v) for k, v in inputs.items()})
        got = fn(**inputs)
        assert set(got) == {"pooled_output", "sequence_output"}
        for key in want:
            assert max_rel_err(got[key].numpy(), want[key].numpy()) < 1e-4, (length, key)
    for op in conv.engines.values():
        assert op.stats.builds == 1  # one dynamic-shape engine serves every length
        assert op.stats.native_calls == 0
