"""Hand-built models of the zoo: what users write that keras.applications does not.

Each builder writes a SavedModel with a ``serving_default`` signature to ``path``;
each inputs function makes that signature's inputs for a batch.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


def _save(path: str, module: tf.Module, fn, specs) -> None:
    module.serve = tf.function(fn, input_signature=specs)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


# -- an inner jit-compiled function --------------------------------------------------

class JitDense(keras.layers.Layer):
    """A dense layer with GELU whose math is a ``tf.function(jit_compile=True)``."""

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units
        self._math = tf.function(lambda x, w, b: tf.nn.gelu(tf.matmul(x, w) + b),
                                 jit_compile=True)

    def build(self, shape) -> None:
        self.w = self.add_weight(shape=(shape[-1], self.units), initializer="glorot_uniform")
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal")

    def call(self, x):
        return self._math(x, self.w.value, self.b.value)


def build_jit_layer(path: str) -> None:
    keras.utils.set_random_seed(0)
    inp = keras.Input((32,), name="x")
    h = keras.layers.Dense(64, activation="relu")(inp)
    h = JitDense(64)(h)
    h = JitDense(64)(h)
    out = keras.layers.Dense(10)(h)
    keras.Model(inp, out).export(path, verbose=False)


def inputs_jit_layer(rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((batch, 32)).astype(np.float32)}


# -- a tf.while_loop RNN ---------------------------------------------------------------

def build_while_rnn(path: str, steps: int = 5) -> None:
    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w = tf.Variable(rng.standard_normal((16, 16)).astype(np.float32) * 0.3)

    def fn(x):
        def body(i, h):
            return i + 1, tf.tanh(tf.matmul(h, module.w))

        _, h = tf.while_loop(lambda i, h: i < steps, body, (tf.constant(0), x))
        return {"h": h}

    _save(path, module, fn, [tf.TensorSpec([None, 16], tf.float32, name="x")])


def inputs_while_rnn(rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((batch, 16)).astype(np.float32)}


def build_while_native_body(path: str, steps: int = 4) -> None:
    """A loop whose body holds an op no engine runs (Lgamma): the loop stays native and the
    rest of its body converts."""
    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w = tf.Variable(rng.standard_normal((16, 16)).astype(np.float32) * 0.3)

    def fn(x):
        def body(i, h):
            z = tf.tanh(tf.matmul(h, module.w) + 0.5) * 2.0
            return i + 1, z + 0.01 * tf.math.lgamma(tf.abs(z) + 1.0) - tf.sigmoid(z)

        _, h = tf.while_loop(lambda i, h: i < steps, body, (tf.constant(0), x))
        return {"h": h}

    _save(path, module, fn, [tf.TensorSpec([None, 16], tf.float32, name="x")])


inputs_while_native_body = inputs_while_rnn


def build_no_engine(path: str) -> None:
    """Nothing an engine runs: the converted function must cost what the original does."""
    def fn(x):
        return {"y": tf.math.lgamma(x) + tf.math.digamma(x)}

    _save(path, tf.Module(), fn, [tf.TensorSpec([None, 16], tf.float32, name="x")])


def inputs_no_engine(rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    return {"x": rng.uniform(0.5, 4.0, (batch, 16)).astype(np.float32)}


# -- a tf.cond ---------------------------------------------------------------------------

def build_cond(path: str) -> None:
    rng = np.random.default_rng(0)
    module = tf.Module()
    module.w1 = tf.Variable(rng.standard_normal((16, 32)).astype(np.float32) * 0.3)
    module.w2 = tf.Variable(rng.standard_normal((16, 32)).astype(np.float32) * 0.3)

    def fn(x):
        h = tf.nn.relu(x * 2.0 + 1.0)
        out = tf.cond(tf.reduce_sum(h) > 8.0,
                      lambda: tf.sigmoid(tf.matmul(h, module.w1)),
                      lambda: tf.tanh(tf.matmul(h, module.w2)))
        return {"y": out * 3.0 - 1.0}

    _save(path, module, fn, [tf.TensorSpec([None, 16], tf.float32, name="x")])


def inputs_cond(rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((batch, 16)).astype(np.float32)}


# -- a lookup table --------------------------------------------------------------------

VOCAB = [f"w{k}" for k in range(50)]


def build_lookup(path: str) -> None:
    keras.utils.set_random_seed(0)
    module = tf.Module()
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(VOCAB, tf.range(len(VOCAB), dtype=tf.int64)),
        default_value=-1)
    module.emb = tf.Variable(np.random.default_rng(0).standard_normal(
        (len(VOCAB) + 1, 32)).astype(np.float32))
    module.head = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, "relu"),
                                    keras.layers.Dense(8)])

    def fn(words):
        ids = module.table.lookup(words) + 1  # unknown words -> row 0
        vecs = tf.gather(module.emb, ids)
        return {"logits": module.head(tf.reduce_mean(vecs, axis=1))}

    _save(path, module, fn, [tf.TensorSpec([None, None], tf.string, name="words")])


def inputs_lookup(rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    words = np.array(VOCAB + ["unknown", "other"], dtype=object)
    return {"words": words[rng.integers(0, len(words), (batch, 12))].astype(bytes)}


# -- an SSD-style detector on uint8 images --------------------------------------------

def build_ssd(path: str, size: int = 96, classes: int = 6) -> None:
    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3))
    h = inp
    feats = []
    for k, width in enumerate((16, 32, 48, 64)):
        # the first convolution reads the scaled image directly: Grappler folds the scale
        # into its filter and leaves a Mul of two constants there
        h = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=k == 0)(h)
        if k:
            h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU(6.0)(h)
        if k >= 2:
            feats.append(h)
    anchors_per_cell = 3
    box_parts, cls_parts = [], []
    for f in feats:
        b = keras.layers.Conv2D(anchors_per_cell * 4, 3, padding="same")(f)
        c = keras.layers.Conv2D(anchors_per_cell * classes, 3, padding="same")(f)
        box_parts.append(keras.layers.Reshape((-1, 4))(b))
        cls_parts.append(keras.layers.Reshape((-1, classes))(c))
    boxes = keras.layers.Concatenate(axis=1)(box_parts)
    logits = keras.layers.Concatenate(axis=1)(cls_parts)
    net = keras.Model(inp, [boxes, logits])
    n_anchors = int(boxes.shape[1])
    rng = np.random.default_rng(1)
    centers = rng.uniform(0.05, 0.95, (n_anchors, 2)).astype(np.float32)
    sizes = rng.uniform(0.1, 0.4, (n_anchors, 2)).astype(np.float32)
    anchors = tf.constant(np.concatenate([centers, sizes], axis=1))

    module = tf.Module()
    module.net = net

    def fn(images):
        x = tf.cast(images, tf.float32) * (1.0 / 255.0)
        deltas, logits = module.net(x)
        yx = anchors[:, :2] + 0.1 * deltas[..., :2] * anchors[:, 2:]
        hw = anchors[:, 2:] * tf.exp(0.2 * deltas[..., 2:])
        corners = tf.concat([yx - hw / 2, yx + hw / 2], axis=-1)
        scores = tf.sigmoid(6.0 * logits)  # spread like a trained detector's
        nms = tf.image.combined_non_max_suppression(
            corners[:, :, None, :], scores, max_output_size_per_class=10, max_total_size=20,
            iou_threshold=0.5, score_threshold=0.3, clip_boxes=True)
        return {"boxes": nms.nmsed_boxes, "scores": nms.nmsed_scores,
                "classes": nms.nmsed_classes, "valid_detections": nms.valid_detections}

    _save(path, module, fn, [tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")])


def inputs_ssd(rng: np.random.Generator, batch: int, size: int = 96) -> dict[str, np.ndarray]:
    return {"images": rng.integers(0, 256, (batch, size, size, 3)).astype(np.uint8)}


# -- int64 ids ---------------------------------------------------------------------------

class MaskedPool(keras.layers.Layer):
    """Token and position embeddings, mean-pooled over the tokens that are not padding."""

    def __init__(self, vocab: int, width: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tokens = keras.layers.Embedding(vocab, width)
        self.positions = keras.layers.Embedding(64, width)

    def call(self, ids):
        pos = keras.ops.arange(keras.ops.shape(ids)[1], dtype="int64")
        x = self.tokens(ids) + self.positions(pos)[None]
        mask = keras.ops.cast(keras.ops.not_equal(ids, 0), "float32")[..., None]
        return keras.ops.sum(x * mask, axis=1) / keras.ops.maximum(
            keras.ops.sum(mask, axis=1), 1.0)


def build_int64_ids(path: str) -> None:
    keras.utils.set_random_seed(0)
    ids = keras.Input((None,), dtype="int64", name="ids")
    h = MaskedPool(500, 32)(ids)
    out = keras.layers.Dense(4)(keras.layers.Dense(32, activation="relu")(h))
    keras.Model(ids, out).export(path, verbose=False)


def inputs_int64_ids(rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    ids = rng.integers(1, 500, (batch, 12)).astype(np.int64)
    ids[-1, 8:] = 0  # padding
    return {"ids": ids}
