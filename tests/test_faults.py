"""Fault injection: a failing engine never changes the model's results.

Each fault (a build that fails, an engine that fails at run time, a saved engine
that is corrupted, truncated, from another backend version or from another
backend) leaves the model returning TensorFlow's results, with one warning
naming the engine and the failure counted in its stats and the summary. With
``TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION=0`` the same fault is an
``EngineError`` naming the engine.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
import tensorflow as tf

import tftrt
from tests.conftest import export_module, max_rel_err
from tests.test_convert import two_block_mlp
from tftrt import trt_convert as trt
from tftrt.errors import EngineError
from tftrt.manifest import ASSET_DIR, MANIFEST

X = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
WANT = two_block_mlp(X).numpy()


@pytest.fixture(scope="module")
def mlp(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("m") / "mlp"), two_block_mlp,
                         [tf.TensorSpec([None, 16], tf.float32)])


def _convert(src: str, deny: bool, monkeypatch, **kw):
    """The converter and its function: one engine covering the model (runs without TF),
    or two around a native Tanh."""
    if deny:
        monkeypatch.setenv("TF_TRT_OP_DENYLIST", "Tanh")
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, minimum_segment_size=2,
                                   backend="openvino", **kw)
    return conv, conv.convert()


def _out(fn) -> np.ndarray:
    (out,) = fn(X).values()
    return np.asarray(out)


def assert_tf_results_with_one_warning(fn, engines, caplog, calls: int, match: str) -> None:
    """``calls`` calls return TF's results; each engine warned once, naming itself."""
    with caplog.at_level(logging.WARNING, logger="tftrt"):
        for _ in range(calls):
            assert max_rel_err(_out(fn), WANT) < 1e-5
    for name in engines:
        warnings = [r.getMessage() for r in caplog.records if name in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert match in warnings[0]


def summary_text(conv: trt.TrtGraphConverterV2) -> str:
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    return "\n".join(lines)


@pytest.mark.parametrize("deny", [False, True], ids=["one-engine", "two-engines"])
def test_build_failure_falls_back_and_is_reported(mlp, deny, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TF_TRT_ABORT_CUDA_ENGINE_BUILD", "1")
    conv, fn = _convert(mlp, deny, monkeypatch)
    assert_tf_results_with_one_warning(fn, conv.engines, caplog, 3,
                                       "TF_TRT_ABORT_CUDA_ENGINE_BUILD")
    for op in conv.engines.values():
        assert (op.stats.build_failures, op.stats.native_calls, op.stats.engine_calls) == (1, 3, 0)
    text = summary_text(conv)
    assert text.count("Native fallback: 3 native calls, 0 engine calls; failures: 1 build") \
        == len(conv.engines)


@pytest.mark.parametrize("deny", [False, True], ids=["one-engine", "two-engines"])
def test_engine_run_failure_falls_back(mlp, deny, monkeypatch, caplog) -> None:
    conv, fn = _convert(mlp, deny, monkeypatch)
    assert max_rel_err(_out(fn), WANT) < 1e-5  # builds the engines

    def boom(inputs):
        raise RuntimeError("injected engine failure")

    for op in conv.engines.values():
        for _, engine in op.engines():
            monkeypatch.setattr(engine, "run", boom)
    assert_tf_results_with_one_warning(fn, conv.engines, caplog, 2, "injected engine failure")
    for op in conv.engines.values():
        assert (op.stats.run_failures, op.stats.native_calls, op.stats.engine_calls) == (2, 2, 1)
        # a run that failed counts no shape as run on the engine
        assert sum(op.stats.engine_shapes.values()) == 1
    assert "failures: 0 build, 2 run" in summary_text(conv)
    monkeypatch.setenv("TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION", "0")
    name = sorted(conv.engines)[0]
    with pytest.raises(EngineError, match=f"{name}.*injected engine failure"):
        _out(fn)


@pytest.fixture(scope="module")
def saved(mlp, tmp_path_factory) -> dict[str, str]:
    """The MLP converted with built engines and saved, per backend and per allow-build."""
    out = {}
    for backend in ("openvino", "onnxruntime"):
        for allow in (True, False):
            conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp, backend=backend,
                                           allow_build_at_runtime=allow)
            conv.convert()
            conv.build(lambda: iter([X]))
            path = str(tmp_path_factory.mktemp("saved") / f"{backend}-{allow}")
            conv.save(path)
            out[backend, allow] = path
    return out


def _copy(src: str, tmp_path) -> tuple[str, str, dict]:
    import shutil

    dst = str(tmp_path / "model")
    shutil.copytree(src, dst)
    adir = f"{dst}/{ASSET_DIR}"
    with open(f"{adir}/{MANIFEST}") as f:
        return dst, adir, json.load(f)


def _instance(manifest: dict) -> tuple[str, dict]:
    ((name, meta),) = manifest["engines"].items()
    (inst,) = meta["instances"]
    return name, inst


def _write_manifest(adir: str, manifest: dict) -> None:
    with open(f"{adir}/{MANIFEST}", "w") as f:
        json.dump(manifest, f)


def _truncate(adir: str, manifest: dict) -> None:
    path = f"{adir}/{_instance(manifest)[1]['file']}"
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _flip_byte(adir: str, manifest: dict) -> None:
    path = f"{adir}/{_instance(manifest)[1]['file']}"
    with open(path, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0xFF]))


def _other_version(adir: str, manifest: dict) -> None:
    manifest["backend_version"] = "0.0.1-elsewhere"  # and nothing else recomputed
    _write_manifest(adir, manifest)


def _other_backends_blob(adir: str, manifest: dict, blob: bytes) -> None:
    name, inst = _instance(manifest)
    with open(f"{adir}/{inst['file']}", "wb") as f:
        f.write(blob)
    inst["sha256"] = hashlib.sha256(blob).hexdigest()  # a consistent, but foreign, engine
    _write_manifest(adir, manifest)


FAULTS = {"truncated": (_truncate, "checksum mismatch"),
          "corrupted": (_flip_byte, "checksum mismatch"),
          "other-version": (_other_version, "built by openvino 0.0.1-elsewhere"),
          "other-backend": (None, "saved engine")}


def _inject(fault: str, saved: dict, allow: bool, tmp_path) -> tuple[str, str]:
    path, adir, manifest = _copy(saved["openvino", allow], tmp_path)
    fn, match = FAULTS[fault]
    if fn is None:
        _, ort_adir, ort_manifest = _copy(saved["onnxruntime", True], tmp_path / "ort")
        with open(f"{ort_adir}/{_instance(ort_manifest)[1]['file']}", "rb") as f:
            _other_backends_blob(adir, manifest, f.read())
    else:
        fn(adir, manifest)
    return path, match


@pytest.mark.parametrize("allow_build", [True, False], ids=["rebuilt", "native"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_bad_saved_engine_is_rebuilt_or_runs_natively(saved, fault, allow_build, tmp_path,
                                                       caplog, monkeypatch) -> None:
    """Rebuilt from its ONNX model if runtime builds are allowed, else the native segment."""
    path, match = _inject(fault, saved, allow_build, tmp_path)
    with caplog.at_level(logging.WARNING, logger="tftrt"):
        model = tftrt.load(path)
    fn = model.signatures["serving_default"]
    assert_tf_results_with_one_warning(fn, model.engines, caplog, 2, match)
    (op,) = model.engines.values()
    st = op.stats
    if allow_build:
        assert "it will be rebuilt" in caplog.text
        assert (st.load_failures, st.builds, st.engine_calls, st.native_calls) == (1, 1, 2, 0)
        return
    assert (st.load_failures, st.builds, st.engine_calls, st.native_calls) == (1, 0, 0, 2)
    monkeypatch.setenv("TF_TRT_ALLOW_ENGINE_NATIVE_SEGMENT_EXECUTION", "0")
    with pytest.raises(EngineError, match=f"{op.name}: no usable engine.*{match}"):
        _out(fn)


def test_intact_saved_engine_loads_without_warning(saved, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tftrt"):
        model = tftrt.load(saved["openvino", False])
        assert max_rel_err(_out(model.signatures["serving_default"]), WANT) < 1e-5
    (op,) = model.engines.values()
    assert (op.stats.load_failures, op.stats.builds, op.stats.engine_calls) == (0, 0, 1)
    assert not [r for r in caplog.records if op.name in r.getMessage()]
