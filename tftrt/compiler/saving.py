"""Save and load converted models.

``save_converted`` writes a SavedModel that plain ``tf.saved_model.load`` runs
natively (engine nodes call their native segments), plus, under
``assets/tftrt/``, the converted GraphDef, each segment's ONNX model, the
built engines and a JSON manifest with their checksums. ``load_converted``
runs it with those engines, without rebuilding. Writes are atomic: the model
is assembled in a temporary sibling directory and renamed into place. Nothing
is unpickled or evaluated on load.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from tftrt._version import __version__
from tftrt.compiler import native_segments as _native_segments
from tftrt.compiler.codegen import ENGINE_OP
from tftrt.compiler.ir import REF_VARIABLE_OPS
from tftrt.compiler.pipeline import CompileOptions, Conversion
from tftrt.errors import SavedModelError, SaveError
from tftrt.manifest import ASSET_DIR, FORMAT, FORMAT_VERSION, MANIFEST, read_checked, read_manifest
from tftrt.manifest import sha256 as _sha256
from tftrt.plugins.manager import get_registry
from tftrt.plugins.types import EngineBackend
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.executor import ConvertedFunction
from tftrt.runtime.restore import machine_of, restore_engine_ops
from tftrt.runtime.signature import whole_model_plan
from tftrt.runtime.tfgraph import (
    graph_function,
    lazy_function_callable,
    native_graph_def,
    rename_functions,
)
from tftrt.specs import SignatureTensor

log = logging.getLogger("tftrt.saving")

GRAPH_FILE = "converted_graph.pb"
_LOADS = itertools.count()  # each load's functions get names of their own


def _check_target(path: str, overwrite: bool) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise SaveError(f"output path {path!r} exists and is not a directory")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise SaveError(f"output directory {path!r} is not empty; pass overwrite=True to "
                        "replace it")


def _check_variables(conversion: Conversion) -> None:
    refs = sorted(n.name for n in conversion.graph_def.node if n.op in REF_VARIABLE_OPS)
    if refs:
        raise SaveError(f"ref variables {refs} are read outside any engine, and a TF2 "
                        "SavedModel cannot hold ref variables: convert with graph freezing "
                        "enabled, or let every reader of them convert")


def _native_saved_model(conversion: Conversion, tmp: str, save_options: Any) -> None:
    frozen = conversion.frozen
    fn = graph_function(native_graph_def(conversion.graph_def),
                        [t.ref for t in frozen.inputs], [t.ref for t in frozen.outputs],
                        frozen.variables)
    specs = [tf.TensorSpec(t.shape, tf.as_dtype(t.dtype), name=t.name) for t in frozen.inputs]
    names = [t.name for t in frozen.outputs]

    @tf.function(input_signature=specs)
    def serve(*args):
        return dict(zip(names, fn(*args), strict=True))

    module = tf.Module()
    module.serve = serve
    module.native_segments = fn.function  # tracked: the pruned graph is saved with the module
    # tracked so the variables the graph still reads are saved; load() maps them back by order
    module.tftrt_variables = [frozen.variables[k] for k in sorted(frozen.variables)]
    tf.saved_model.save(module, tmp, signatures={frozen.signature_key: serve},
                        options=save_options)


def save_converted(conversion: Conversion, output_dir: str, *, save_engines: bool,
                   allow_build_at_runtime: bool, backend: EngineBackend,
                   options: CompileOptions, remove_native_segments: bool = False,
                   save_options: Any = None, overwrite: bool = False) -> None:
    """Write the converted model to ``output_dir`` atomically (all or nothing)."""
    if not output_dir:
        raise SaveError("output_saved_model_dir is required")
    target = os.path.abspath(os.fspath(output_dir))
    _check_target(target, overwrite)
    _check_variables(conversion)
    if remove_native_segments:
        _check_without_native(conversion, save_engines, allow_build_at_runtime)
        log.warning("TF_TRT_EXPERIMENTAL_FEATURES=remove_native_segments: %s is saved without "
                    "native segments: only tftrt.load runs it (plain TensorFlow's signature "
                    "raises), and an engine that fails to build or run has no fallback",
                    target)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tftrt-save-", dir=parent)
    try:
        if remove_native_segments:
            _refusing_saved_model(conversion, tmp, save_options)
        else:
            _native_saved_model(conversion, tmp, save_options)
        _write_assets(conversion, os.path.join(tmp, ASSET_DIR), save_engines,
                      allow_build_at_runtime, backend, options,
                      native_segments=not remove_native_segments)
        _replace_dir(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (SaveError, KeyboardInterrupt, SystemExit)):
            raise
        raise SaveError(f"saving the converted model to {target!r} failed: {exc}") from exc


def _check_without_native(conversion: Conversion, save_engines: bool,
                          allow_build_at_runtime: bool) -> None:
    """Without native segments an engine must exist or be buildable where it is loaded."""
    if allow_build_at_runtime:
        return
    unbuilt = sorted(n for n, op in conversion.engines.items()
                     if not (save_engines and op.engines()))
    if unbuilt:
        raise SaveError(f"remove_native_segments with allow_build_at_runtime=False would save "
                        f"engines {unbuilt} with neither a built engine nor a native segment: "
                        "call build() first (and keep save_gpu_specific_engines=True)")


def _refusing_saved_model(conversion: Conversion, tmp: str, save_options: Any) -> None:
    """The SavedModel of a model without native segments: its signature raises in plain
    TensorFlow; the variables are kept for tftrt.load."""
    frozen = conversion.frozen
    module = tf.Module()
    module.serve = _native_segments.refusing_signature(frozen.inputs, frozen.outputs)
    module.tftrt_variables = [frozen.variables[k] for k in sorted(frozen.variables)]
    tf.saved_model.save(module, tmp, signatures={frozen.signature_key: module.serve},
                        options=save_options)


def _write_assets(conversion: Conversion, adir: str, save_engines: bool,
                  allow_build_at_runtime: bool, backend: EngineBackend,
                  options: CompileOptions, native_segments: bool = True) -> None:
    os.makedirs(os.path.join(adir, "engines"), exist_ok=True)
    graph_def = conversion.graph_def if native_segments else \
        _native_segments.without_native_segments(conversion.graph_def)
    graph_bytes = graph_def.SerializeToString()
    files = {GRAPH_FILE: graph_bytes}
    engines = {}
    machine = machine_of(backend)
    ops_of = _native_segments.segment_ops(conversion.graph_def)
    for name, op in conversion.engines.items():
        onnx_file = f"engines/{name}.onnx"
        files[onnx_file] = op.onnx_model
        instances = []
        for k, (key, engine) in enumerate(op.engines() if save_engines else []):
            blob = engine.serialize()
            fname = f"engines/{name}.{k}.{backend.name}"
            files[fname] = blob
            instances.append({"shapes": [list(s) for s in key[0].opt],
                              "profiles": [p.to_json() for p in key], "file": fname,
                              "sha256": _sha256(blob), "precision": engine.precision,
                              "precision_mode": op.precision_mode, "machine": machine})
        engines[name] = {"onnx": onnx_file, "onnx_sha256": _sha256(op.onnx_model),
                         "inputs": [s.to_json() for s in op.inputs],
                         "outputs": [s.to_json() for s in op.outputs],
                         "instances": instances}
        if op.profiles:  # dynamic shape mode: rebuilt engines serve the same profiles
            engines[name]["profiles"] = [p.to_json() for p in op.profiles]
        if op.calibration is not None:  # INT8: the ONNX above holds the scales
            engines[name]["calibration"] = op.calibration
        if name in ops_of:
            engines[name]["segment_ops"] = ops_of[name]
    frozen = conversion.frozen
    # Lets runtimes that cannot parse the GraphDef (no TensorFlow) serve a one-engine model.
    plan = whole_model_plan(conversion.graph_def, frozen.inputs, frozen.outputs,
                            list(conversion.engines))
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "tftrt_version": __version__,
        "signature_key": frozen.signature_key,
        "inputs": [t.to_json() for t in frozen.inputs],
        "outputs": [t.to_json() for t in frozen.outputs],
        "graph": GRAPH_FILE, "graph_sha256": _sha256(graph_bytes),
        "variables": sorted(frozen.variables),
        "backend": backend.name, "backend_version": backend.version(),
        "options": {"precision_mode": options.precision_mode,
                    "use_dynamic_shape": options.use_dynamic_shape,
                    "profile_strategy": options.profile_strategy,
                    "maximum_cached_engines": options.maximum_cached_engines,
                    "max_workspace_size_bytes": int(options.max_workspace_size_bytes),
                    "allow_build_at_runtime": allow_build_at_runtime},
        "engines": engines,
        "whole_model": None if plan is None else plan.to_json(),
        "native_segments": native_segments,
    }
    for rel, data in files.items():
        with open(os.path.join(adir, rel), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    with open(os.path.join(adir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def _exchange(a: str, b: str) -> bool:
    """Atomically swap directories ``a`` and ``b`` (Linux renameat2); False if unsupported."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
        return False  # the filesystem cannot exchange: fall back to two renames
    raise OSError(err, os.strerror(err), b)


def _replace_dir(tmp: str, target: str) -> None:
    """Move ``tmp`` to ``target``; an existing target is swapped out, then removed.

    The swap is one atomic exchange where the OS offers it, so a process killed at
    any point leaves either the old or the new model at ``target``. Elsewhere it is
    two renames, and a kill between them leaves the old model in ``.tftrt-old-*``.
    """
    backup = None
    if os.path.isdir(target):
        if os.listdir(target):
            if _exchange(tmp, target):
                shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old model
                return
            backup = tempfile.mkdtemp(prefix=".tftrt-old-", dir=os.path.dirname(target))
            os.rmdir(backup)
            os.rename(target, backup)
        else:
            os.rmdir(target)
    try:
        os.rename(tmp, target)
    except BaseException:
        if backup is not None:
            os.rename(backup, target)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


# -- loading ---------------------------------------------------------------------

@dataclass
class LoadedModel:
    """A converted model loaded with its engines; ``signatures[key](x)`` runs it."""

    signatures: dict[str, ConvertedFunction]
    manifest: dict
    engines: dict[str, EngineOp]


def load_converted(export_dir: str, backend: str | None = None) -> LoadedModel:
    """Load a converted model with its saved engines; ``backend`` overrides the saved one."""
    manifest = read_manifest(export_dir)
    adir = os.path.join(export_dir, ASSET_DIR)
    try:
        graph_def = graph_pb2.GraphDef.FromString(
            read_checked(adir, manifest["graph"], manifest["graph_sha256"]))
        inputs = [SignatureTensor.from_json(d) for d in manifest["inputs"]]
        outputs = [SignatureTensor.from_json(d) for d in manifest["outputs"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise SavedModelError(f"the manifest in {export_dir!r} is malformed: {exc}") from None
    engines = {n.name: n for n in graph_def.node if n.op == ENGINE_OP}
    if set(manifest["engines"]) != set(engines):
        raise SavedModelError("the manifest's engines do not match the converted graph's")
    rename_functions(graph_def, f"_tftrt_load{next(_LOADS)}")
    library = {f.signature.name: f for f in graph_def.library.function}

    def native_for(name: str):
        fdef = library.get(engines[name].attr["segment_func"].func.name)
        return None if fdef is None else lazy_function_callable(fdef, graph_def.library)

    ops = restore_engine_ops(manifest, adir, get_registry().backend(backend or manifest["backend"]),
                             native_for)
    fn = ConvertedFunction(graph_def, inputs, outputs, ops,
                           captures=_load_variables(export_dir, manifest))
    return LoadedModel({manifest["signature_key"]: fn}, manifest, ops)


def _load_variables(export_dir: str, manifest: dict) -> dict[str, Any]:
    """Resource Placeholder name -> variable, for models converted without freezing."""
    names = manifest.get("variables") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SavedModelError(f"the manifest in {export_dir!r} is malformed: variables must "
                              "be a list of node names")
    if not names:
        return {}
    try:
        variables = list(tf.saved_model.load(export_dir).tftrt_variables)
    except Exception as exc:
        raise SavedModelError(f"the variables of {export_dir!r} could not be loaded: {exc}"
                              ) from None
    if len(variables) != len(names):
        raise SavedModelError(f"the manifest names {len(names)} variables but the model "
                              f"holds {len(variables)}")
    return dict(zip(names, variables, strict=True))
