"""The TensorRT backend against TensorRT 10's published API (``tensorrt-stubs``).

No machine here has TensorRT, so the backend is never run. mypy cannot read
the stubs (tensorrt-stubs 10.13 has syntax errors, e.g. a parameter without
default after one with a default), so this test checks conformance directly:
every ``trt.<name>`` the backend uses exists in the stubs, and every method it
calls on a TensorRT object is defined on that object's class.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import re

import pytest

import tftrt.engines.tensorrt_backend as backend_module
from tftrt.plugins import get_registry

# Variables of the backend that hold TensorRT objects, and their stub classes.
RECEIVERS = {
    "builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser",
    "cfg": "IBuilderConfig", "profile": "IOptimizationProfile",
    "self._engine": "ICudaEngine", "context": "IExecutionContext",
    "self._runtime": "Runtime",
}


def _stub_text() -> str:
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("tensorrt-stubs is not installed: .ci/run installs it with "
                    "`pip install --no-deps tensorrt-stubs`")
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    return "\n".join(p.read_text() for p in sorted(root.glob("*.pyi")))


def _classes(stubs: str) -> dict[str, str]:
    """class name -> its body text (indentation-delimited)."""
    out: dict[str, str] = {}
    for m in re.finditer(r"^class (\w+)\b.*?:\n((?:(?:    .*)?\n)*)", stubs, flags=re.M):
        out[m.group(1)] = m.group(2)
    return out


def _uses() -> tuple[set[tuple[str, ...]], set[tuple[str, str]]]:
    tree = ast.parse(pathlib.Path(backend_module.__file__).read_text())
    trt_refs: set[tuple[str, ...]] = set()
    calls: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, cur = [], node
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id == "trt":
                trt_refs.add(tuple(reversed(chain)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = ast.unparse(node.func.value)
            if receiver in RECEIVERS:
                calls.add((RECEIVERS[receiver], node.func.attr))
    return trt_refs, calls


def test_backend_uses_only_documented_tensorrt_api() -> None:
    stubs = _stub_text()
    classes = _classes(stubs)
    refs, calls = _uses()
    assert ("Builder",) in refs and ("IExecutionContext", "execute_async_v3") in calls
    assert ("IOptimizationProfile", "set_shape") in calls
    assert ("IExecutionContext", "set_optimization_profile_async") in calls
    for ref in sorted(refs):
        head = ref[0]
        defined = head in classes or re.search(rf"^(def {head}\b|{head}\s*[:=])", stubs, re.M)
        assert defined, f"trt.{head} is not in tensorrt-stubs"
        if len(ref) > 1:
            body = classes.get(head, "")
            assert re.search(rf"^    (def )?{ref[1]}\b", body, re.M), \
                f"trt.{'.'.join(ref)} is not in tensorrt-stubs"
    for cls, method in sorted(calls):
        assert re.search(rf"^    def {method}\b", classes[cls], re.M), \
            f"{cls}.{method} is not in tensorrt-stubs"


def test_backend_is_registered_and_not_available_here() -> None:
    backend = get_registry().backend("tensorrt")
    assert backend.available() is False  # no TensorRT runtime or CUDA device here
