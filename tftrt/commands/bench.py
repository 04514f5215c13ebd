"""``tftrt bench IN [OUT]``: the native SavedModel against its converted form, side by side.

OUT is a converted model (``tftrt convert``'s output); without it IN is converted in
memory with the conversion flags and built for the benchmark's inputs. Calls of the
two alternate in blocks, so that load from elsewhere on the machine hits both;
latency percentiles come from every timed call, throughput from their mean.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tftrt.commands import common, convert, data
from tftrt.errors import InputSpecError

PERCENTILES = (50, 90, 99)


def interleaved_times(fns: Sequence[Callable[[], object]], calls: int, warmup: int = 5,
                      block: int = 5) -> list[list[float]]:
    """Milliseconds of each call of each of ``fns``, timed in alternating blocks."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(max(1, calls // block)):
        for k, fn in enumerate(fns):
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1e3)
    return times


def _shape_overrides(items: Sequence[str]) -> dict[str, list[int]]:
    out = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            out[name] = [int(d) for d in dims.split(",")] if sep else None
        except ValueError:
            out[name] = None
        if out[name] is None:
            raise InputSpecError(f"--shape {item!r}: expected NAME=D0,D1,... (integers)")
    return out


def random_inputs(signature: Any, batch: int, shapes: dict[str, list[int]],
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for ``signature`` (a concrete function): unknown dims become ``batch``
    (axis 0) or must be given in ``shapes``."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in signature.structured_input_signature[1].items():
        if name in shapes:
            dims = shapes[name]
        elif spec.shape.rank is None:
            raise InputSpecError(f"input {name!r} has unknown rank: give --shape {name}=...")
        else:
            dims = [batch if d is None and k == 0 else d for k, d in enumerate(spec.shape)]
            if None in dims:
                raise InputSpecError(f"input {name!r} has shape {spec.shape} with unknown "
                                     f"dimensions: give --shape {name}=D0,D1,...")
        dtype = np.dtype(spec.dtype.as_numpy_dtype)
        if np.issubdtype(dtype, np.floating):
            out[name] = rng.random(dims).astype(dtype)
        elif dtype == np.bool_:
            out[name] = rng.random(dims) < 0.5
        else:
            out[name] = rng.integers(0, 10, dims).astype(dtype)
    return out


def _inputs(args: argparse.Namespace, signature: Any) -> dict[str, np.ndarray]:
    names = list(signature.structured_input_signature[1])
    if args.data is None:
        return random_inputs(signature, args.batch, _shape_overrides(args.shape))
    call = data.load_calls(args.data)[0]
    if not isinstance(call, dict):
        if len(names) != 1:
            raise InputSpecError(f"{args.data!r} holds one array but the model has inputs "
                                 f"{names}: use a .npz with one array per input")
        call = {names[0]: call}
    return call


def _stats(times: list[float], items: int) -> dict[str, float]:
    out = {f"p{p}": float(np.percentile(times, p)) for p in PERCENTILES}
    out["mean"] = float(np.mean(times))
    out["per_s"] = items * 1e3 / out["mean"]
    return out


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="latency and throughput: native against converted",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("input", metavar="IN", help="the SavedModel as trained")
    p.add_argument("output", metavar="OUT", nargs="?", default=None,
                   help="its converted form (default: convert IN in memory)")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="inputs (.npy or .npz; the first call is used); default: random")
    p.add_argument("--batch", type=int, default=1,
                   help="batch size of random inputs (default 1)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="shape of a random input whose dimensions the signature leaves open")
    p.add_argument("--calls", type=int, default=100, help="timed calls of each (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    convert.add_converter_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    common.saved_model_dir(args.input)
    if args.output is not None:
        common.converted_model_dir(args.output)
    import tensorflow as tf

    import tftrt

    key = args.signature or "serving_default"
    native_model = tf.saved_model.load(args.input)
    if key not in native_model.signatures:
        raise InputSpecError(f"{args.input!r} has no signature {key!r}; it has "
                             f"{sorted(native_model.signatures)}")
    native = native_model.signatures[key]
    inputs = _inputs(args, native)
    if args.output is None:
        converter = convert.make_converter(args)
        fast = converter.convert(calibration_input_fn=convert.calibration_fn(args))
        converter.build(lambda: [inputs])
        what = f"converted in memory ({converter.backend})"
    else:
        loaded = tftrt.load(args.output, None if args.backend == "auto" else args.backend)
        fast, what = loaded.signatures[key], f"{args.output} ({loaded.manifest['backend']})"
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    want = {k: v.numpy() for k, v in native(**tensors).items()}
    got = {k: np.asarray(v) for k, v in fast(**inputs).items()}
    diff = max(float(np.abs(got[k].astype(np.float64) - want[k]).max()
                     / max(float(np.abs(want[k]).max()), 1e-30)) for k in want)
    t_native, t_fast = interleaved_times([lambda: native(**tensors), lambda: fast(**inputs)],
                                         args.calls, args.warmup)
    items = max((len(v) if np.ndim(v) else 1) for v in inputs.values())
    rows = [("native TensorFlow", _stats(t_native, items)), (what, _stats(t_fast, items))]
    print(f"Inputs: {', '.join(f'{k} {list(v.shape)} {v.dtype}' for k, v in inputs.items())}; "
          f"{len(t_native)} timed calls each; load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    width = max(len(name) for name, _ in rows)
    print(f"{'':{width}}  " + "  ".join(f"{f'p{p} ms':>9}" for p in PERCENTILES)
          + f"  {'mean ms':>9}  {'items/s':>9}")
    for name, s in rows:
        print(f"{name:{width}}  " + "  ".join(f"{s[f'p{p}']:9.3f}" for p in PERCENTILES)
              + f"  {s['mean']:9.3f}  {s['per_s']:9.1f}")
    print(f"Speedup (p50): {rows[0][1]['p50'] / rows[1][1]['p50']:.2f}x; largest difference "
          f"of the outputs, relative to the largest native value: {diff:.2e}")
    return 0
