"""Convert the GPU benchmark's models here (TensorFlow), for bench_gpu.py to run on a GPU
machine without TensorFlow.

    python benchmarks/gpu_prepare.py OUT_DIR [--models mobilenet_v2 resnet50 bert_base]

For each model: a Keras model with random weights, exported as a SavedModel,
converted by tftrt with the onnxruntime backend in FP32 and in FP16 and saved;
then only what the TensorFlow-free runtime reads is kept under
``OUT_DIR/<model>_<precision>/assets/tftrt`` (the manifest and the engine's ONNX:
no TensorFlow graph or variables), with TensorFlow's outputs on the benchmark's
inputs in ``OUT_DIR/<model>_ref.npz``.

The weights are random on a 16-level grid per tensor (odd multiples of a power
of two, no zeros), so that the converted models compress for the trip to the GPU
machine; the PyTorch models in bench_gpu.py get the same treatment
(``coarsen``), and speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import tftrt.runtime  # noqa: E402
from tftrt.manifest import ASSET_DIR  # noqa: E402

BATCHES = (1, 32)
SEQ = 128


def coarsen(w: np.ndarray) -> np.ndarray:
    """``w`` on a grid of 16 levels: odd multiples of half a power-of-two step, sign kept."""
    if w.ndim < 2 or not np.issubdtype(w.dtype, np.floating):
        return w
    peak = float(np.abs(w).max()) or 1.0
    step = 2.0 ** np.floor(np.log2(peak / 8))
    k = np.clip(np.floor(np.abs(w) / step), 0, 7)
    return ((np.sign(w) + (w == 0)) * (k + 0.5) * step).astype(w.dtype)


def inputs_for(name: str, batch: int) -> dict[str, np.ndarray]:
    """The benchmark's inputs (bench_gpu.py makes the same ones; checked by checksum)."""
    rng = np.random.default_rng(1000 + batch)
    if name == "bert_base":
        return {"token_ids": rng.integers(0, 30522, (batch, SEQ)).astype(np.int32),
                "segment_ids": np.zeros((batch, SEQ), np.int32),
                "padding_mask": np.ones((batch, SEQ), np.int32)}
    img = rng.integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
    return {"input": (img.astype(np.float32) / 127.5 - 1.0)}


def checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def keras_model(name: str):
    import keras

    keras.utils.set_random_seed(0)
    if name in ("mobilenet_v2", "resnet50"):
        make = {"mobilenet_v2": keras.applications.MobileNetV2,
                "resnet50": keras.applications.ResNet50}[name]
        model = make(weights=None, classifier_activation=None)  # logits: more to compare
        model.set_weights([coarsen(w) for w in model.get_weights()])
        _recalibrate_batch_norm(model, inputs_for(name, 8)["input"])
        return model
    if name == "bert_base":
        import keras_hub

        model = keras_hub.models.BertBackbone(
            vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768,
            intermediate_dim=3072, max_sequence_length=512)
    else:
        raise ValueError(f"unknown model {name!r}")
    model.set_weights([coarsen(w) for w in model.get_weights()])
    return model


def _recalibrate_batch_norm(model, x: np.ndarray) -> None:
    """Set every batch norm's statistics to those of ``x``'s activations, as training
    would: random weights otherwise shrink activations layer by layer to nothing."""
    import keras

    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in norms:
        layer.momentum = 0.99


def _input_name(serve, name: str, feed: dict) -> dict:
    """Image models: the signature's one input, whatever Keras named it."""
    if name == "bert_base":
        return feed
    (key,) = serve.structured_input_signature[1]
    return {key: feed["input"]}


def _link_duplicates(first: str, second: str) -> None:
    """Files of ``second`` identical to ``first``'s become hard links (tar ships them once)."""
    if first == second:
        return
    def digest(path: str) -> str:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    seen = {digest(os.path.join(r, f)): os.path.join(r, f)
            for r, _, files in os.walk(first) for f in files}
    for root, _, files in os.walk(second):
        for f in files:
            b = os.path.join(root, f)
            a = seen.get(digest(b))
            if a is not None:
                os.remove(b)
                os.link(a, b)


def export(name: str, out: str, workdir: str) -> dict:
    """The model as a SavedModel in ``workdir``, and TensorFlow's outputs in ``out``."""
    import tensorflow as tf

    src = os.path.join(workdir, name)
    keras_model(name).export(src, verbose=False)
    serve = tf.saved_model.load(src).signatures["serving_default"]
    info: dict = {"model": name, "inputs": {}}
    refs = {}
    for batch in BATCHES:
        feed = _input_name(serve, name, inputs_for(name, batch))
        info["inputs"][str(batch)] = {"sha256": checksum(inputs_for(name, batch)),
                                      "names": sorted(feed)}
        for k, v in serve(**{k: tf.constant(v) for k, v in feed.items()}).items():
            refs[f"b{batch}/{k}"] = v.numpy()[:4]  # the first rows: enough to check
    np.savez(os.path.join(out, f"{name}_ref.npz"), **refs)
    return info


def convert(name: str, mode: str, out: str, workdir: str) -> dict:
    """Convert, save, keep what the TensorFlow-free runtime reads, and check its CPU engine
    against TensorFlow's outputs."""
    import tensorflow as tf

    from tftrt import trt_convert as trt

    src = os.path.join(workdir, name)
    t0 = time.perf_counter()
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, backend="onnxruntime",
                                   precision_mode=mode)
    if not conv.convert().runs_without_tensorflow:
        raise RuntimeError(f"{name} did not convert into one engine")
    saved = os.path.join(workdir, f"{name}_{mode.lower()}")
    conv.save(saved, save_gpu_specific_engines=False)
    convert_s = time.perf_counter() - t0
    slim = os.path.join(out, f"{name}_{mode.lower()}")
    shutil.copytree(os.path.join(saved, ASSET_DIR), os.path.join(slim, ASSET_DIR))
    os.remove(os.path.join(slim, ASSET_DIR, "converted_graph.pb"))
    _link_duplicates(os.path.join(out, f"{name}_fp32"), slim)
    model = tftrt.runtime.load(slim, providers="cpu")
    serve = tf.saved_model.load(src).signatures["serving_default"]
    refs = np.load(os.path.join(out, f"{name}_ref.npz"))
    errs = {k: float(np.abs(v[:4] - refs[f"b1/{k}"]).max() / np.abs(refs[f"b1/{k}"]).max())
            for k, v in model(**_input_name(serve, name, inputs_for(name, 1))).items()}
    return {"convert_s": round(convert_s, 1), "cpu_engine_vs_tf_b1": errs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--models", nargs="+", default=["mobilenet_v2", "resnet50", "bert_base"])
    p.add_argument("--step", nargs=3, metavar=("STEP", "MODEL", "WORKDIR"),
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.step:  # one step in a fresh process: engine names restart at _000_000
        step, name, workdir = args.step
        result = export(name, args.out, workdir) if step == "export" else \
            convert(name, step, args.out, workdir)
        with open(os.path.join(args.out, f".{name}.{step}.json"), "w") as f:
            json.dump(result, f)
        return
    infos = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            for step in ("export", "FP32", "FP16"):
                subprocess.run([sys.executable, __file__, args.out, "--step", step, name,
                                workdir], check=True)
            info = {}
            for step in ("export", "FP32", "FP16"):
                path = os.path.join(args.out, f".{name}.{step}.json")
                with open(path) as f:
                    info[step] = json.load(f)
                os.remove(path)
            infos.append({**info.pop("export"), **info})
            print(name, info, flush=True)
    import tensorflow as tf

    with open(os.path.join(args.out, "prepared.json"), "w") as f:
        json.dump({"tensorflow": tf.__version__, "numpy": np.__version__, "models": infos},
                  f, indent=1)


if __name__ == "__main__":
    main()
