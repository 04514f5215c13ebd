"""Writes the TF-TRT SavedModels under this folder with TensorFlow 2.17.1's own converter.

Not run by the tests (TF 2.17 is the last TensorFlow with TF-TRT, and it cannot be
installed beside the TensorFlow the tests use): its outputs are checked in. Run it in a
separate virtualenv with ``tensorflow==2.17.1``:

    python make_models.py OUTDIR

TensorRT is not needed: two Python-level gates of TF-TRT's ``trt_convert.py`` are
bypassed (the TensorRT version check, which needs libnvinfer, and the "is the default
device a GPU" check in ``convert()``); TF-TRT's C++ segmenter and TRTEngineOp writer run
unmodified. Without ``build()`` no engine is serialized, which is what a user has who
called ``convert()`` and ``save()`` only. ``<name>.npz`` holds inputs and the outputs of
the model before conversion, computed by TF 2.17.1.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from tensorflow.python.compiler.tensorrt import trt_convert as trt
from tensorflow.python.ops import array_ops

assert tf.__version__ == "2.17.1", tf.__version__


class _GpuZeros:
    """array_ops as trt_convert sees it, with zeros([]) reporting a GPU device."""

    class _T:
        device = "/job:localhost/replica:0/task:0/device:GPU:0"

    def __getattr__(self, name):
        return getattr(array_ops, name)

    def zeros(self, shape, *a, **k):
        return self._T() if list(shape) == [] else array_ops.zeros(shape, *a, **k)


trt._check_trt_version_compatibility = lambda: None
trt.array_ops = _GpuZeros()


def spec(shape, name, dtype=tf.float32):
    return tf.TensorSpec(shape, dtype, name=name)


class ThreeEngines(tf.Module):
    """Three engines split by BesselI0e (no TF-TRT converter)."""

    def __init__(self):
        super().__init__()
        r = np.random.default_rng(2)
        self.w = [tf.Variable(r.standard_normal(s).astype(np.float32) * 0.5)
                  for s in ((8, 16), (16, 12), (12, 4))]

    @tf.function(input_signature=[spec([None, 8], "x")])
    def __call__(self, x):
        h = tf.nn.relu(tf.matmul(x, self.w[0]) + 0.1) * 0.5
        h = tf.math.bessel_i0e(h)
        h = tf.tanh(tf.matmul(h, self.w[1]) - 0.2) * 2.0
        h = tf.math.bessel_i0e(h)
        return tf.nn.sigmoid(tf.matmul(h, self.w[2])) * 3.0 + 1.0


class TwoInputs(tf.Module):
    """Two inputs, two named outputs, one engine."""

    def __init__(self):
        super().__init__()
        r = np.random.default_rng(3)
        self.w = tf.Variable(r.standard_normal((12, 5)).astype(np.float32))

    @tf.function(input_signature=[spec([None, 6], "a"), spec([None, 6], "b")])
    def __call__(self, a, b):
        h = tf.concat([a + b, a * b], axis=1)
        y = tf.tanh(tf.matmul(h, self.w))
        return {"sum": tf.reduce_sum(y, axis=1, keepdims=True) * 0.5, "act": tf.nn.relu(y) + 1.0}


class SmallCnn(tf.Module):
    """Conv2D/BiasAdd/Relu/MaxPool/Conv2D/Mean: one engine."""

    def __init__(self):
        super().__init__()
        r = np.random.default_rng(4)
        self.k1 = tf.Variable(r.standard_normal((3, 3, 3, 8)).astype(np.float32) * 0.3)
        self.b1 = tf.Variable(r.standard_normal((8,)).astype(np.float32) * 0.1)
        self.k2 = tf.Variable(r.standard_normal((3, 3, 8, 6)).astype(np.float32) * 0.3)

    @tf.function(input_signature=[spec([None, 16, 16, 3], "image")])
    def __call__(self, image):
        h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(image, self.k1, 1, "SAME"), self.b1))
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.nn.relu(tf.nn.conv2d(h, self.k2, 1, "SAME"))
        return tf.reduce_mean(h, axis=[1, 2])


class Tiny(tf.Module):
    def __init__(self):
        super().__init__()
        r = np.random.default_rng(5)
        self.w = tf.Variable(r.standard_normal((8, 4)).astype(np.float32))
        self.b = tf.Variable(r.standard_normal((4,)).astype(np.float32))

    @tf.function(input_signature=[spec([None, 8], "x")])
    def __call__(self, x):
        return tf.nn.relu(tf.matmul(x, self.w) + self.b) * 2.0 + 1.0


MODELS = {
    # name: (module class, converter kwargs, environment, input arrays)
    "three_engines_dynamic_fp32": (
        ThreeEngines, dict(use_dynamic_shape=True, dynamic_shape_profile_strategy="Optimal",
                           maximum_cached_engines=2), {}, {"x": (5, 8)}),
    "two_inputs_implicit_fp32": (
        TwoInputs, dict(maximum_cached_engines=3), {}, {"a": (4, 6), "b": (4, 6)}),
    "cnn_implicit_fp16": (
        SmallCnn, dict(precision_mode="FP16"), {}, {"image": (2, 16, 16, 3)}),
    "unfrozen_dynamic_fp32": (
        Tiny, dict(use_dynamic_shape=True),
        {"TF_TRT_EXPERIMENTAL_FEATURES": "disable_graph_freezing"}, {"x": (3, 8)}),
    "no_runtime_build_fp32": (
        Tiny, dict(allow_build_at_runtime=False, use_dynamic_shape=True,
                   dynamic_shape_profile_strategy="Range"), {}, {"x": (3, 8)}),
}


def make(name, outdir):
    cls, kwargs, env, shapes = MODELS[name]
    rng = np.random.default_rng(7)
    inputs = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    with tempfile.TemporaryDirectory() as tmp:
        module = cls()
        src = os.path.join(tmp, "native")
        tf.saved_model.save(module, src, signatures=module.__call__.get_concrete_function())
        out = tf.saved_model.load(src).signatures["serving_default"](
            **{k: tf.constant(v) for k, v in inputs.items()})
        refs = {f"out_{k}": v.numpy() for k, v in out.items()}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, **kwargs)
            conv.convert()
            dst = os.path.join(outdir, name)
            shutil.rmtree(dst, ignore_errors=True)
            conv.save(dst)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    np.savez(os.path.join(outdir, name + ".npz"), **{f"in_{k}": v for k, v in inputs.items()},
             **refs)
    print("wrote", name)


TF1_MODEL = "tf1_dynamic_op_fp32"


def make_tf1(outdir):
    """A TF1 SavedModel (simple_save) converted by TF-TRT's TF1 TrtGraphConverter with
    is_dynamic_op: TRTEngineOp in the top-level graph, no object graph. Needs TF1
    behaviour, so it runs in a process of its own."""
    tf.compat.v1.disable_v2_behavior()
    r = np.random.default_rng(6)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "tf1")
        g = tf.Graph()
        with g.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, 8], name="x")
            w = tf.constant(r.standard_normal((8, 4)).astype(np.float32))
            y = tf.identity(tf.nn.relu(tf.matmul(x, w) + 0.5) * 2.0 + 1.0, name="y")
            with tf.compat.v1.Session(graph=g) as sess:
                xin = r.standard_normal((3, 8)).astype(np.float32)
                ref = sess.run(y, {x: xin})
                tf.compat.v1.saved_model.simple_save(sess, src, {"x": x}, {"y": y})
        conv = trt.TrtGraphConverter(input_saved_model_dir=src, is_dynamic_op=True)
        conv.convert()
        dst = os.path.join(outdir, TF1_MODEL)
        shutil.rmtree(dst, ignore_errors=True)
        conv.save(dst)
    np.savez(os.path.join(outdir, TF1_MODEL + ".npz"), in_x=xin, out_y=ref)
    print("wrote", TF1_MODEL)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    wanted = sys.argv[2:] or [*MODELS, TF1_MODEL]
    for model in wanted:
        if model != TF1_MODEL:
            make(model, target)
    if TF1_MODEL in wanted:
        if wanted == [TF1_MODEL]:
            make_tf1(target)
        else:
            subprocess.run([sys.executable, __file__, target, TF1_MODEL], check=True)
