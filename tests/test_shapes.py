"""Dynamic shapes and engine reuse through the converter: implicit batch mode, each
profile strategy, save and load without builds, threads, and bad build inputs."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import export_module, max_rel_err
from tftrt import load as tftrt_load
from tftrt import trt_convert as trt
from tftrt.errors import InputSpecError

RNG = np.random.default_rng(7)
D = 64
W = RNG.standard_normal((D, D)).astype(np.float32) / 8
GAMMA = RNG.uniform(0.5, 1.5, D).astype(np.float32)
BETA = RNG.standard_normal(D).astype(np.float32)


def block(x):
    """A transformer-like block over [batch, seq, 64]: layer norm, einsum, gelu, softmax."""
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    var = tf.reduce_mean(tf.math.squared_difference(x, mean), axis=-1, keepdims=True)
    h = (x - mean) * tf.math.rsqrt(var + 1e-5) * GAMMA + BETA
    h = tf.nn.gelu(tf.einsum("bsd,de->bse", h, W), approximate=False)
    att = tf.nn.softmax(tf.einsum("bsd,btd->bst", h, h) / 8.0, axis=-1)
    return tf.einsum("bst,btd->bsd", att, h) + x


def mlp(x):
    return tf.nn.relu(tf.matmul(tf.tanh(x * 0.5 + 0.1), W[:16, :16]) - 0.2)


@pytest.fixture(scope="module")
def block_dir(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("block") / "m"), block,
                         [tf.TensorSpec([None, None, D], tf.float32)])


@pytest.fixture(scope="module")
def mlp_dir(tmp_path_factory) -> str:
    return export_module(str(tmp_path_factory.mktemp("mlp") / "m"), mlp,
                         [tf.TensorSpec([None, 16], tf.float32)])


def _x(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _out(fn, x) -> np.ndarray:
    return next(iter(fn(x).values())).numpy()


def _one_op(conv):
    (op,) = conv.engines.values()
    return op


# -- implicit batch mode -------------------------------------------------------------

def test_implicit_batch_engine_serves_smaller_batches(mlp_dir) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir)
    fn = conv.convert()
    conv.build(lambda: iter([_x(128, 16)]))
    op = _one_op(conv)
    for n in (64, 32, 7, 128, 64):
        x = _x(n, 16)
        assert max_rel_err(_out(fn, x), mlp(x).numpy()) < 1e-5
    assert op.stats.builds == 1 and op.stats.native_calls == 0
    assert op.stats.engine_shapes[((64, 16),)] == 2 and op.stats.engine_shapes[((7, 16),)] == 1
    x = _x(256, 16)
    assert max_rel_err(_out(fn, x), mlp(x).numpy()) < 1e-5
    assert op.stats.builds == 2  # a larger batch builds a second engine
    (key, _), = op.engines()  # maximum_cached_engines=1: the new engine replaced the old
    assert str(key[0]) == "[1-256,16]"


def test_implicit_batch_without_runtime_builds_runs_natively(mlp_dir) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, allow_build_at_runtime=False)
    fn = conv.convert()
    conv.build(lambda: iter([_x(128, 16)]))
    op = _one_op(conv)
    for n in (64, 256, 256, 7):
        x = _x(n, 16)
        assert max_rel_err(_out(fn, x), mlp(x).numpy()) < 1e-5
    assert op.stats.builds == 1
    assert op.stats.native_shapes == {((256, 16),): 2}
    assert op.stats.engine_shapes == {((128, 16),): 1, ((64, 16),): 1, ((7, 16),): 1}


# -- dynamic shape mode: each strategy ---------------------------------------------

BUILT = [(8, 128, D), (4, 384, D)]
PROBES = [(6, 256, D), (1, 128, D), (9, 128, D)]
ON_ENGINE = {  # which of BUILT + PROBES each strategy's profiles serve
    "Range": {(8, 128, D), (4, 384, D), (6, 256, D)},
    "Optimal": {(8, 128, D), (4, 384, D)},
    "Range+Optimal": {(8, 128, D), (4, 384, D), (6, 256, D)},
    "ImplicitBatchModeCompatible": {(8, 128, D), (4, 384, D), (1, 128, D)},
}
PROFILES = {
    "Range": ["[4-8,128-384,64]"],
    "Optimal": ["[8,128,64]", "[4,384,64]"],
    "Range+Optimal": ["[8,128,64]", "[4,384,64]", "[4-8,128-384,64]"],
    "ImplicitBatchModeCompatible": ["[1-8,128,64]", "[1-4,384,64]"],
}

_8, _4 = (8, 128, D), (4, 384, D)
MIN_OPT_MAX = {
    "Range": [((4, 128, D), (8, 384, D), (8, 384, D))],
    "Optimal": [(_8, _8, _8), (_4, _4, _4)],
    "Range+Optimal": [(_8, _8, _8), (_4, _4, _4), ((4, 128, D), (8, 384, D), (8, 384, D))],
    "ImplicitBatchModeCompatible": [((1, 128, D), _8, _8), ((1, 384, D), _4, _4)],
}


@pytest.mark.parametrize("strategy", sorted(ON_ENGINE))
def test_strategy_profiles_and_what_runs_where(block_dir, strategy, caplog) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=block_dir, use_dynamic_shape=True,
                                   dynamic_shape_profile_strategy=strategy)
    fn = conv.convert()
    conv.build(lambda: (_x(*s) for s in BUILT))
    op = _one_op(conv)
    assert [str(p) for p in op.profiles] == PROFILES[strategy]
    assert op.stats.builds == 1 and op.stats.engine_calls == 0  # build() only built
    assert [(p.min[0], p.opt[0], p.max[0]) for p in op.profiles] == MIN_OPT_MAX[strategy]
    with caplog.at_level(logging.WARNING, "tftrt"):
        for shape in BUILT + PROBES:
            x = _x(*shape)
            assert max_rel_err(_out(fn, x), block(x).numpy()) < 1e-4, shape
    assert op.stats.builds == 1  # a shape outside every profile never rebuilds
    assert {s[0] for s in op.stats.engine_shapes} == ON_ENGINE[strategy]
    assert {s[0] for s in op.stats.native_shapes} == set(BUILT + PROBES) - ON_ENGINE[strategy]
    assert caplog.text.count("lie in no profile") == 1  # one warning per engine
    text = []
    conv.summary(print_fn=text.append)
    assert f"Profiles ({strategy}): {'; '.join(PROFILES[strategy])}" in text[0]
    assert "Runs as: " in text[0]


def test_no_build_makes_a_range_profile_of_the_first_call(block_dir, caplog) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=block_dir, use_dynamic_shape=True)
    fn = conv.convert()
    op = _one_op(conv)
    with caplog.at_level(logging.WARNING, "tftrt"):
        for shape in [(2, 16, D), (2, 16, D), (3, 16, D)]:
            x = _x(*shape)
            assert max_rel_err(_out(fn, x), block(x).numpy()) < 1e-4
    assert [str(p) for p in op.profiles] == ["[2,16,64]"]
    assert op.stats.builds == 1
    assert op.stats.engine_shapes == {((2, 16, D),): 2}
    assert op.stats.native_shapes == {((3, 16, D),): 1}
    assert "lie in no profile" in caplog.text


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_range_optimal_on_each_backend(block_dir, backend) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=block_dir, use_dynamic_shape=True,
                                   dynamic_shape_profile_strategy="range+optimal",
                                   backend=backend)
    fn = conv.convert()
    conv.build(lambda: (_x(*s) for s in BUILT))
    for shape in BUILT + PROBES[:1]:
        x = _x(*shape)
        assert max_rel_err(_out(fn, x), block(x).numpy()) < 1e-4
    op = _one_op(conv)
    assert op.stats.native_calls == 0 and op.stats.engine_calls == 3
    if backend == "openvino":  # static models for the optimal shapes, a bounded one for the range
        assert op.realization == "openvino: 3 static compiled models + 1 with bounded dynamic dims"


# -- save and load --------------------------------------------------------------

@pytest.mark.parametrize("dynamic", [False, True])
def test_saved_engines_serve_the_built_shapes_without_builds(block_dir, tmp_path,
                                                             dynamic) -> None:
    kwargs = {"use_dynamic_shape": True, "dynamic_shape_profile_strategy": "Optimal"} \
        if dynamic else {"maximum_cached_engines": 2}
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=block_dir, **kwargs)
    conv.convert()
    conv.build(lambda: (_x(*s) for s in BUILT))
    conv.save(str(tmp_path / "out"))
    loaded = tftrt_load(str(tmp_path / "out"))
    fn = loaded.signatures["serving_default"]
    shapes = BUILT + ([] if dynamic else [(2, 128, D), (3, 384, D)])  # implicit: smaller too
    for shape in shapes:
        x = _x(*shape)
        assert max_rel_err(_out(fn, x), block(x).numpy()) < 1e-4
    (op,) = loaded.engines.values()
    assert op.stats.builds == 0 and op.stats.engine_calls == len(shapes)
    if dynamic:
        assert [str(p) for p in op.profiles] == PROFILES["Optimal"]


def test_engine_compiled_for_another_machine_is_rebuilt(mlp_dir, tmp_path, monkeypatch,
                                                        caplog) -> None:
    from tftrt.engines.openvino_backend import OpenVinoBackend

    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, backend="openvino")
    conv.convert()
    conv.build(lambda: iter([_x(32, 16)]))
    conv.save(str(tmp_path / "out"))
    monkeypatch.setattr(OpenVinoBackend, "target", lambda self: "x86_64:avx2")
    with caplog.at_level(logging.WARNING, "tftrt"):
        loaded = tftrt_load(str(tmp_path / "out"))
        fn = loaded.signatures["serving_default"]
        for n in (8, 32):
            x = _x(n, 16)
            assert max_rel_err(_out(fn, x), mlp(x).numpy()) < 1e-5
    (op,) = loaded.engines.values()
    assert "compiled for" in caplog.text and "x86_64:avx2" in caplog.text
    # rebuilt once, for the saved engine's profile (batch <= 32), not per call shape
    assert (op.stats.load_failures, op.stats.builds, op.stats.engine_calls) == (1, 1, 2)
    assert [str(k[0]) for k, _ in op.engines()] == ["[1-32,16]"]


@pytest.mark.parametrize("backend,suffix", [("openvino", ".blob"), ("onnxruntime", ".onnx")])
def test_engines_are_exported_for_the_backends_tools(mlp_dir, tmp_path, monkeypatch, backend,
                                                     suffix) -> None:
    monkeypatch.setenv("TF_TRT_EXPORT_TRT_ENGINES_PATH", str(tmp_path / "engines"))
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, backend=backend)
    fn = conv.convert()
    fn(_x(4, 16))
    (name,) = conv.engines
    files = sorted(p.name for p in (tmp_path / "engines").iterdir())
    # openvino: a static model at the built batch and a bounded one for batches 1-4
    assert files == ([f"{name}.1-4x16.1-4x16{suffix}", f"{name}.1-4x16.4x16{suffix}"]
                     if backend == "openvino" else [f"{name}.1-4x16{suffix}"])
    data = (tmp_path / "engines" / files[-1]).read_bytes()
    if backend == "openvino":
        import io

        import openvino as ov

        # OpenVINO applies the precision hint again on import (bf16 on AMX by default)
        compiled = ov.Core().import_model(io.BytesIO(data), "CPU",
                                          {"INFERENCE_PRECISION_HINT": "f32"})
        x = _x(4, 16)
        got = compiled.create_infer_request().infer([x])[compiled.outputs[0]]
    else:
        import onnxruntime as ort

        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        x = _x(4, 16)
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert max_rel_err(got, mlp(x).numpy()) < 1e-5


# -- threads ------------------------------------------------------------------------

def two_engines(x):
    h = tf.tanh(x * 0.5 + 0.1) * 2.0 - 0.3
    h = tf.math.bessel_i0e(h)  # no converter: cuts the graph into two engines
    return tf.nn.relu(tf.matmul(h * 1.5 + 0.2, W[:16, :16]) - 0.1)


@pytest.mark.parametrize("dynamic", [False, True])
def test_threads_share_engines_built_once(tmp_path, dynamic) -> None:
    path = export_module(str(tmp_path / "m"), two_engines,
                         [tf.TensorSpec([None, 16], tf.float32)])
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, use_dynamic_shape=dynamic,
                                   maximum_cached_engines=4)
    fn = conv.convert()
    assert len(conv.engines) == 2
    if dynamic:
        conv.build(lambda: iter([_x(1, 16), _x(16, 16)]))
    built: list = []
    for op in conv.engines.values():  # record every build's profiles
        real = op.backend

        class Recording:
            name = real.name

            def __init__(self, real=real, name=op.name):
                self._real, self._name = real, name

            def version(self):
                return self._real.version()

            def build(self, model, config):
                built.append((self._name, config.profiles))
                return self._real.build(model, config)

        op.backend = Recording()
    batches = [1, 3, 8, 16, 5, 12]
    inputs = [[_x(batches[(t + k) % len(batches)], 16) for k in range(25)] for t in range(8)]
    wants = [[two_engines(x).numpy() for x in row] for row in inputs]
    errors: list = []

    def work(t: int) -> None:
        try:
            for x, want in zip(inputs[t], wants[t], strict=True):
                np.testing.assert_allclose(_out(fn, x), want, rtol=1e-5, atol=1e-5)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert len(built) == len(set(built)), built  # no engine built twice
    for op in conv.engines.values():  # build() ran its 2 items natively to collect shapes
        assert op.stats.engine_calls == 200 and op.stats.native_calls == (2 if dynamic else 0)
    if dynamic:
        assert built == []  # build() built them; every batch lies in [1-16,16]


# -- bad input ------------------------------------------------------------------------

def test_unknown_strategy_lists_the_valid_ones(mlp_dir) -> None:
    with pytest.raises(ValueError, match=r"'Best'.*\['Range', 'Optimal', 'Range\+Optimal', "
                                         r"'ImplicitBatchModeCompatible'\]"):
        trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, use_dynamic_shape=True,
                                dynamic_shape_profile_strategy="Best")


@pytest.mark.parametrize("items,match", [
    (lambda: iter([[_x(2, 16)], [_x(2, 16), _x(2, 16)]]),
     "item 1 has 2 positional inputs but item 0 had 1 positional inputs"),
    (lambda: iter([{"x": _x(2, 16)}, {"y": _x(2, 16)}]), r"item 1 has inputs \['y'\]"),
    (lambda: iter([_x(2, 16), _x(2, 16, 1)]), "item 1: input 'x' must have rank 2"),
    (lambda: iter([_x(2, 16).astype(np.float64)]), "item 0: input 'x' must have dtype float32"),
])
@pytest.mark.parametrize("dynamic", [False, True])
def test_bad_build_inputs_are_refused(mlp_dir, items, match, dynamic) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=mlp_dir, use_dynamic_shape=dynamic)
    conv.convert()
    with pytest.raises(InputSpecError, match=match):
        conv.build(items)
    op = _one_op(conv)
    assert op.collector is None and not op.engines()  # nothing half-built stays behind


def _convert_and_save(src: str, dst: str, seq: int | None = None) -> list[str]:
    if seq is not None:  # number the engines as another process did
        import itertools

        from tftrt.compiler import codegen

        codegen._GRAPH_SEQ = itertools.count(seq)
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src)
    conv.convert()
    conv.save(dst)
    return sorted(conv.engines)


def test_models_with_the_same_engine_names_load_side_by_side(tmp_path) -> None:
    """Two models converted by different processes can have the same engine names; TensorFlow
    keeps one function per name, so loading renames the loaded model's functions."""
    import subprocess
    import sys

    def variant(k: int):
        def f(x):
            return two_engines(x * (1.0 + k))
        return f

    src = [export_module(str(tmp_path / f"m{k}"), variant(k),
                         [tf.TensorSpec([None, 16], tf.float32)]) for k in range(2)]
    names = _convert_and_save(src[0], str(tmp_path / "out0"))
    seq = int(names[0].split("_")[1])
    code = ("import sys; from tests.test_shapes import _convert_and_save; "
            "print(_convert_and_save(sys.argv[1], sys.argv[2], int(sys.argv[3])))")
    done = subprocess.run([sys.executable, "-c", code, src[1], str(tmp_path / "out1"),
                           str(seq)], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith(str(names))  # the same engine names
    fns = [tftrt_load(str(tmp_path / f"out{k}")).signatures["serving_default"]
           for k in range(2)]
    x = _x(3, 16)
    for k, fn in enumerate(fns):
        assert max_rel_err(_out(fn, x), variant(k)(x).numpy()) < 1e-5
