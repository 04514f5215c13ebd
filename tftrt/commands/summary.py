"""``tftrt summary DIR``: the summary of a converted model on disk, without loading it."""

from __future__ import annotations

import argparse
import os
from typing import Any

from tftrt.commands import common


def add_parser(sub: Any) -> None:
    p = sub.add_parser("summary", help="the engines of a converted model on disk",
                       description="Print converter.summary()'s table for the converted "
                                   "model in DIR, with each engine's backend, precision and "
                                   "saved engines; nothing is loaded or built.")
    p.add_argument("dir", metavar="DIR", help="a directory tftrt convert or save() wrote")
    p.add_argument("--line-length", type=int, default=160)
    p.add_argument("--brief", dest="detailed", action="store_false",
                   help="leave out each engine's op counts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    common.converted_model_dir(args.dir)
    from tensorflow.core.framework import graph_pb2

    from tftrt.manifest import ASSET_DIR, read_checked, read_manifest
    from tftrt.report.saved import format_saved_summary

    manifest = read_manifest(args.dir)
    graph = graph_pb2.GraphDef.FromString(read_checked(
        os.path.join(args.dir, ASSET_DIR), manifest["graph"], manifest["graph_sha256"]))
    print(format_saved_summary(manifest, graph, args.line_length, args.detailed))
    return 0
