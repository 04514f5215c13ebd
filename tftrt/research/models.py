"""Models the partitioner harness can build by name (random weights, nothing downloaded).

``cut-chain`` is partially convertible by design: a stack of convolution blocks
where an op without a converter (``BesselI0e``) follows every few nodes, so
union-find finds about three segments per block, of three kinds: a convolution
with bias and Relu (heavy, five nodes), a lone convolution (heavy, two nodes:
below ``minimum_segment_size=3``) and a scale-shift-Relu (elementwise, five
nodes: cheap enough natively that an engine call does not pay).

``mixed-chain`` adds the kind of segment an engine wins on by a wide margin:
each of its blocks starts with a MobileNetV2 inverted residual (1x1 expansion,
depthwise 3x3, 1x1 projection, residual add: seven nodes), then the
cut-chain's three segments, each followed by the op without a converter; five
blocks make 20 candidate segments. On both chains no segment saves an engine call's
cost on a two-core CPU (28x28 activations), so the best a partitioner can do there
is to keep none.

``cut-mobilenet`` is the case partitioning is for: MobileNetV2's layers (224x224
input, its 17 inverted residual blocks, random weights, batch norm folded into
convolution biases) with the op without a converter after every block, as a
model with one unsupported activation per block would be. That makes 18
candidate segments, from blocks at 112x112 down to 7x7. Whether they pay is
close: on two cores in FP32 none did, in FP16 (bf16 engines) together they did in
some runs and not in others.

``cut-encoder`` is a transformer encoder (sequence 128, width 256, 4 heads,
feed-forward 1024, 7 layers) with the op without a converter after each layer's
attention, its feed-forward block and a scale-shift: 20 candidate segments, two
heavy ones per layer (matrix products an engine runs faster, far more so in half
precision) and one an engine call does not pay for. The others are
``keras.applications`` models.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """A model the harness exports as a SavedModel, and its sample input's shape."""

    name: str
    export: Callable[[str], None]
    input_shape: tuple[int, ...]


def cut_chain(blocks: int = 7, size: int = 28, channels: int = 64, seed: int = 0,
              batch: int | None = 1):
    """The ``cut-chain`` model as a tf.function of one NHWC float32 input (of any batch
    when ``batch`` is None)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def kernel(k: int) -> np.ndarray:
        scale = np.sqrt(2.0 / (k * k * channels))
        return (rng.standard_normal((k, k, channels, channels)) * scale).astype(np.float32)

    params = [(kernel(3), rng.standard_normal(channels).astype(np.float32) * 0.1, kernel(3),
               rng.uniform(0.5, 1.5, channels).astype(np.float32),
               rng.standard_normal(channels).astype(np.float32) * 0.1) for _ in range(blocks)]

    @tf.function(input_signature=[tf.TensorSpec([batch, size, size, channels], tf.float32)])
    def model(x):
        h = x
        for k1, b1, k2, scale, shift in params:
            h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(h, k1, 1, "SAME"), b1))
            h = tf.math.bessel_i0e(h)  # no converter: cuts the graph
            h = tf.nn.conv2d(h, k2, 1, "SAME")
            h = tf.math.bessel_i0e(h)
            h = tf.nn.relu(h * scale + shift)
            h = tf.math.bessel_i0e(h)
        return {"y": h}

    return model


def mixed_chain(blocks: int = 5, size: int = 28, channels: int = 64, expansion: int = 4,
                seed: int = 0):
    """The ``mixed-chain`` model as a tf.function of one (1, size, size, channels) input."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    wide = channels * expansion

    def kernel(k: int, cin: int, cout: int) -> np.ndarray:
        return (rng.standard_normal((k, k, cin, cout)) * np.sqrt(2.0 / (k * k * cin))
                ).astype(np.float32)

    params = [(kernel(1, channels, wide),
               (rng.standard_normal((3, 3, wide, 1)) * 0.3).astype(np.float32),
               kernel(1, wide, channels), kernel(3, channels, channels),
               rng.standard_normal(channels).astype(np.float32) * 0.1,
               kernel(3, channels, channels), rng.uniform(0.5, 1.5, channels).astype(np.float32),
               rng.standard_normal(channels).astype(np.float32) * 0.1) for _ in range(blocks)]

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, channels], tf.float32)])
    def model(x):
        h = x
        for expand, depthwise, project, k1, b1, k2, scale, shift in params:
            t = tf.nn.relu6(tf.nn.conv2d(h, expand, 1, "SAME"))
            t = tf.nn.relu6(tf.nn.depthwise_conv2d(t, depthwise, [1, 1, 1, 1], "SAME"))
            h = tf.math.bessel_i0e(h + tf.nn.conv2d(t, project, 1, "SAME"))
            h = tf.math.bessel_i0e(tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(h, k1, 1, "SAME"), b1)))
            h = tf.math.bessel_i0e(tf.nn.conv2d(h, k2, 1, "SAME"))
            h = tf.math.bessel_i0e(tf.nn.relu(h * scale + shift))
        return {"y": h}

    return model


# MobileNetV2's inverted residual settings: expansion t, output channels c, blocks n,
# first stride s
_MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                 (6, 160, 3, 2), (6, 320, 1, 1))


def cut_mobilenet(size: int = 224, seed: int = 0):
    """The ``cut-mobilenet`` model as a tf.function of one (1, size, size, 3) input."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def conv(k: int, cin: int, cout: int) -> tuple[np.ndarray, np.ndarray]:
        w = rng.standard_normal((k, k, cin, cout)) * np.sqrt(2.0 / (k * k * cin))
        return w.astype(np.float32), (rng.standard_normal(cout) * 0.1).astype(np.float32)

    def depthwise(channels: int) -> tuple[np.ndarray, np.ndarray]:
        w = rng.standard_normal((3, 3, channels, 1)) * np.sqrt(2.0 / 9)
        return w.astype(np.float32), (rng.standard_normal(channels) * 0.1).astype(np.float32)

    stem = conv(3, 3, 32)
    blocks, cin = [], 32
    for t, c, n, s in _MOBILENET_V2:
        for k in range(n):
            wide = cin * t
            blocks.append((conv(1, cin, wide) if t != 1 else None, depthwise(wide),
                           conv(1, wide, c), s if k == 0 else 1, cin == c and k > 0))
            cin = c
    head = conv(1, cin, 1280)
    dense = ((rng.standard_normal((1280, 1000)) / np.sqrt(1280)).astype(np.float32),
             np.zeros(1000, np.float32))

    def conv_bias(h, wb, stride=1):
        return tf.nn.bias_add(tf.nn.conv2d(h, wb[0], stride, "SAME"), wb[1])

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
    def model(x):
        h = tf.nn.relu6(conv_bias(x, stem, 2))
        for expand, dw, project, stride, residual in blocks:
            t = h if expand is None else tf.nn.relu6(conv_bias(h, expand))
            t = tf.nn.relu6(tf.nn.bias_add(tf.nn.depthwise_conv2d(
                t, dw[0], [1, stride, stride, 1], "SAME"), dw[1]))
            t = conv_bias(t, project)
            h = tf.math.bessel_i0e(h + t if residual else t)  # no converter: cuts the graph
        h = tf.reduce_mean(tf.nn.relu6(conv_bias(h, head)), axis=[1, 2])
        return {"y": tf.nn.softmax(tf.matmul(h, dense[0]) + dense[1])}

    return model


def cut_encoder(layers: int = 7, seq: int = 128, width: int = 256, heads: int = 4,
                ffn: int = 1024, seed: int = 0):
    """The ``cut-encoder`` model as a tf.function of one (1, seq, width) input."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def dense(cin: int, cout: int) -> tuple[np.ndarray, np.ndarray]:
        return ((rng.standard_normal((cin, cout)) / np.sqrt(cin)).astype(np.float32),
                (rng.standard_normal(cout) * 0.02).astype(np.float32))

    params = [(dense(width, 3 * width), dense(width, width), dense(width, ffn),
               dense(ffn, width), rng.uniform(0.5, 1.5, width).astype(np.float32),
               (rng.standard_normal(width) * 0.1).astype(np.float32)) for _ in range(layers)]

    def linear(h, wb):
        return tf.matmul(h, wb[0]) + wb[1]

    def norm(h):
        mean = tf.reduce_mean(h, axis=-1, keepdims=True)
        var = tf.reduce_mean(tf.square(h - mean), axis=-1, keepdims=True)
        return (h - mean) * tf.math.rsqrt(var + 1e-6)

    head = width // heads

    @tf.function(input_signature=[tf.TensorSpec([1, seq, width], tf.float32)])
    def model(x):
        h = x
        for qkv, out, up, down, scale, shift in params:
            q, k, v = tf.split(tf.reshape(linear(norm(h), qkv), [1, seq, 3 * heads, head]),
                               3, axis=2)
            q, k, v = (tf.transpose(t, [0, 2, 1, 3]) for t in (q, k, v))
            attn = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / np.sqrt(head))
            ctx = tf.reshape(tf.transpose(tf.matmul(attn, v), [0, 2, 1, 3]), [1, seq, width])
            h = tf.math.bessel_i0e(h + linear(ctx, out))  # no converter: cuts the graph
            h = tf.math.bessel_i0e(h + linear(tf.nn.gelu(linear(norm(h), up)), down))
            h = tf.math.bessel_i0e(h * scale + shift)
        return {"y": h}

    return model


def _function_export(make: Callable[..., object], **kwargs) -> Callable[[str], None]:
    def export(path: str) -> None:
        import tensorflow as tf

        module = tf.Module()
        module.f = make(**kwargs)
        tf.saved_model.save(module, path, signatures={"serving_default": module.f})

    return export


def _keras(factory: str) -> Callable[[str], None]:
    def export(path: str) -> None:
        import keras

        keras.utils.set_random_seed(0)
        getattr(keras.applications, factory)(weights=None).export(path, verbose=False)

    return export


MODELS = {
    "cut-chain": ModelSpec("cut-chain", _function_export(cut_chain), (1, 28, 28, 64)),
    "cut-chain-large": ModelSpec("cut-chain-large",
                                 _function_export(cut_chain, size=56, channels=128),
                                 (1, 56, 56, 128)),
    "mixed-chain": ModelSpec("mixed-chain", _function_export(mixed_chain), (1, 28, 28, 64)),
    "cut-mobilenet": ModelSpec("cut-mobilenet", _function_export(cut_mobilenet),
                               (1, 224, 224, 3)),
    "cut-encoder": ModelSpec("cut-encoder", _function_export(cut_encoder), (1, 128, 256)),
    "mobilenet_v2": ModelSpec("mobilenet_v2", _keras("MobileNetV2"), (1, 224, 224, 3)),
    "resnet50": ModelSpec("resnet50", _keras("ResNet50"), (1, 224, 224, 3)),
}


def export(name_or_path: str, workdir: str) -> tuple[str, tuple[int, ...] | None]:
    """(SavedModel directory, sample input shape or None) for a model name or a path."""
    if name_or_path in MODELS:
        spec = MODELS[name_or_path]
        path = os.path.join(workdir, spec.name)
        if not os.path.isdir(path):
            spec.export(path)
        return path, spec.input_shape
    if not os.path.isdir(name_or_path):
        raise ValueError(f"{name_or_path!r} is neither a SavedModel directory nor one of "
                         f"{sorted(MODELS)}")
    return name_or_path, None
