"""``tftrt convert IN OUT``: convert a SavedModel, build its engines, save it.

Every ``TrtGraphConverterV2`` parameter is a flag; ``add_converter_flags`` and
``make_converter`` serve the other commands that convert (report, bench).
"""

from __future__ import annotations

import argparse
from typing import Any

from tftrt.commands import common, data

PRECISIONS = ("FP32", "FP16", "INT8")


def _precision(value: str) -> str:
    if value.upper() not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(PRECISIONS)}")
    return value.upper()


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 1")
    return n


def _segment_size(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if not (n > 0 or n == -1):
        raise argparse.ArgumentTypeError(f"{value!r} must be > 0, or -1 (no engines)")
    return n


def add_converter_flags(p: argparse.ArgumentParser) -> None:
    """The flags of TrtGraphConverterV2's parameters (and tftrt's backend choice)."""
    g = p.add_argument_group("conversion (TrtGraphConverterV2's parameters)")
    g.add_argument("--precision", type=_precision, default="FP32",
                   help="precision_mode: FP32 (default), FP16 or INT8")
    g.add_argument("--minimum-segment-size", type=_segment_size, default=3, metavar="N",
                   help="minimum_segment_size: smallest engine, in nodes (default 3; -1: "
                        "none)")
    g.add_argument("--maximum-cached-engines", type=_positive, default=1, metavar="N",
                   help="maximum_cached_engines: engines kept per engine node (default 1)")
    g.add_argument("--max-workspace-size", type=_positive, default=None, metavar="BYTES",
                   help="max_workspace_size_bytes (TensorRT's workspace; default: unlimited)")
    g.add_argument("--dynamic-shape", action="store_true",
                   help="use_dynamic_shape: one engine serving shape profiles (default: "
                        "implicit batch mode)")
    g.add_argument("--profile-strategy", default=None,
                   help="dynamic_shape_profile_strategy: Range (default), Optimal, "
                        "Range+Optimal or ImplicitBatchModeCompatible")
    g.add_argument("--no-build-at-runtime", dest="allow_build_at_runtime",
                   action="store_false",
                   help="allow_build_at_runtime=False: shapes no saved engine serves run "
                        "natively")
    g.add_argument("--signature", default=None, metavar="KEY",
                   help="input_saved_model_signature_key (default serving_default)")
    g.add_argument("--tags", default=None, metavar="TAG,...",
                   help="input_saved_model_tags (default serve)")
    g.add_argument("--backend", default="auto",
                   help="engine backend: auto (default), openvino, onnxruntime or tensorrt")
    g.add_argument("--calibration-data", default=None, metavar="FILE",
                   help="INT8: calibrate on these inputs (.npy: the one input; .npz: one "
                        "array per input name, name:0, name:1 ... for several calls); "
                        "without it INT8 takes its ranges from the graph's quantization ops")
    g.add_argument("--calibration-batch", type=_positive, default=None, metavar="N",
                   help="split the calibration data into calls of N rows")
    g.add_argument("--calibration-method", default=None,
                   help="entropy (default), minmax or percentile")


def make_converter(args: argparse.Namespace) -> Any:
    """The TrtGraphConverterV2 the flags describe (after checking the input path)."""
    common.saved_model_dir(args.input)
    from tftrt import trt_convert as trt

    params: dict[str, Any] = {}
    if args.max_workspace_size is not None:
        params["max_workspace_size_bytes"] = args.max_workspace_size
    return trt.TrtGraphConverterV2(
        input_saved_model_dir=args.input,
        input_saved_model_tags=args.tags.split(",") if args.tags else None,
        input_saved_model_signature_key=args.signature,
        use_dynamic_shape=args.dynamic_shape,
        dynamic_shape_profile_strategy=args.profile_strategy,
        precision_mode=args.precision, minimum_segment_size=args.minimum_segment_size,
        maximum_cached_engines=args.maximum_cached_engines,
        use_calibration=args.calibration_data is not None,
        allow_build_at_runtime=args.allow_build_at_runtime, backend=args.backend,
        calibration_method=args.calibration_method, **params)


def calibration_fn(args: argparse.Namespace) -> Any:
    if args.calibration_data is None:
        return None
    if args.precision != "INT8":
        raise ValueError("--calibration-data is for --precision INT8")
    return data.input_fn(args.calibration_data, args.calibration_batch)


def convert_and_build(args: argparse.Namespace, build_data: str | None,
                      build_batch: int | None) -> Any:
    """Convert (calibrating INT8 on its data) and build for ``build_data``; the converter."""
    calibrate = calibration_fn(args)
    build = data.input_fn(build_data, build_batch) if build_data else None
    converter = make_converter(args)
    converter.convert(calibration_input_fn=calibrate)
    if build is None and calibrate is not None and args.dynamic_shape:
        build = calibrate  # dynamic shape mode calibrates in build(), as TF-TRT does
    if build is not None:
        converter.build(build)
    return converter


def add_parser(sub: Any) -> None:
    p = sub.add_parser("convert", help="convert a SavedModel and save it with its engines",
                       description="Convert the SavedModel IN and save it to OUT: plain "
                                   "TensorFlow runs OUT natively, tftrt.load with its engines.")
    p.add_argument("input", metavar="IN", help="a SavedModel directory")
    p.add_argument("output", metavar="OUT", help="a new or empty directory")
    add_converter_flags(p)
    p.add_argument("--build-data", default=None, metavar="FILE",
                   help="build the engines for these inputs before saving (.npy or .npz as "
                        "for --calibration-data); without it they are built on first use")
    p.add_argument("--build-batch", type=_positive, default=None, metavar="N",
                   help="split the build data into calls of N rows")
    p.add_argument("--no-save-engines", dest="save_engines", action="store_false",
                   help="save_gpu_specific_engines=False: save the ONNX models only")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    p.add_argument("--quiet", action="store_true", help="do not print the summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    converter = convert_and_build(args, args.build_data, args.build_batch)
    if not args.quiet:
        converter.summary()
    converter.save(args.output, save_gpu_specific_engines=args.save_engines,
                   overwrite=args.overwrite)
    print(f"Saved to {args.output}")
    return 0
