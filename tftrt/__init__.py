"""tftrt: TF-TRT's workflow for today's TensorFlow, on OpenVINO, ONNX Runtime and TensorRT."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from tftrt._version import __version__
from tftrt.logs import configure_from_env as _configure_logs

_configure_logs()


def supported_ops() -> list[str]:
    """The op types the registry (built-ins plus installed plugins) can convert."""
    from tftrt.plugins.manager import get_registry

    return get_registry().supported_ops()


def _is_tftrt_model(export_dir: str) -> bool:
    from tftrt.manifest import ASSET_DIR, MANIFEST

    return os.path.isfile(os.path.join(export_dir, ASSET_DIR, MANIFEST))


def load(export_dir: str, backend: str | None = None):
    """Load a converted SavedModel with its engines (no rebuild); see ``tftrt.compiler.saving``.

    A SavedModel that TF-TRT wrote (it holds ``TRTEngineOp`` nodes) runs too: each of its
    engines becomes a tftrt engine built from its segment (see ``docs/migrating.md``).
    """
    from tftrt.compiler.legacy_model import is_tftrt_saved_model

    if not _is_tftrt_model(export_dir) and is_tftrt_saved_model(export_dir):
        from tftrt.compiler.migrate import load_legacy
        from tftrt.report.migration import format_migration
        from tftrt.trt_convert import select_backend

        return load_legacy(export_dir, select_backend(backend or "auto"), format_migration)
    from tftrt.compiler.saving import load_converted

    return load_converted(export_dir, backend)


def migrate(src: str, dst: str, *, build_input_fn: Callable[[], Iterable[Any]] | None = None,
            calibration_input_fn: Callable[[], Iterable[Any]] | None = None,
            backend: str = "auto", input_saved_model_tags: Iterable[str] | None = None,
            input_saved_model_signature_key: str | None = None,
            calibration_method: str | None = None,
            print_fn: Callable[[str], None] | None = print, **converter_parameters: Any):
    """Write the SavedModel TF-TRT wrote in ``src`` as a tftrt SavedModel in ``dst``.

    Plain TensorFlow 2.18+ runs the result natively; ``tftrt.load`` runs it with its
    engines. Each engine keeps its TF-TRT precision and shape mode unless
    ``converter_parameters`` (``TrtGraphConverterV2``'s names: ``precision_mode``,
    ``use_dynamic_shape``, ...) say otherwise. ``build_input_fn`` (as for ``build()``)
    builds the engines before saving; ``calibration_input_fn`` calibrates INT8 engines
    that have no usable TensorRT calibration table. The signature is
    ``input_saved_model_signature_key``, else serving_default or the model's only one.
    ``dst`` must not exist or be empty; nothing is written when the migration fails.
    Prints the migration summary with ``print_fn`` (None: silent) and returns the
    migrated model, ready to run.
    """
    from tftrt.compiler import migrate as _migrate
    from tftrt.report.migration import format_migration
    from tftrt.trt_convert import DEFAULT_TAGS, select_backend

    model = _migrate.migrate(
        src, dst, select_backend(backend), build_input_fn=build_input_fn,
        calibration_input_fn=calibration_input_fn, calibration_method=calibration_method,
        tags=list(input_saved_model_tags or DEFAULT_TAGS),
        signature_key=input_saved_model_signature_key,
        **converter_parameters)
    model.formatter = format_migration
    if print_fn is not None:
        model.summary(print_fn)
        print_fn(f"Saved to {dst}")
    return model


__all__ = ["__version__", "load", "migrate", "supported_ops"]
