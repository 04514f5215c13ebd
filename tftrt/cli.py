"""The ``tftrt`` command line: convert, summary, report, bench, migrate,
compare-partitioners, demo, and serving behind Triton (export-triton, serve,
install-triton).

Each subcommand lives in its own module (``tftrt.commands``, or a function here);
``main`` dispatches and turns a user's mistake into one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from tftrt.commands import bench, convert, data, report, summary
from tftrt.errors import TftrtError
from tftrt.research import models as research_models


def median_ms(fn: Callable[[], object], calls: int, warmup: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``calls`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def interleaved_median_ms(fns: Sequence[Callable[[], object]], calls: int,
                         warmup: int = 5, block: int = 5) -> list[float]:
    """Median ms per call of each of ``fns``, timed in alternating blocks of ``block`` calls.

    Alternating keeps every candidate under the same machine conditions (this
    machine kind is a shared VM whose speed drifts); blocks keep each one's
    caches and thread pools warm.
    """
    return [statistics.median(t) for t in bench.interleaved_times(fns, calls, warmup, block)]


def _demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="tftrt-demo-") as workdir:
        return _run_demo(args, workdir)


def _run_demo(args: argparse.Namespace, workdir: str) -> int:
    import keras
    import numpy as np
    import tensorflow as tf

    from tftrt import trt_convert as trt

    src = os.path.join(workdir, "mobilenet_v2")
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, classifier_activation=None)
    model.export(src, verbose=False)
    print("Exported keras.applications.MobileNetV2 (random weights) as a SavedModel")
    t0 = time.perf_counter()
    converter = trt.TrtGraphConverterV2(input_saved_model_dir=src, backend=args.backend)
    trt_func = converter.convert()
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    converter.build(input_fn=lambda: iter([[x]]))
    print(f"Converted and built in {time.perf_counter() - t0:.1f} s")
    converter.summary()
    serve = tf.saved_model.load(src).signatures["serving_default"]
    (name,) = serve.structured_input_signature[1]
    xt = tf.constant(x)
    native_ms, conv_ms = interleaved_median_ms(
        [lambda: serve(**{name: xt}), lambda: trt_func(x)], args.calls)
    want = next(iter(serve(**{name: xt}).values())).numpy()
    got = next(iter(trt_func(x).values())).numpy()
    err = float(np.abs(got - want).max() / np.abs(want).max())
    print(f"TensorFlow native SavedModel: {native_ms:.2f} ms/call (median of {args.calls})")
    print(f"tftrt, {converter.backend} engine:  {conv_ms:.2f} ms/call")
    print(f"Speedup: {native_ms / conv_ms:.2f}x; max relative difference {err:.2e}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    import tftrt

    params: dict[str, object] = {}
    if args.precision:
        params["precision_mode"] = args.precision
    if args.dynamic_shape is not None:
        params["use_dynamic_shape"] = args.dynamic_shape
    if args.profile_strategy:
        params["dynamic_shape_profile_strategy"] = args.profile_strategy
    tftrt.migrate(args.input, args.output, backend=args.backend,
                  input_saved_model_signature_key=args.signature,
                  build_input_fn=data.input_fn(args.build_data) if args.build_data else None,
                  calibration_input_fn=(data.input_fn(args.calibration_data)
                                        if args.calibration_data else None), **params)
    return 0


def _compare_partitioners(args: argparse.Namespace) -> int:
    from tftrt.research import harness

    configs = [harness.parse_config(c) for c in args.config or DEFAULT_CONFIGS]
    with tempfile.TemporaryDirectory(prefix="tftrt-research-") as workdir:
        rows = harness.compare(args.models, configs, workdir, backend=args.backend,
                               precision_mode=args.precision, calls=args.calls,
                               input_shape=args.input_shape)
    print(harness.table(rows))
    for path in harness.write(rows, args.out, {"backend": args.backend,
                                                "precision": args.precision,
                                                "calls": args.calls}):
        print(f"wrote {path}")
    return 0


DEFAULT_CONFIGS = ("native", "union-find@3", "union-find@1", "cost@1")


def _add_serving_commands(sub: argparse._SubParsersAction) -> None:
    from tftrt.serving.commands import add_commands

    add_commands(sub)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="convert an embedded model and measure the speedup")
    demo.add_argument("--backend", default="auto")
    demo.add_argument("--calls", type=int, default=50)
    demo.set_defaults(func=_demo)


def _add_migrate(sub: argparse._SubParsersAction) -> None:
    mig = sub.add_parser("migrate", help="rewrite a SavedModel that TF-TRT wrote as a tftrt "
                                         "SavedModel (plain TensorFlow 2.18+ runs it)")
    mig.add_argument("input")
    mig.add_argument("output", help="a new or empty directory")
    mig.add_argument("--build-data", default=None, metavar="NPZ",
                     help="build the engines for these inputs before saving (one array per "
                          "signature input; name:0, name:1, ... for several calls)")
    mig.add_argument("--calibration-data", default=None, metavar="NPZ",
                     help="INT8 engines without a usable TensorRT calibration table: "
                          "calibrate on these inputs (same layout as --build-data)")
    mig.add_argument("--precision", default=None, help="FP32, FP16 or INT8 (default: keep)")
    shape = mig.add_mutually_exclusive_group()
    shape.add_argument("--dynamic-shape", dest="dynamic_shape", action="store_true",
                       default=None)
    shape.add_argument("--implicit-batch", dest="dynamic_shape", action="store_false")
    mig.add_argument("--profile-strategy", default=None)
    mig.add_argument("--signature", default=None,
                     help="default: serving_default, or the model's only signature")
    mig.add_argument("--backend", default="auto")
    mig.set_defaults(func=_migrate)


def _add_compare_partitioners(sub: argparse._SubParsersAction) -> None:
    cmp = sub.add_parser("compare-partitioners",
                         help="compare partitioners on models: a table and plots")
    cmp.add_argument("models", nargs="+",
                     help="SavedModel directories or built-in names "
                          f"({', '.join(research_models.MODELS)})")
    cmp.add_argument("--config", action="append",
                     help="native or PARTITIONER[/COST_MODEL]@MINIMUM_SEGMENT_SIZE "
                          f"(repeatable; default {' '.join(DEFAULT_CONFIGS)})")
    cmp.add_argument("--out", default="partitioner-results")
    cmp.add_argument("--backend", default="auto")
    cmp.add_argument("--precision", default="FP32")
    cmp.add_argument("--calls", type=int, default=200)
    cmp.add_argument("--input-shape", type=int, nargs="+", default=None,
                     help="the sample input's shape, for SavedModel directories")
    cmp.set_defaults(func=_compare_partitioners)


MAX_ERROR = 600  # characters of an error line


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (TensorFlow's: its first line)."""
    text = str(exc).strip() or type(exc).__name__
    if _is_tf_error(exc):
        text = text.splitlines()[0]
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 4] + " ..."


def _is_tf_error(exc: BaseException) -> bool:
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(exc, tf.errors.OpError)


def _user_error(exc: BaseException) -> bool:
    """A mistake in what the user gave (paths, flags, models, data), not a tftrt bug."""
    return isinstance(exc, (TftrtError, ValueError, OSError)) or _is_tf_error(exc)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tftrt", description="Convert TensorFlow SavedModels so that engines "
                     "(OpenVINO, ONNX Runtime, TensorRT) run the parts they can, as TF-TRT "
                     "did; inspect, report and benchmark them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_demo(sub)
    for command in (convert, summary, report, bench):
        command.add_parser(sub)
    _add_migrate(sub)
    _add_compare_partitioners(sub)
    _add_serving_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a user's mistake is one line on stderr and exit status 1."""
    if not os.environ.get("TF_CPP_MIN_LOG_LEVEL"):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # TensorFlow's C++ info lines
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"tftrt {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        log = logging.getLogger("tftrt.cli")
        log.debug("tftrt %s failed", args.command, exc_info=True)
        if _user_error(exc):
            print(f"tftrt {args.command}: error: {one_line(exc)}", file=sys.stderr)
            return 1
        print(f"tftrt {args.command}: internal error: {type(exc).__name__}: {one_line(exc)} "
              "(TFTRT_LOG=cli=2 shows the traceback; please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
