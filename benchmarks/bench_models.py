"""TF native vs tftrt, side by side in one run: median ms per call.

    python benchmarks/bench_models.py [--models mobilenet_v2 resnet50] [--batch 1 16]

Models are keras.applications with random weights, exported as SavedModels;
the native baseline is that SavedModel's serving signature, as users call it.
``--peer tf2onnx`` adds the peer path (tf2onnx -> ONNX Runtime) in the same run;
tf2onnx is not a dependency: ``pip install --no-deps tf2onnx``.
Results are printed as a table and written to benchmarks/results/models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tftrt import trt_convert as trt  # noqa: E402
from tftrt.cli import interleaved_median_ms  # noqa: E402

MODELS = {
    "mobilenet_v2": keras.applications.MobileNetV2,
    "resnet50": keras.applications.ResNet50,
}


def tf2onnx_peer(serve, in_name: str, batch: int):
    """The peer path: tf2onnx's ONNX of the signature, run by ONNX Runtime; and its time."""
    import onnxruntime as ort
    import tf2onnx

    spec = serve.structured_input_signature[1][in_name]
    t0 = time.perf_counter()
    model, _ = tf2onnx.convert.from_function(
        tf.function(lambda x: serve(**{in_name: x})),
        input_signature=[tf.TensorSpec([batch, *spec.shape[1:]], spec.dtype, name="x")],
        opset=17)
    convert_s = time.perf_counter() - t0
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return (lambda x: sess.run(None, {"x": x})[0]), convert_s


def bench(name: str, batches: list[int], calls: int, backends: list[str],
          workdir: str, peer: str | None = None) -> list[dict]:
    keras.utils.set_random_seed(0)
    src = os.path.join(workdir, name)
    MODELS[name](weights=None, classifier_activation=None).export(src, verbose=False)
    loaded = tf.saved_model.load(src)  # kept alive: the signature reads its variables
    serve = loaded.signatures["serving_default"]
    (in_name,) = serve.structured_input_signature[1]
    rng = np.random.default_rng(0)
    inputs = {b: rng.random((b, 224, 224, 3), dtype=np.float32) for b in batches}
    convs = []
    for backend in backends:
        t0 = time.perf_counter()
        conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, backend=backend,
                                       maximum_cached_engines=len(batches))
        fn = conv.convert()
        convert_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        conv.build(lambda: ([inputs[b]] for b in batches))
        convs.append((conv, fn, convert_s, time.perf_counter() - t0))
    rows = []
    for b in batches:
        x, xt = inputs[b], tf.constant(inputs[b])
        n = max(10, calls // b)
        fns = [lambda xt=xt: serve(**{in_name: xt})] + [lambda x=x, f=f: f(x)
                                                        for _, f, _, _ in convs]
        if peer == "tf2onnx":
            peer_fn, peer_convert_s = tf2onnx_peer(serve, in_name, b)
            fns.append(lambda x=x, f=peer_fn: f(x))
        native, *ours = interleaved_median_ms(fns, n)
        want = next(iter(serve(**{in_name: xt}).values())).numpy()
        if peer == "tf2onnx":
            ms = ours.pop()
            rows.append({"model": name, "batch": b, "tf_native_ms": round(native, 2),
                         "tftrt_ms": round(ms, 2), "speedup": round(native / ms, 2),
                         "max_rel_err": float(np.abs(peer_fn(x) - want).max()
                                              / np.abs(want).max()),
                         "engines": 1, "backend": "peer:tf2onnx+ort",
                         "convert_s": round(peer_convert_s, 2), "build_s": 0.0, "calls": n})
        for (conv, fn, convert_s, build_s), ms in zip(convs, ours, strict=True):
            got = next(iter(fn(x).values())).numpy()
            rows.append({"model": name, "batch": b, "tf_native_ms": round(native, 2),
                         "tftrt_ms": round(ms, 2), "speedup": round(native / ms, 2),
                         "max_rel_err": float(np.abs(got - want).max() / np.abs(want).max()),
                         "engines": len(conv.engines), "backend": conv.backend,
                         "convert_s": round(convert_s, 2), "build_s": round(build_s, 2),
                         "calls": n})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    p.add_argument("--calls", type=int, default=100, help="calls at batch 1 (fewer at larger)")
    p.add_argument("--backends", nargs="+", default=["auto"],
                   help="engine backends to compare (auto, openvino, onnxruntime)")
    p.add_argument("--peer", choices=["tf2onnx"], default=None,
                   help="also time a peer conversion path in the same run")
    p.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" /
                                        "models.json"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        rows = [r for m in args.models for r in bench(m, args.batch, args.calls,
                                                      args.backends, workdir, args.peer)]
    print(f"{'model':14} {'batch':>5} {'backend':>12} {'TF ms':>9} {'tftrt ms':>9} "
          f"{'speedup':>8} {'rel err':>9} {'engines':>7} {'convert s':>9}")
    for r in rows:
        print(f"{r['model']:14} {r['batch']:>5} {r['backend']:>12} {r['tf_native_ms']:>9.2f} "
              f"{r['tftrt_ms']:>9.2f} {r['speedup']:>7.2f}x {r['max_rel_err']:>9.1e} "
              f"{r['engines']:>7} {r['convert_s']:>9.2f}")
    write_results(args.out, rows)


def write_results(path: str, rows: list[dict], **meta) -> None:
    """Write ``rows`` with the machine's facts (and ``meta``) as JSON to ``path``."""
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"tensorflow": tf.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(), **meta}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
