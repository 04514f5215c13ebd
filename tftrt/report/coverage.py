"""Converter coverage: which TensorFlow op types convert, who converts them, and TF-TRT's gaps.

``python -m tftrt.report.coverage`` prints the tables for the installed
registry (built-ins plus plugins); ``--write docs/converters.md`` writes the
repository's page, generated from the built-in converters only.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys
from collections.abc import Sequence

import pluggy

from tftrt.plugins import hookspecs
from tftrt.plugins.manager import BUILTIN_PLUGINS, Registry, get_registry

DOC_PATH = "docs/converters.md"
REGENERATE = f"python -m tftrt.report.coverage --write {DOC_PATH}"

# TF-TRT's registered converter op types (convert_nodes.cc and convert/ops/*.cc), by family.
TFTRT_OPS: dict[str, tuple[str, ...]] = {
    "Structural": ("Identity", "IdentityN", "Snapshot", "StopGradient", "_CopyFromHostToGpu",
                   "Const"),
    "Elementwise binary": ("Add", "AddV2", "Mul", "Sub", "Div", "FloorDiv", "RealDiv",
                           "Minimum", "Maximum", "Pow", "Greater", "Less", "Equal",
                           "GreaterEqual", "LessEqual", "LogicalAnd", "LogicalOr",
                           "SquaredDifference", "AddN", "BiasAdd"),
    "Unary": ("Exp", "Log", "Sqrt", "Rsqrt", "Reciprocal", "Abs", "Neg", "Sin", "Cos", "Tan",
              "Sinh", "Cosh", "Asin", "Acos", "Atan", "Asinh", "Acosh", "Atanh", "Ceil",
              "Floor", "Erf", "Round", "Sign", "LogicalNot", "Square"),
    "Activations": ("Relu", "Sigmoid", "Tanh", "Elu", "Selu", "Softsign", "Softplus",
                    "LeakyRelu", "Relu6", "ClipByValue"),
    "Convolution / pooling": ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput",
                              "Conv3D", "Conv3DBackpropInputV2", "FusedConv2DBiasActivation",
                              "MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D"),
    "Normalization": ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"),
    "Matrix": ("MatMul", "BatchMatMul", "BatchMatMulV2", "Einsum"),
    "Shape / layout": ("Reshape", "ExpandDims", "Squeeze", "Transpose", "Pack", "Unpack",
                       "ConcatV2", "Split", "Slice", "StridedSlice", "Pad", "Shape",
                       "DepthToSpace", "SpaceToDepth", "GatherV2", "Cast", "Tile",
                       "DataFormatVecPermute", "Fill", "Range", "ZerosLike", "OnesLike",
                       "zeros_like", "ones_like", "Select", "SelectV2"),
    "Reductions / top-k": ("Sum", "Prod", "Max", "Min", "Mean", "ArgMin", "ArgMax", "TopKV2"),
    "Softmax": ("Softmax", "LogSoftmax"),
    "Image": ("ResizeBilinear", "ResizeNearestNeighbor"),
    "NMS": ("CombinedNonMaxSuppression",),
    "Quantization": ("QuantizeAndDequantizeV2", "QuantizeAndDequantizeV3",
                     "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxArgs"),
    "Variables": ("VariableV2", "ReadVariableOp"),
}

#: op type -> TF-TRT family, for every op type TF-TRT converts.
TFTRT_OP_FAMILY: dict[str, str] = {op: fam for fam, ops in TFTRT_OPS.items() for op in ops}


def builtin_registry() -> Registry:
    """A registry of tftrt's built-in plugins only (installed entry points ignored)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for modname in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
    return Registry(pm)


def _cell(text: str) -> str:
    text = " ".join(text.split())
    return text.replace("|", "\\|") if text else "—"


def coverage_table(registry: Registry | None = None) -> str:
    """Markdown table of every op type ``registry`` converts (default: the process registry)."""
    registry = registry or get_registry()
    rows = ["| Op type | Converter module | In TF-TRT | Restrictions |",
            "|---|---|---|---|"]
    for op in registry.supported_ops():
        conv = registry.converter(op)
        source = f"`{conv.convert.__module__}`"
        if conv.priority:
            source += f" (priority {conv.priority})"
        in_tftrt = "yes" if op in TFTRT_OP_FAMILY else "—"
        rows.append(f"| `{op}` | {source} | {in_tftrt} | {_cell(conv.restrictions)} |")
    return "\n".join(rows) + "\n"


def missing_table(registry: Registry | None = None) -> str:
    """Markdown table of TF-TRT's op types that ``registry`` does not convert."""
    registry = registry or get_registry()
    supported = set(registry.supported_ops())
    rows = ["| Op type | TF-TRT family |", "|---|---|"]
    for family, ops in TFTRT_OPS.items():
        for op in sorted(ops):
            if op not in supported:
                rows.append(f"| `{op}` | {family} |")
    if len(rows) == 2:
        return "None: every op type TF-TRT converts is supported.\n"
    return "\n".join(rows) + "\n"


def coverage_document(registry: Registry | None = None) -> str:
    """The whole coverage page: header, counts, supported table and TF-TRT gaps."""
    registry = registry or builtin_registry()
    supported = set(registry.supported_ops())
    covered = len(supported & set(TFTRT_OP_FAMILY))
    return "\n".join([
        "# Converter coverage",
        "",
        "<!-- Generated file: do not edit. Regenerate with",
        f"     {REGENERATE} -->",
        "",
        "Generated from tftrt's converter registry. Regenerate it after adding or changing",
        "a converter with:",
        "",
        "```",
        REGENERATE,
        "```",
        "",
        f"{len(supported)} op types convert, {covered} of them among the "
        f"{len(TFTRT_OP_FAMILY)} op types",
        "TF-TRT converts. \"Restrictions\" is each converter's own summary of what it refuses",
        "(such nodes stay in TensorFlow, with the reason in the non-conversion report).",
        "Plugins add or override rows: `python -m tftrt.report.coverage` prints the tables of",
        "the installed registry.",
        "",
        "## Supported op types",
        "",
        coverage_table(registry),
        "## TF-TRT op types not supported yet",
        "",
        missing_table(registry),
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """Print the coverage tables, or write the repository's coverage page."""
    parser = argparse.ArgumentParser(
        prog="python -m tftrt.report.coverage",
        description="Converter coverage tables. Without --write, prints the tables of the "
                    "installed registry (built-ins plus plugins).")
    parser.add_argument("--write", metavar="PATH",
                        help=f"write the page generated from the built-in converters "
                             f"(e.g. {DOC_PATH})")
    parser.add_argument("--builtin", action="store_true",
                        help="print the built-in converters only")
    args = parser.parse_args(argv)
    if args.write:
        path = pathlib.Path(args.write)
        path.write_text(coverage_document(builtin_registry()))
        print(f"wrote {path}")
        return 0
    registry = builtin_registry() if args.builtin else get_registry()
    sys.stdout.write(coverage_document(registry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
