"""Loading a SavedModel without the functions only its TF1 saver calls."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.saved_model import loader_impl

from tftrt.compiler import loading


class _Nested(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
        self.steps = tf.Variable(3)

    @tf.function
    def inner(self, x):
        return tf.nn.relu(tf.matmul(x, self.w))

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def __call__(self, x):
        y = self.inner(x)
        i = tf.constant(0)
        _, y = tf.while_loop(lambda i, y: i < self.steps, lambda i, y: (i + 1, y * 0.5), [i, y])
        return {"y": y}


@pytest.fixture(scope="module")
def nested_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("loading") / "m")
    mod = _Nested()
    tf.saved_model.save(mod, path, signatures={"serving_default": mod.__call__})
    return path


def test_saver_functions_are_dropped_and_the_rest_kept(nested_dir):
    proto = loader_impl.parse_saved_model(nested_dir)
    meta = proto.meta_graphs[0]
    before = {f.signature.name for f in meta.graph_def.library.function}
    removed = loading.drop_unreachable_functions(meta)
    after = {f.signature.name for f in meta.graph_def.library.function}
    assert removed == len(before - after) > 0
    assert all("traced_save" in n or "traced_restore" in n for n in before - after)
    assert any("while_body" in n for n in after) and any("inner" in n for n in after)
    assert set(meta.object_graph_def.concrete_functions) <= after


def test_load_computes_what_tensorflow_load_computes(nested_dir):
    x = tf.constant(np.random.default_rng(0).random((4, 2), dtype=np.float32))
    ours = loading.load(nested_dir, ["serve"])
    theirs = tf.saved_model.load(nested_dir, tags=["serve"])
    got = ours.signatures["serving_default"](x)["y"].numpy()
    np.testing.assert_array_equal(got, theirs.signatures["serving_default"](x)["y"].numpy())
    assert ours.w.numpy().tolist() == theirs.w.numpy().tolist()
    assert int(ours.steps.numpy()) == 3
    assert ours.tensorflow_version == theirs.tensorflow_version


def test_other_tags_load_the_way_tensorflow_reports_them(nested_dir):
    with pytest.raises(ValueError, match="tags"):
        loading.load(nested_dir, ["train"])


class _TwoCopies(tf.Module):
    """Each weight saved twice, as a Keras export saves it (``variables`` and
    ``_all_variables``): the signature reads one copy."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
        self.spare = [tf.Variable(self.w.numpy() + 100.0), tf.Variable(7)]

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
    def __call__(self, x):
        return {"y": tf.matmul(x, self.w)}


def test_only_the_variables_the_signature_reads_are_restored(tmp_path):
    path = str(tmp_path / "m")
    mod = _TwoCopies()
    tf.saved_model.save(mod, path, signatures={"serving_default": mod.__call__})
    loaded = loading.load(path, ["serve"], signature_key="serving_default")
    np.testing.assert_array_equal(loaded.w.numpy(), mod.w.numpy())
    assert not any(v.is_initialized() for v in loaded.spare)  # never read from disk
    x = np.ones((1, 2), np.float32)
    np.testing.assert_array_equal(loaded.signatures["serving_default"](tf.constant(x))["y"],
                                  x @ mod.w.numpy())
    whole = loading.load(path, ["serve"])  # without a signature: everything, as TF does
    assert all(v.is_initialized() for v in whole.spare)
    np.testing.assert_array_equal(whole.spare[0].numpy(), mod.w.numpy() + 100.0)


def test_a_checkpoint_holding_more_than_variables_is_restored_whole(tmp_path):
    class WithTable(tf.Module):
        def __init__(self):
            super().__init__()
            self.table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.float32, -1.0)
            self.table.insert(tf.constant([1, 2], tf.int64), tf.constant([10.0, 20.0]))
            self.w = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
        def __call__(self, k):
            return {"y": self.table.lookup(k) * self.w}

    path = str(tmp_path / "t")
    mod = WithTable()
    tf.saved_model.save(mod, path, signatures={"serving_default": mod.__call__})
    assert loading._checkpoint_variables(path) is None
    loaded = loading.load(path, ["serve"], signature_key="serving_default")
    out = loaded.signatures["serving_default"](tf.constant([2, 5], tf.int64))["y"]
    np.testing.assert_array_equal(out, [40.0, -2.0])
