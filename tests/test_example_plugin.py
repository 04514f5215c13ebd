"""examples/tftrt-example-plugin, installed for real, is found through the ``tftrt`` entry point."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import pathlib
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator

import numpy as np
import pytest
import tensorflow as tf

import tftrt
from tftrt.plugins import Registry, reset_registry
from tftrt.testing import available_backends, check_conversion, check_op

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "tftrt-example-plugin"
MODULE = "tftrt_example_plugin"
DIST = "tftrt-example-plugin"


def _installed_in_venv() -> bool:
    purelib = sysconfig.get_paths()["purelib"]
    return any(True for _ in importlib.metadata.distributions(name=DIST, path=[purelib]))


def _pip_install(source: pathlib.Path, target: pathlib.Path) -> None:
    """``pip install`` the package at ``source`` into directory ``target`` (offline)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--quiet",
         "--target", str(target), str(source)], capture_output=True, text=True)
    if done.returncode:
        raise AssertionError(f"pip install failed:\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def installed(example: pathlib.Path, module: str, work: pathlib.Path) -> Iterator[None]:
    """The package at ``example`` pip-installed into ``work`` and importable, for the block."""
    source, target = work / "src", work / "site"
    # building writes build/ and *.egg-info next to the sources: build a copy
    shutil.copytree(example, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    _pip_install(source, target)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(target))
        for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[Registry]:
    """The registry after installing the example into a temporary directory."""
    assert "Digamma" not in reset_registry().supported_ops()
    assert not _installed_in_venv()
    with installed(EXAMPLE, MODULE, tmp_path_factory.mktemp("example_plugin")):
        yield reset_registry()  # loads the tftrt entry points, the example's among them
    restored = reset_registry()
    assert "Digamma" not in restored.supported_ops()
    assert restored.converter_plugin("Softplus") != "example"
    assert not _installed_in_venv()


def test_the_example_is_installed_outside_the_venv(registry: Registry) -> None:
    dist = importlib.metadata.distribution(DIST)
    site = pathlib.Path(dist.locate_file("")).resolve()
    module = pathlib.Path(importlib.import_module(MODULE).__file__).resolve()
    assert module.parents[1] == site  # the installed copy, not the sources
    assert site != pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
    assert not _installed_in_venv()
    assert [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "tftrt"] == [
        ("example", MODULE)]


def test_the_plugin_adds_an_op(registry: Registry) -> None:
    assert "Digamma" in tftrt.supported_ops()
    assert registry.converter_plugin("Digamma") == "example"
    assert registry.converter("Digamma").convert.__module__ == MODULE
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-4.9, 12.0, 60), [1e-3, 0.5, 1.4616, 100.0, 1e4, -2.5]])
    x = x.astype(np.float32).reshape(2, 33)
    report = check_op("Digamma", [x])
    assert report.converter_plugins == {"Digamma": "example"}
    assert set(report.results) == set(available_backends(registry))
    check_conversion(lambda t: tf.math.digamma(t * t + 0.5), [x])


def test_the_override_wins(registry: Registry) -> None:
    conv = registry.converter("Softplus")
    assert registry.converter_plugin("Softplus") == "example"
    assert conv.priority == 10 and conv.convert.__module__ == MODULE
    x = np.linspace(-100, 100, 24, dtype=np.float32).reshape(2, 3, 4)
    report = check_op("Softplus", [x])
    assert report.converter_plugins == {"Softplus": "example"}
    # the plugin's lowering, not the built-in one (ONNX Softplus)
    assert "Softplus" not in report.onnx_op_types
    assert {"Abs", "Exp", "Log", "Max"} <= set(report.onnx_op_types)
    check_op("Softplus", [x.astype(np.float16)])


def test_the_override_keeps_layouts(registry: Registry) -> None:
    """Between two convolutions the override reads the first one's NCHW output as it is."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((3, 3, 4, 8)).astype(np.float32)
    w2 = rng.standard_normal((3, 3, 8, 2)).astype(np.float32)

    def net(x):
        h = tf.nn.softplus(tf.nn.conv2d(x, w1, 1, "SAME"))
        return tf.nn.conv2d(h, w2, 1, "SAME")

    report = check_conversion(net, [rng.standard_normal((1, 6, 6, 4)).astype(np.float32)],
                              tolerance=1e-4)
    nodes = report.onnx_model.graph.node
    producer = {out: n.op_type for n in nodes for out in n.output}
    abs_node = next(n for n in nodes if n.op_type == "Abs")
    assert producer[abs_node.input[0]] == "Conv"
