"""The uint8 SSD-style detector (tests/zoo/hand.py: combined_non_max_suppression with
clip_boxes) against TF native, side by side in one run: median ms per call.

    python benchmarks/bench_detector.py [--batch 1 8] [--calls 300] [--backends openvino]

TF native is the SavedModel's serving signature, as users call it. Calls are
interleaved (each round calls every function once), so load from other processes hits
all of them alike; the load average and CPU flags are printed with the figures and
written to benchmarks/results/detector.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import logging  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.zoo import hand  # noqa: E402
from tests.zoo.measure import machine_line  # noqa: E402
from tftrt import trt_convert as trt  # noqa: E402
from tftrt.cli import interleaved_median_ms  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "detector.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--backends", nargs="+", default=["openvino", "onnxruntime"])
    args = parser.parse_args()
    logging.getLogger("tftrt").setLevel(logging.ERROR)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "ssd")
        hand.build_ssd(src)
        loaded = tf.saved_model.load(src)
        serve = loaded.signatures["serving_default"]
        rng = np.random.default_rng(0)
        feeds = {batch: hand.inputs_ssd(rng, batch) for batch in args.batch}
        fns = {}
        for backend in args.backends:
            # an engine profile per measured batch, as a user who knows them builds
            conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, use_dynamic_shape=True,
                                           backend=backend,
                                           dynamic_shape_profile_strategy="Optimal")
            fn = conv.convert()
            conv.build(lambda: iter(feeds.values()))
            assert len(conv.engines) == 1 and fn.runs_without_tensorflow
            fns[backend] = (fn, conv)
        for batch in args.batch:
            images = feeds[batch]["images"]
            tensor = tf.constant(images)
            calls = [lambda t=tensor: serve(images=t)] + [
                lambda f=f, x=images: f(images=x) for f, _ in fns.values()]
            ms = interleaved_median_ms(calls, max(20, args.calls // batch))
            row = {"batch": batch, "tf_ms": ms[0], "machine": machine_line()}
            for (backend, (_, conv)), t in zip(fns.items(), ms[1:], strict=True):
                row[f"{backend}_ms"] = t
                (op,) = conv.engines.values()
                assert op.stats.run_failures == 0 and op.stats.native_calls == 0
            rows.append(row)
            line = ", ".join(f"{b} {row[f'{b}_ms']:.3f} ms ({ms[0] / row[f'{b}_ms']:.2f}x)"
                             for b in fns)
            print(f"batch {batch}: TF {ms[0]:.3f} ms, {line}; {row['machine']}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
