"""BERT-base (keras_hub BertBackbone, random weights): TF native vs tftrt, one run.

    python benchmarks/bench_bert.py [--seq 128] [--batch 1] [--calls 50]

12 layers, hidden 768, 12 heads, intermediate 3072, vocabulary 30522. The
native baseline is the exported SavedModel's serving signature. Results are
printed and written to benchmarks/results/bert.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tftrt import trt_convert as trt  # noqa: E402
from tftrt.cli import interleaved_median_ms  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--backends", nargs="+", default=["openvino", "onnxruntime"])
    p.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "bert.json"))
    args = p.parse_args()
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30522, num_layers=args.layers, num_heads=12, hidden_dim=768,
        intermediate_dim=3072, max_sequence_length=512)
    rng = np.random.default_rng(0)
    inputs = {"token_ids": rng.integers(0, 30522, (args.batch, args.seq)).astype(np.int32),
              "segment_ids": np.zeros((args.batch, args.seq), np.int32),
              "padding_mask": np.ones((args.batch, args.seq), np.int32)}
    with tempfile.TemporaryDirectory() as workdir:
        src = os.path.join(workdir, "bert")
        backbone.export(src, verbose=False)
        loaded = tf.saved_model.load(src)
        serve = loaded.signatures["serving_default"]
        tf_inputs = {k: tf.constant(v) for k, v in inputs.items()}
        convs = []
        for backend in args.backends:
            t0 = time.perf_counter()
            conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, backend=backend)
            fn = conv.convert()
            conv.build(lambda: iter([inputs]))
            convs.append((backend, conv, fn, time.perf_counter() - t0))
        fns = [lambda: serve(**tf_inputs)] + [lambda f=f: f(**inputs) for _, _, f, _ in convs]
        native, *ours = interleaved_median_ms(fns, args.calls)
        want = serve(**tf_inputs)["sequence_output"].numpy()
        rows = []
        for (backend, conv, fn, convert_s), ms in zip(convs, ours, strict=True):
            got = fn(**inputs)["sequence_output"].numpy()
            rows.append({"model": f"bert-base-{args.layers}L", "seq": args.seq,
                         "batch": args.batch, "backend": backend,
                         "tf_native_ms": round(native, 2), "tftrt_ms": round(ms, 2),
                         "speedup": round(native / ms, 2), "engines": len(conv.engines),
                         "max_rel_err": float(np.abs(got - want).max() / np.abs(want).max()),
                         "convert_and_build_s": round(convert_s, 2), "calls": args.calls})
    for r in rows:
        print(f"{r['model']} seq {r['seq']} batch {r['batch']} {r['backend']:>12}: "
              f"TF {r['tf_native_ms']:.2f} ms, tftrt {r['tftrt_ms']:.2f} ms, "
              f"{r['speedup']:.2f}x, {r['engines']} engine(s), rel err {r['max_rel_err']:.1e}, "
              f"convert+build {r['convert_and_build_s']:.1f} s")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tensorflow": tf.__version__, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
