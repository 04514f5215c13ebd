"""``tftrt report IN``: what would convert and why not, without building any engine.

Runs the conversion up to the engines (freezing, capability, segmentation,
lowering to ONNX) and prints the non-conversion report (normal, or detailed with
``--detailed``; ``--csv`` also writes it as CSV) and the engines the conversion
would make, with their op counts.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from tftrt.commands import convert


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="what would convert and why not (builds nothing)",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("input", metavar="IN", help="a SavedModel directory")
    convert.add_converter_flags(p)
    p.add_argument("--detailed", action="store_true",
                   help="each op type's reasons, with their counts")
    p.add_argument("--csv", default=None, metavar="PATH",
                   help="also write the report as CSV (OP Name|Reason|Count)")
    p.add_argument("--dot", default=None, metavar="PATH",
                   help="write the converted graph for Graphviz (and an SVG beside it when "
                        "Graphviz's dot is installed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tftrt.report.nonconversion import format_nonconversion_report, write_nonconversion_csv

    converter = convert.make_converter(args)
    quiet = logging.getLogger("tftrt.report")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # convert() logs the report; it is printed below instead
    try:
        converter.convert(calibration_input_fn=convert.calibration_fn(args))
    finally:
        quiet.setLevel(level)
    counts = converter.nonconversion
    print(format_nonconversion_report(counts, args.detailed or args.csv is not None), end="")
    if args.csv:
        write_nonconversion_csv(counts, args.csv)
        print(f"Non-conversion report saved at: {args.csv}")
    print("\nEngines the conversion makes (none is built):")
    converter.summary(detailed=True)
    if args.dot:
        from tftrt.report.graphviz import write_graph

        print("Graph written to " + ", ".join(write_graph(converter.converted_graph_def,
                                                          args.dot)))
    return 0
