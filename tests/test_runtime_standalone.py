"""The TensorFlow-free runtime (``tftrt.runtime.load``): a fully converted saved model runs
where importing TensorFlow fails, matches TensorFlow, and refuses what it cannot serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import tftrt
from tftrt import trt_convert as trt
from tftrt.errors import InputSpecError, SavedModelError
from tftrt.manifest import ASSET_DIR, MANIFEST
from tftrt.runtime import load as load_standalone

from .conftest import export_module, max_rel_err

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(7)
W = RNG.standard_normal((6, 5)).astype(np.float32)
B = RNG.standard_normal(5).astype(np.float32)


def two_input_model(x, y):
    """One engine; its inputs and outputs in another order than the signature's."""
    h = tf.matmul(y, W) + x
    return {"b_relu": tf.nn.relu(h) * 2.0, "a_sum": tf.reduce_sum(h, axis=1) + B[0]}


SPECS = [tf.TensorSpec([None, 5], tf.float32, name="x"),
         tf.TensorSpec([None, 6], tf.float32, name="y")]

# Run in a child process: any import of TensorFlow (or Keras) raises.
BLOCKER = textwrap.dedent("""
    import sys

    class _NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"TensorFlow is not installed here ({name})")
            return None

    sys.meta_path.insert(0, _NoTensorFlow())
""")

CHILD = BLOCKER + textwrap.dedent("""
    import json
    import numpy as np
    import tftrt.runtime
    from tftrt.errors import InputSpecError

    model_dir, inputs_npz, out_npz, bad_json = sys.argv[1:5]
    model = tftrt.runtime.load(model_dir)
    feed = dict(np.load(inputs_npz))
    np.savez(out_npz, **model(**feed))
    errors = []
    for case in json.load(open(bad_json)):
        kwargs = {k: np.asarray(v, dtype=d) for k, (v, d) in case.items()}
        try:
            model(**kwargs)
            errors.append(None)
        except InputSpecError as exc:
            errors.append(str(exc))
    json.dump({"errors": errors, "describe": model.describe(),
               "tf_modules": sorted(m for m in sys.modules if m.startswith("tensorflow"))},
              open(out_npz + ".json", "w"))
""")

BAD_CASES = [  # each: {input: (value, dtype)}
    {"x": (np.zeros((2, 5)).tolist(), "float32")},  # y missing
    {"x": (np.zeros((2, 5)).tolist(), "float64"), "y": (np.zeros((2, 6)).tolist(), "float32")},
    {"x": (np.zeros((2, 4)).tolist(), "float32"), "y": (np.zeros((2, 6)).tolist(), "float32")},
    {"x": (np.zeros((2, 5)).tolist(), "float32"), "y": (np.zeros((2, 6)).tolist(), "float32"),
     "z": (np.zeros(1).tolist(), "float32")},
]


def _convert_and_save(src: str, dst: str, backend: str, **kw) -> trt.TrtGraphConverterV2:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, backend=backend,
                                   minimum_segment_size=1, **kw)
    conv.convert()
    conv.save(dst)
    return conv


@pytest.fixture(scope="module")
def two_input_dir(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("src") / "two"), two_input_model, SPECS)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_fully_converted_model_runs_where_tensorflow_cannot_be_imported(
        two_input_dir: str, tmp_path, backend: str) -> None:
    dst = str(tmp_path / "converted")
    _convert_and_save(two_input_dir, dst, backend)
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    y = RNG.standard_normal((3, 6)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x, y=y)
    (tmp_path / "bad.json").write_text(json.dumps(BAD_CASES))
    out = str(tmp_path / "out.npz")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, str(script), dst, str(tmp_path / "in.npz"), out,
                           str(tmp_path / "bad.json")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(open(out + ".json").read())
    assert report["tf_modules"] == []
    got = dict(np.load(out))
    want = tf.saved_model.load(two_input_dir).signatures["serving_default"](
        x=tf.constant(x), y=tf.constant(y))
    assert sorted(got) == sorted(want) == ["a_sum", "b_relu"]
    for name in got:
        assert max_rel_err(got[name], want[name].numpy()) < 1e-5, name
    # the same bad inputs get the same errors as through tftrt.load (TensorFlow's path)
    fn = tftrt.load(dst).signatures["serving_default"]
    expected = []
    for case in BAD_CASES:
        with pytest.raises(InputSpecError) as exc:
            fn(**{k: np.asarray(v, dtype=d) for k, (v, d) in case.items()})
        expected.append(str(exc.value))
    assert report["errors"] == expected
    assert "missing inputs ['y']" in expected[0] and "dtype float32" in expected[1]
    assert f": {backend}" in report["describe"][0]


def test_outputs_follow_the_recorded_plan(two_input_dir: str, tmp_path) -> None:
    dst = str(tmp_path / "converted")
    conv = _convert_and_save(two_input_dir, dst, "onnxruntime")
    model = load_standalone(dst)
    (op,) = conv.engines.values()
    # the plan maps signature inputs to engine inputs by the tensors they stand for
    sig_refs = [s.ref for s in model.inputs]
    assert [sig_refs[k] for k in model.plan.inputs] == [s.ref for s in op.inputs]
    assert model.plan.inputs == (1, 0)  # the engine takes y first: the plan reorders
    x = RNG.standard_normal((2, 5)).astype(np.float32)
    y = RNG.standard_normal((2, 6)).astype(np.float32)
    got = model(x, y)  # positional, in the signature's order
    h = y @ W + x
    assert max_rel_err(got["b_relu"], np.maximum(h, 0) * 2) < 1e-5
    assert max_rel_err(got["a_sum"], h.sum(axis=1) + B[0]) < 1e-5
    assert model.engine.stats.engine_calls == 1 and model.engine.stats.native_calls == 0


def test_model_that_is_not_one_engine_is_refused(two_input_dir: str, tmp_path,
                                                 monkeypatch) -> None:
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", "Relu")
    dst = str(tmp_path / "split")
    _convert_and_save(two_input_dir, dst, "onnxruntime")
    with open(os.path.join(dst, ASSET_DIR, MANIFEST)) as f:
        assert json.load(f)["whole_model"] is None
    with pytest.raises(SavedModelError, match="not one engine end to end.*tftrt.load"):
        load_standalone(dst)


def _edit_manifest(path: str, edit) -> None:
    mpath = os.path.join(path, ASSET_DIR, MANIFEST)
    with open(mpath) as f:
        manifest = json.load(f)
    edit(manifest)
    with open(mpath, "w") as f:
        json.dump(manifest, f)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.pop("whole_model"), "without a whole-model plan"),
    (lambda m: m["whole_model"].update(engine="nope"), "is not one of the engines"),
    (lambda m: m["whole_model"].update(inputs=[0]), "one signature input for each"),
    (lambda m: m["whole_model"].update(inputs=[0, 9]), r"inputs\[1\] must be < 2"),
    (lambda m: m["whole_model"].update(outputs=[0, 7]), r"outputs\[1\] must be < 2"),
    (lambda m: m["whole_model"].update(outputs="all"), "must be a list"),
])
def test_bad_plan_gets_a_clear_error(two_input_dir: str, tmp_path, edit, message) -> None:
    dst = str(tmp_path / "converted")
    _convert_and_save(two_input_dir, dst, "onnxruntime")
    _edit_manifest(dst, edit)
    with pytest.raises(SavedModelError, match=message):
        load_standalone(dst)


def test_runtime_needs_only_the_manifest_and_engine_files(two_input_dir: str,
                                                           tmp_path) -> None:
    """What a deployment image ships: assets/tftrt/ without the TF graph and variables."""
    import shutil

    dst = str(tmp_path / "converted")
    _convert_and_save(two_input_dir, dst, "onnxruntime")
    slim = tmp_path / "slim"
    shutil.copytree(os.path.join(dst, ASSET_DIR), slim / ASSET_DIR)
    os.remove(slim / ASSET_DIR / "converted_graph.pb")
    model = load_standalone(str(slim))
    x = RNG.standard_normal((1, 5)).astype(np.float32)
    y = RNG.standard_normal((1, 6)).astype(np.float32)
    assert max_rel_err(model(x=x, y=y)["a_sum"], (y @ W + x).sum(axis=1) + B[0]) < 1e-5


def test_saved_openvino_model_runs_on_onnxruntime(two_input_dir: str, tmp_path) -> None:
    dst = str(tmp_path / "converted")
    _convert_and_save(two_input_dir, dst, "openvino")
    model = load_standalone(dst, backend="onnxruntime", providers="cpu")
    x = np.ones((1, 5), np.float32)
    y = np.ones((1, 6), np.float32)
    assert max_rel_err(model(x=x, y=y)["a_sum"], (y @ W + x).sum(axis=1) + B[0]) < 1e-5
    assert model.describe() == [f"{model.engine.name} [[1, 6], [1, 5]]: onnxruntime on "
                                "CPUExecutionProvider, precision FP32"]
    with pytest.raises(ValueError, match="takes no execution providers"):
        load_standalone(dst, backend="openvino", providers="cpu")
    with pytest.raises(Exception, match="run_device needs a GPU provider"):
        model.run_on_device(x=x, y=y)
