"""The guide's quickstart pattern: build at batch 128, then infer a data set in batches
of 64 with a smaller last batch. Engine builds, calls per second, against TF native.

    python benchmarks/bench_shapes.py [--models mlp mobilenet_v2] [--epochs 5]

Per model, in one run: TensorFlow's SavedModel signature and the converted function
(implicit batch mode, the default) over the same batches, epoch after epoch; the
first epoch's time includes whatever engines the cache builds at run time. Then the
converted model is saved, and ``tftrt.load`` plus its first call is timed against
``build()``. Uses only the public API, so the same script measures an older tftrt
(``PYTHONPATH=<old checkout>``) for a before/after comparison.
Results: a table, and benchmarks/results/shapes.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tftrt  # noqa: E402
from tftrt import trt_convert as trt  # noqa: E402

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile")


def cpu_flags() -> list[str]:
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return [f for f in FLAGS if f in text]


def make_model(name: str, path: str) -> tuple[str, tuple[int, ...]]:
    keras.utils.set_random_seed(0)
    if name == "mlp":  # the quickstart's model
        shape = (8, 8)
        model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(),
                                  keras.layers.Dense(128, activation="relu"),
                                  keras.layers.Dense(10)])
    else:
        shape = (96, 96, 3)
        model = keras.applications.MobileNetV2(weights=None, input_shape=shape,
                                               classifier_activation=None)
    model.export(path, verbose=False)
    return path, shape


def total_builds(engines) -> int:
    return sum(op.stats.builds for op in engines.values())


def epochs_ms(runs, batches, epochs: int) -> list[tuple[float, float]]:
    """Per callable: (first epoch, median of the later ones) in ms, epochs interleaved so
    that every callable sees the same machine conditions."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(epochs):
        for k, run in enumerate(runs):
            t0 = time.perf_counter()
            for b in batches:
                run(b)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return [(t[0], statistics.median(t[1:])) for t in times]


def bench(name: str, samples: int, epochs: int, workdir: str) -> dict:
    src, shape = make_model(name, os.path.join(workdir, name))
    data = np.random.default_rng(0).random((samples, *shape)).astype(np.float32)
    batches = [data[i:i + 64] for i in range(0, samples, 64)]  # 64s, then a smaller last
    serve = tf.saved_model.load(src).signatures["serving_default"]
    (in_name,) = serve.structured_input_signature[1]

    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src)
    fn = conv.convert()
    t0 = time.perf_counter()
    conv.build(input_fn=lambda: iter([data[:128]]))
    build_ms = (time.perf_counter() - t0) * 1e3
    after_build = total_builds(conv.engines)

    (tf_first, tf_ms), (first, steady) = epochs_ms(
        [lambda b: serve(**{in_name: tf.constant(b)}), fn], batches, epochs)
    builds = total_builds(conv.engines) - after_build

    out = os.path.join(workdir, f"{name}_converted")
    conv.save(out)
    t0 = time.perf_counter()
    loaded = tftrt.load(out)
    loaded.signatures["serving_default"](batches[0])
    load_first_ms = (time.perf_counter() - t0) * 1e3
    loaded_builds = total_builds(loaded.engines)
    calls = len(batches)
    return {"model": name, "samples": samples, "batches": calls,
            "last_batch": int(batches[-1].shape[0]), "build_ms": round(build_ms, 1),
            "builds_in_build": after_build, "runtime_builds_over_epochs": builds,
            "tf_calls_per_s": round(calls / tf_ms * 1e3, 1),
            "tftrt_calls_per_s": round(calls / steady * 1e3, 1),
            "tftrt_first_epoch_ms": round(first, 1), "tf_first_epoch_ms": round(tf_first, 1),
            "load_plus_first_call_ms": round(load_first_ms, 1),
            "builds_after_load": loaded_builds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "mobilenet_v2"])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" /
                                             "shapes.json"))
    args = parser.parse_args()
    meta = {"tftrt": tftrt.__version__, "tftrt_path": os.path.dirname(tftrt.__file__),
            "tensorflow": tf.__version__, "cpu_flags": cpu_flags(),
            "cores": os.cpu_count(), "machine": platform.processor() or platform.machine()}
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            rows.append(bench(name, args.samples, args.epochs, workdir))
            print(json.dumps(rows[-1]), flush=True)
    meta["loadavg"] = os.getloadavg()
    head = ("model", "build_ms", "runtime_builds_over_epochs", "tf_calls_per_s",
            "tftrt_calls_per_s", "load_plus_first_call_ms", "builds_after_load")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(r[h]) for h in head) + " |")
    print(meta)
    pathlib.Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
