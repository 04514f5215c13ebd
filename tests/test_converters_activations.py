"""Activation converters: numerics against TensorFlow, and layout handling."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tests.converter_layout import lower_one, node_info
from tftrt.converters import activations as act
from tftrt.converters.context import NHWC_TO_NCHW
from tftrt.testing import check_function


def rand(shape: tuple[int, ...], seed: int = 0, scale: float = 3.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _leaky_default(x):
    return tf.nn.leaky_relu(x)


def _leaky_small(x):
    return tf.nn.leaky_relu(x, alpha=0.05)


ACTIVATIONS = [tf.nn.relu, tf.nn.relu6, tf.math.sigmoid, tf.math.tanh, tf.nn.elu, tf.nn.selu,
               tf.math.softplus, tf.math.softsign, _leaky_default, _leaky_small, tf.nn.softmax,
               tf.nn.log_softmax]
IDS = ["Relu", "Relu6", "Sigmoid", "Tanh", "Elu", "Selu", "Softplus", "Softsign",
       "LeakyRelu", "LeakyRelu_alpha", "Softmax", "LogSoftmax"]


@pytest.mark.parametrize("fn", ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (7,)], ids=str)
def test_activation(fn, shape: tuple[int, ...]) -> None:
    check_function(fn, [rand(shape, seed=1)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn", ACTIVATIONS, ids=IDS)
def test_activation_dynamic_batch(fn) -> None:
    check_function(fn, [rand((3, 6), seed=2)], specs=[tf.TensorSpec([None, 6], tf.float32)],
                   rtol=1e-5, atol=1e-5)


def test_activation_chain() -> None:
    def f(x):
        return tf.nn.softmax(tf.nn.relu6(tf.nn.leaky_relu(x, alpha=0.3) * 2.0))

    check_function(f, [rand((2, 5), seed=3)])


def test_relu6_float16() -> None:
    x = rand((4, 5), seed=4).astype(np.float16)
    check_function(tf.nn.relu6, [x], rtol=1e-3, atol=1e-3)


def test_refuses_int32() -> None:
    x = np.ones((2, 2), np.int32)
    assert act.convert_activation.validate(node_info("Relu", [x])) is not None


# -- layout: an NCHW-held NHWC tensor stays NCHW -------------------------------------

X = rand((2, 4, 5, 3), seed=5)  # NHWC


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


REFS = {
    "Relu": (act.convert_activation, {}, lambda x: np.maximum(x, 0)),
    "Tanh": (act.convert_activation, {}, np.tanh),
    "Relu6": (act.convert_relu6, {}, lambda x: np.clip(x, 0, 6)),
    "LeakyRelu": (act.convert_leaky_relu, {"alpha": 0.1}, lambda x: np.where(x > 0, x, 0.1 * x)),
    "Selu": (act.convert_selu, {}, lambda x: 1.0507009873554805 * np.where(
        x > 0, x, 1.6732632423543772 * (np.exp(x) - 1))),
    "Softmax": (act.convert_softmax, {}, _softmax),
    "LogSoftmax": (act.convert_softmax, {}, lambda x: np.log(_softmax(x))),
}


@pytest.mark.parametrize("op", sorted(REFS))
def test_layout_keeps_perm(op: str) -> None:
    conv, attrs, ref = REFS[op]
    got, perm, ops = lower_one(conv, node_info(op, [X], **attrs), [X], [NHWC_TO_NCHW])
    np.testing.assert_allclose(got, ref(X), rtol=1e-5, atol=1e-6)
    assert perm == NHWC_TO_NCHW
    assert "Transpose" not in ops


@pytest.mark.parametrize("perm", [(0, 2, 3, 1), (3, 0, 2, 1), None], ids=str)
def test_layout_softmax_axis(perm) -> None:
    got, out_perm, ops = lower_one(act.convert_softmax, node_info("Softmax", [X]), [X], [perm])
    np.testing.assert_allclose(got, _softmax(X), rtol=1e-5, atol=1e-6)
    assert out_perm == perm
    assert "Transpose" not in ops


def test_softplus_large_magnitudes() -> None:
    x = np.array([-200.0, -50.0, -1.0, 0.0, 1.0, 50.0, 200.0], np.float32)
    check_function(tf.math.softplus, [x])


# -- GELU as TensorFlow and Keras write it (Erfc-based exact form, Pow/Tanh approximation) --

def _gelu_exact(x):
    return tf.nn.gelu(x, approximate=False)


def _gelu_tanh(x):
    return tf.nn.gelu(x, approximate=True)


def _keras_gelu(x):
    import keras

    return keras.activations.gelu(x)


def _keras_gelu_tanh(x):
    import keras

    return keras.activations.gelu(x, approximate=True)


GELUS = [_gelu_exact, _gelu_tanh, _keras_gelu, _keras_gelu_tanh]


def test_gelu() -> None:
    def f(x):
        return tuple(gelu(x) for gelu in GELUS)

    x = np.concatenate([np.linspace(-12, 12, 97, dtype=np.float32),
                        rand((47,), seed=6)]).reshape(2, 9, 8)
    check_function(f, [x], specs=[tf.TensorSpec([None, None, 8], tf.float32)],
                   rtol=1e-5, atol=1e-6)


def test_gelu_float16() -> None:
    x = rand((4, 8), seed=9).astype(np.float16)
    check_function(_gelu_exact, [x], rtol=2e-3, atol=2e-3)
    check_function(_gelu_tanh, [x], rtol=2e-3, atol=2e-3)


def test_keras_composite_activations() -> None:
    import keras

    acts = keras.activations

    def f(x):
        return (acts.hard_silu(x), acts.mish(x), acts.silu(x), acts.hard_sigmoid(x),
                acts.log_sigmoid(x), tf.nn.silu(x))

    check_function(f, [rand((2, 3, 8), seed=10)],
                   specs=[tf.TensorSpec([None, None, 8], tf.float32)], rtol=1e-5, atol=1e-5)
