"""Complex numbers and Fourier transforms against TensorFlow on every backend."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tftrt.testing import check_conversion

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 6, 8)).astype(np.float32)
Y = RNG.standard_normal((2, 6, 8)).astype(np.float32)


@pytest.mark.parametrize("fft", [tf.signal.fft, tf.signal.ifft, tf.signal.fft2d,
                                 tf.signal.ifft2d])
def test_fourier_transforms(fft) -> None:
    def fn(re, im):
        out = fft(tf.complex(re, im))
        return tf.math.real(out) * 1.0, tf.math.imag(out) * 1.0

    check_conversion(fn, [X, Y], tolerance=1e-4)


def test_fnet_mixing_and_complex_abs() -> None:
    import keras

    def fn(x):
        real, _ = keras.ops.fft2((x, tf.zeros_like(x)))
        return real + tf.abs(tf.complex(x, x * 2.0))

    check_conversion(fn, [X], tolerance=1e-4)


def test_complex_tensors_never_cross_an_engine_boundary() -> None:
    """A complex tensor whose consumer stays native keeps its producer native too."""
    from tftrt.compiler import capability
    from tftrt.plugins.manager import get_registry
    from tftrt.testing import trace

    def fn(re):
        c = tf.complex(re, re)
        return tf.math.real(tf.signal.fft3d(c)), tf.math.angle(c)  # Angle has no converter

    g, _, _ = trace(fn, [tf.TensorSpec([2, 4, 4, 4], tf.float32)])
    marked = capability.mark_supported(g, get_registry())
    ops = {d["op"]: d for _, d in marked.nodes(data=True)}
    assert not ops["Angle"]["supported"]
    assert not ops["Complex"]["supported"]
    assert ops["Complex"]["reason"] == capability.COMPLEX_BOUNDARY
    assert not ops["FFT3D"]["supported"]  # its complex input comes from a native node
