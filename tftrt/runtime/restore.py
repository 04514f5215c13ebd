"""Re-create a saved model's engine ops from its manifest, without rebuilding engines.

TensorFlow-free: the caller supplies each engine's native segment (or None), so
the same code serves ``tftrt.load`` and runtimes that never import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tftrt.errors import SavedModelError
from tftrt.manifest import read_checked
from tftrt.plugins.types import EngineBackend
from tftrt.runtime.engine_op import EngineOp, NativeFn
from tftrt.specs import TensorSpec


def restore_engine_ops(manifest: Mapping, adir: str, backend: EngineBackend,
                       native_for: Callable[[str], NativeFn | None]) -> dict[str, EngineOp]:
    """One ``EngineOp`` per engine of a validated manifest, its saved engines restored.

    A saved engine that fails its checksum, was built by another version of the
    backend, or does not deserialize is dropped with one warning: the engine is
    rebuilt from its (checked) ONNX model, or its native segment runs. Engines saved
    by another backend than ``backend`` are not used.
    """
    opts = manifest["options"]
    saved_backend = manifest["backend"]
    ops = {}
    for name, meta in sorted(manifest["engines"].items()):
        op = EngineOp(
            name=name, onnx_model=read_checked(adir, meta["onnx"], meta["onnx_sha256"]),
            backend=backend,
            inputs=tuple(TensorSpec.from_json(d) for d in meta["inputs"]),
            outputs=tuple(TensorSpec.from_json(d) for d in meta["outputs"]),
            native=native_for(name),
            precision_mode=opts["precision_mode"], dynamic_shape=opts["use_dynamic_shape"],
            profile_strategy=opts.get("profile_strategy", "Range"),
            max_cached_engines=opts["maximum_cached_engines"],
            allow_build_at_runtime=opts["allow_build_at_runtime"],
            max_workspace_size_bytes=opts["max_workspace_size_bytes"],
            calibration=meta.get("calibration"))
        if backend.name == saved_backend:
            saved_version, version = manifest["backend_version"], backend.version()
            for inst in meta["instances"]:
                try:
                    if saved_version != version:
                        raise SavedModelError(f"it was built by {saved_backend} {saved_version}"
                                              f", this is {saved_backend} {version}")
                    blob = read_checked(adir, inst["file"], inst["sha256"])
                    op.add_serialized(tuple(tuple(s) for s in inst["shapes"]), blob)
                except Exception as exc:
                    op.record_load_failure(f"saved engine {inst['file']} not loaded: {exc}")
        ops[name] = op
    return ops
