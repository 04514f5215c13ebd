"""Shared fixtures: small SavedModels made in the tests (nothing is downloaded)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


def max_rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    scale = max(float(np.abs(want).max()), 1e-30)
    return float(np.abs(got.astype(np.float64) - want).max() / scale)


def export_module(path: str, fn, specs, variables=()) -> str:
    """Save a tf.function (reading ``variables``) as a SavedModel with a serving_default
    signature."""
    module = tf.Module()
    module.tracked = list(variables)
    module.fn = tf.function(fn, input_signature=specs)
    tf.saved_model.save(module, path, signatures={"serving_default": module.fn})
    return path


@pytest.fixture(scope="session")
def keras_mlp_dir(tmp_path_factory) -> str:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    path = str(tmp_path_factory.mktemp("models") / "mlp")
    model.export(path, verbose=False)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
