"""Hostile and malformed inputs: each gets a clear error or a safe outcome, never a crash.

Covers a truncated ``saved_model.pb``, an op type TensorFlow does not know, a
10,000-node graph (slow), wrong inputs at inference, a save killed part-way, and
a loaded model's manifest (schema, paths, digests; nothing unpickled or evaluated).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import tftrt
from tests.conftest import export_module, max_rel_err
from tests.test_convert import two_block_mlp
from tftrt import manifest as manifest_schema
from tftrt import trt_convert as trt
from tftrt.errors import InputSpecError, SavedModelError
from tftrt.manifest import ASSET_DIR, MANIFEST

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("m") / "mlp"), two_block_mlp,
                         [tf.TensorSpec([None, 16], tf.float32)])


def _copy_with_pb(src: str, dst: Path, data: bytes) -> str:
    shutil.copytree(src, dst)
    (dst / "saved_model.pb").write_bytes(data)
    return str(dst)


def test_truncated_saved_model_pb(mlp, tmp_path) -> None:
    data = (Path(mlp) / "saved_model.pb").read_bytes()
    for cut in (len(data) // 2, len(data) - 7):
        path = _copy_with_pb(mlp, tmp_path / f"cut{cut}", data[:cut])
        with pytest.raises(SavedModelError, match="malformed|could not be loaded"):
            trt.TrtGraphConverterV2(input_saved_model_dir=path).convert()


def test_unknown_op_type(mlp, tmp_path) -> None:
    sm = saved_model_pb2.SavedModel.FromString((Path(mlp) / "saved_model.pb").read_bytes())
    renamed = 0
    for f in sm.meta_graphs[0].graph_def.library.function:
        for node in f.node_def:
            if node.op == "Tanh":
                node.op, renamed = "NoSuchOpXyz", renamed + 1
    assert renamed == 1
    path = _copy_with_pb(mlp, tmp_path / "unknown", sm.SerializeToString())
    with pytest.raises(SavedModelError, match="could not be loaded.*NoSuchOpXyz"):
        trt.TrtGraphConverterV2(input_saved_model_dir=path).convert()


# -- wrong inputs at inference -------------------------------------------------------

BAD_INPUTS = [
    ((np.zeros((2, 16), np.float64),), {}, "dtype float32, got float64"),
    ((np.zeros((2, 16), np.int32),), {}, "dtype float32, got int32"),
    ((tf.zeros((2, 16), tf.float16),), {}, "dtype float32, got float16"),
    ((np.zeros((2, 4, 4), np.float32),), {}, "rank 2"),
    ((np.zeros((2, 15), np.float32),), {}, r"shape \[None, 16\]"),
    ((), {}, "missing inputs"),
    ((np.zeros((2, 16), np.float32),) * 2, {}, "at most 1 positional"),
    ((), {"nope": np.zeros((2, 16), np.float32)}, "unexpected input 'nope'"),
    (("a string",), {}, "cannot be read as float32"),
    (([[1.0, 2.0], [3.0]],), {}, "cannot be read as float32"),
]


@pytest.fixture(scope="module")
def converted(mlp, tmp_path_factory) -> dict:
    """The MLP as two engines around a native Tanh (TF runs the graph), and saved+loaded."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TF_TRT_OP_DENYLIST", "Tanh")
        conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp, minimum_segment_size=2,
                                       use_dynamic_shape=True)
        fn = conv.convert()
    conv.build(lambda: iter([np.zeros((2, 16), np.float32)]))
    out = str(tmp_path_factory.mktemp("saved") / "out")
    conv.save(out)
    return {"converted": (fn, conv.engines), "loaded": (lambda m: (
        m.signatures["serving_default"], m.engines))(tftrt.load(out))}


@pytest.mark.parametrize("which", ["converted", "loaded"])
@pytest.mark.parametrize("args, kwargs, match", BAD_INPUTS)
def test_wrong_input_is_an_input_error(converted, which, args, kwargs, match) -> None:
    fn, engines = converted[which]
    assert not fn.runs_without_tensorflow and len(engines) == 2
    before = [(op.stats.engine_calls, op.stats.native_calls) for op in engines.values()]
    with pytest.raises(InputSpecError, match=match):
        fn(*args, **kwargs)
    assert [(op.stats.engine_calls, op.stats.native_calls) for op in engines.values()] == before
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    (got,) = fn(x).values()  # still serves good input afterwards
    assert max_rel_err(got.numpy(), two_block_mlp(x).numpy()) < 1e-5


# -- saving over an existing directory ---------------------------------------------

_CHILD = textwrap.dedent("""
    import os, sys, time
    from tftrt import trt_convert as trt
    from tftrt.compiler import saving

    src, out, marker, point = sys.argv[1:]
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, backend="onnxruntime")
    conv.convert()

    def pause():
        open(marker, "w").close()
        time.sleep(300)  # the parent kills us here

    if point == "writing-assets":  # some asset files written, others not yet
        fsync, calls = os.fsync, []

        def slow_fsync(fd):
            fsync(fd)
            calls.append(fd)
            if len(calls) == 2:
                pause()

        os.fsync = slow_fsync
    else:  # "before-swap": the new model is complete in its temporary directory
        replace = saving._replace_dir
        saving._replace_dir = lambda tmp, target: (pause(), replace(tmp, target))
    conv.save(out, overwrite=True)
""")


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("point", ["writing-assets", "before-swap"])
def test_save_killed_part_way_leaves_the_old_content(mlp, tmp_path, point) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "precious.txt").write_text("the previous model")
    (out / "sub" / "weights.bin").write_bytes(os.urandom(1000))
    before = _snapshot(out)
    marker = tmp_path / "marker"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    child = subprocess.Popen([sys.executable, str(script), mlp, str(out), str(marker), point],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never reached the kill point"
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert _snapshot(out) == before
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".tftrt-")]
    assert all(p.name.startswith(".tftrt-save-") for p in leftovers)  # never at the path
    # the next save replaces the old content with a complete model
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp, backend="onnxruntime")
    conv.convert()
    conv.save(str(out), overwrite=True)
    assert "precious.txt" not in os.listdir(out)
    x = np.ones((2, 16), np.float32)
    (got,) = tftrt.load(str(out)).signatures["serving_default"](x).values()
    assert max_rel_err(got.numpy(), two_block_mlp(x).numpy()) < 1e-5


# -- a loaded model's manifest -----------------------------------------------------

@pytest.fixture(scope="module")
def saved_manifest(mlp, tmp_path_factory) -> tuple[str, dict]:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp, backend="onnxruntime")
    conv.convert()
    conv.build(lambda: iter([np.zeros((1, 16), np.float32)]))
    out = str(tmp_path_factory.mktemp("saved") / "out")
    conv.save(out)
    with open(os.path.join(out, ASSET_DIR, MANIFEST)) as f:
        return out, json.load(f)


def _engine(m: dict) -> dict:
    return next(iter(m["engines"].values()))


MANIFEST_EDITS = {
    "escaping path": (lambda m: m.update(graph="../../../etc/passwd"), "relative path"),
    "absolute path": (lambda m: _engine(m).update(onnx="/etc/passwd"), "relative path"),
    "bad digest": (lambda m: m.update(graph_sha256="abc"), "SHA-256"),
    "missing key": (lambda m: m.pop("options"), "options is missing"),
    "wrong type": (lambda m: m["options"].update(use_dynamic_shape="yes"), "a boolean"),
    "bad dtype": (lambda m: m["inputs"][0].update(dtype="object"), "a tensor dtype"),
    "bad shapes": (lambda m: _engine(m)["instances"][0].update(shapes=[["1"]]), "dimensions"),
    "not a list": (lambda m: m.update(engines=[]), "engines must be an object"),
    "code in a field": (lambda m: m["options"].update(
        maximum_cached_engines="__import__('os').system('true')"), "an integer >= 1"),
}


@pytest.mark.parametrize("edit", sorted(MANIFEST_EDITS))
def test_malformed_manifest_is_refused(saved_manifest, tmp_path, edit) -> None:
    src, manifest = saved_manifest
    path = tmp_path / "model"
    shutil.copytree(src, path)
    change, match = MANIFEST_EDITS[edit]
    edited = json.loads(json.dumps(manifest))
    change(edited)
    (path / ASSET_DIR / MANIFEST).write_text(json.dumps(edited))
    with pytest.raises(SavedModelError, match=f"malformed.*{match}"):
        tftrt.load(str(path))


def test_the_saved_manifest_matches_the_schema(saved_manifest) -> None:
    assert manifest_schema.problems(saved_manifest[1]) == []


def test_loading_executes_nothing_but_tf_ops_and_engines() -> None:
    """No deserializer that can run code is used anywhere in tftrt."""
    banned = re.compile(r"\b(pickle|cPickle|dill|marshal|shelve|yaml\.load|eval|exec|"
                        r"allow_pickle\s*=\s*True|torch\.load|joblib)\b")
    hits = [f"{p.relative_to(REPO)}:{k}: {line.strip()}"
            for p in sorted((REPO / "tftrt").rglob("*.py"))
            for k, line in enumerate(p.read_text().splitlines(), 1)
            if banned.search(line.split("#")[0])]
    assert hits == []


# -- a 10,000-node graph -----------------------------------------------------------

def _ten_thousand_nodes(x):
    h = x
    for i in range(1250):  # 9 nodes per step
        a = tf.tanh(h)
        b = tf.nn.relu(a) * x
        c = tf.math.bessel_i0e(b) if i % 5 == 0 else tf.sigmoid(b)  # native every 5th
        d = c + a
        e = tf.abs(d) - x
        h = tf.maximum(e, b) + d
    return h


@pytest.mark.slow
def test_ten_thousand_node_graph(tmp_path) -> None:
    import resource
    import tracemalloc

    from tests.test_fuzz import assert_acyclic, assert_node_placement

    src = export_module(str(tmp_path / "big"), _ten_thousand_nodes,
                        [tf.TensorSpec([None, 4], tf.float32)])
    tracemalloc.start()
    start = time.monotonic()
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, backend="onnxruntime")
    fn = conv.convert()
    seconds = time.monotonic() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nodes = len(conv.frozen_graph_def.node)
    print(f"\n[10k] frozen nodes: {nodes}, engines: {len(conv.engines)}, convert(): "
          f"{seconds:.1f} s, peak Python memory in convert(): {peak / 2**20:.0f} MiB, "
          f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f}"
          " MiB")
    assert nodes >= 10_000
    assert len(conv.engines) == 20  # TF_TRT_MAX_ALLOWED_ENGINES' default
    assert_acyclic(conv.converted_graph_def)
    assert_node_placement(conv)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    (got,) = fn(x).values()
    assert max_rel_err(got.numpy(), _ten_thousand_nodes(x).numpy()) < 1e-4
