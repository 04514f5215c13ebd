"""FP32, FP16 and INT8 engines against TF native, side by side in one run: median ms per call.

    python benchmarks/bench_precision.py [--model resnet50] [--backend openvino] [--calls 60]

The model is keras.applications with random weights, exported as a SavedModel;
the native baseline is that SavedModel's serving signature. INT8 is calibrated
with ``--calib-batches`` batches of ``--calib-batch`` random images (entropy by
default), and the time calibration takes (recording plus computing scales) is
reported on its own. Results go to benchmarks/results/precision.json.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_models import write_results  # noqa: E402  (this script's directory)

from tftrt import trt_convert as trt  # noqa: E402
from tftrt.cli import interleaved_median_ms  # noqa: E402

MODELS = {"resnet50": keras.applications.ResNet50,
          "mobilenet_v2": keras.applications.MobileNetV2}


class TimedConverter(trt.TrtGraphConverterV2):
    """Records how long calibration itself takes."""

    calibration_s = 0.0

    def _calibrate(self, *args, **kwargs) -> None:
        t0 = time.perf_counter()
        super()._calibrate(*args, **kwargs)
        self.calibration_s = time.perf_counter() - t0


def cpu_flags() -> list[str]:
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    wanted = r"\b(avx2|avx512f|avx512_bf16|avx512_fp16|avx512_vnni|avx_vnni|amx_tile)\b"
    return sorted(set(re.findall(wanted, text)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50", choices=list(MODELS))
    p.add_argument("--backend", default="openvino")
    p.add_argument("--calls", type=int, default=60)
    p.add_argument("--calib-batches", type=int, default=4)
    p.add_argument("--calib-batch", type=int, default=8)
    p.add_argument("--method", default="entropy")
    p.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" /
                                        "precision.json"))
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((1, 224, 224, 3), dtype=np.float32)
    calib = [rng.random((args.calib_batch, 224, 224, 3), dtype=np.float32)
             for _ in range(args.calib_batches)]
    with tempfile.TemporaryDirectory() as workdir:
        keras.utils.set_random_seed(0)
        src = os.path.join(workdir, args.model)
        MODELS[args.model](weights=None, classifier_activation=None).export(src, verbose=False)
        loaded = tf.saved_model.load(src)
        serve = loaded.signatures["serving_default"]
        (in_name,) = serve.structured_input_signature[1]
        want = next(iter(serve(**{in_name: tf.constant(x)}).values())).numpy()
        runs = []
        for mode in ("FP32", "FP16", "INT8"):
            t0 = time.perf_counter()
            conv = TimedConverter(input_saved_model_dir=src, precision_mode=mode,
                                  backend=args.backend, calibration_method=args.method)
            fn = conv.convert(calibration_input_fn=(lambda: ([c] for c in calib))
                              if mode == "INT8" else None)
            convert_s = time.perf_counter() - t0
            conv.build(lambda: [[x]])
            runs.append((mode, conv, fn, convert_s))
        xt = tf.constant(x)
        fns = [lambda: serve(**{in_name: xt})] + [lambda f=f: f(x) for _, _, f, _ in runs]
        native, *ours = interleaved_median_ms(fns, args.calls)
    rows = []
    for (mode, conv, fn, convert_s), ms in zip(runs, ours, strict=True):
        got = next(iter(fn(x).values())).numpy()
        (op,) = conv.engines.values()
        rows.append({"model": args.model, "batch": 1, "precision_mode": mode,
                     "runs": op.precision, "backend": conv.backend,
                     "tf_native_ms": round(native, 2), "tftrt_ms": round(ms, 2),
                     "speedup": round(native / ms, 2),
                     "max_rel_err": float(np.abs(got - want).max() / np.abs(want).max()),
                     "top1_agrees": bool(np.argmax(got) == np.argmax(want)),
                     "convert_s": round(convert_s, 2),
                     "calibration_s": round(conv.calibration_s, 2) if mode == "INT8" else None})
    print(f"{'mode':5} {'runs':5} {'TF ms':>8} {'tftrt ms':>9} {'speedup':>8} {'rel err':>8} "
          f"{'convert s':>9} {'calib s':>8}")
    for r in rows:
        cal = "" if r["calibration_s"] is None else f"{r['calibration_s']:.1f}"
        print(f"{r['precision_mode']:5} {r['runs']:5} {r['tf_native_ms']:>8.2f} "
              f"{r['tftrt_ms']:>9.2f} {r['speedup']:>7.2f}x {r['max_rel_err']:>8.1e} "
              f"{r['convert_s']:>9.1f} {cal:>8}")
    calib_meta = {"batches": args.calib_batches, "batch": args.calib_batch,
                  "method": args.method}
    write_results(args.out, rows, cpu_flags=cpu_flags(), load_average=os.getloadavg(),
                  calibration=calib_meta)


if __name__ == "__main__":
    main()
