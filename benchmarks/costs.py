"""Conversion cost: each measurement in a process of its own, so its peak RSS is its own.

- ``resnet50_fp32``: ResNet50 ``convert()`` + ``build()`` (batch 1), OpenVINO.
- ``vgg16_convert``: VGG16 (138M parameters) ``convert()``, next to the floor of a
  conversion: reading its weights once from disk (``RestoreV2`` of the variables the
  signature reads) and writing them once (``np.copy``, and ``bytes`` as protobuf
  takes them, of every variable).
- ``resnet50_int8_calibration``: ResNet50 INT8 ``convert()`` with calibration on
  4 batches of 8 random images; the calibration itself timed on its own.

    python -m benchmarks.costs NAME     # one, printed as JSON
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.timing import PeakRSS, rss_bytes

MEASUREMENTS = ("resnet50_fp32", "vgg16_convert", "resnet50_int8_calibration")


def _export(factory: str, path: str) -> None:
    import keras

    keras.utils.set_random_seed(0)
    getattr(keras.applications, factory)(weights=None, classifier_activation=None).export(
        path, verbose=False)


def _read_once(path: str) -> float:
    """Seconds to read, from the SavedModel's checkpoint, the variables its signature reads
    (a Keras export holds each twice: ``variables/N`` are those the signature reads)."""
    import tensorflow as tf

    prefix = os.path.join(path, "variables", "variables")
    dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    keys = sorted(k for k in dtypes if k.startswith("variables/"))
    t0 = time.perf_counter()
    for key in keys:
        tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[key], shape_and_slices=[""],
                             dtypes=[dtypes[key]])
    return time.perf_counter() - t0


def _max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, workdir: str) -> dict:
    from tftrt import trt_convert as trt

    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    factory = "VGG16" if name.startswith("vgg16") else "ResNet50"
    path = os.path.join(workdir, factory)
    if not os.path.isdir(path):
        _export(factory, path)
    out: dict = {"name": name, "model": factory}
    before = rss_bytes()
    if name == "resnet50_fp32":
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, backend="openvino")
            conv.convert()
            t1 = time.perf_counter()
            conv.build(lambda: [[x]])
            t2 = time.perf_counter()
        out.update(convert_s=t1 - t0, build_s=t2 - t1, total_s=t2 - t0)
    elif name == "vgg16_convert":
        import tensorflow as tf

        with PeakRSS() as rss:  # first: the floor's own loads would be RSS before it
            t0 = time.perf_counter()
            trt.TrtGraphConverterV2(input_saved_model_dir=path, backend="openvino").convert()
            out["convert_s"] = time.perf_counter() - t0
        loaded = tf.saved_model.load(path)
        values = [v.numpy() for v in loaded.variables]
        t0 = time.perf_counter()
        copies = [np.copy(v) for v in values]
        out["copy_weights_once_s"] = time.perf_counter() - t0
        del copies
        t0 = time.perf_counter()
        copies = [v.tobytes() for v in values]
        out["bytes_weights_once_s"] = time.perf_counter() - t0
        out["weights_mb"] = sum(v.nbytes for v in values) / 2**20
        del copies, values, loaded
        out["read_weights_once_s"] = _read_once(path)
        out["floor_s"] = out["read_weights_once_s"] + out["bytes_weights_once_s"]
    elif name == "resnet50_int8_calibration":
        from tftrt.compiler import calibration

        rng = np.random.default_rng(1)
        calib = [rng.random((8, 224, 224, 3), dtype=np.float32) for _ in range(4)]
        spent = {}

        def timed(fn, key):
            def run(*args, **kwargs):
                t = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    spent[key] = time.perf_counter() - t
            return run
        calibration.calibrate = timed(calibration.calibrate, "scales_s")
        calibration.record = timed(calibration.record, "record_s")
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, backend="openvino",
                                           precision_mode="INT8")
            conv.convert(calibration_input_fn=lambda: ([c] for c in calib))
            out["convert_s"] = time.perf_counter() - t0
        out["calibration_s"] = spent.get("record_s", 0.0) + spent.get("scales_s", 0.0)
        out.update(spent)
    out.update(rss_before_mb=before / 2**20, peak_rss_mb=rss.peak / 2**20,
               added_rss_mb=rss.added / 2**20, max_rss_mb=_max_rss_mb())
    return out


def run_all(names=MEASUREMENTS, workdir: str | None = None) -> list[dict]:
    """Each measurement in a fresh Python process."""
    workdir = workdir or os.path.join(tempfile.gettempdir(), "tftrt-bench-costs")
    os.makedirs(workdir, exist_ok=True)
    results = []
    for name in names:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.costs", name, workdir],
                              capture_output=True, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode or not lines:
            results.append({"name": name, "error": proc.stderr[-800:]})
        else:
            results.append(json.loads(lines[-1]))
        print(json.dumps(results[-1]), flush=True)
    return results


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TQDM_DISABLE", "1")
    workdir = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp()
    print(json.dumps(measure(sys.argv[1], workdir)))
