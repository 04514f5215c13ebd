"""Re-create a saved model's engine ops from its manifest, without rebuilding engines.

TensorFlow-free: the caller supplies each engine's native segment (or None), so
the same code serves ``tftrt.load`` and runtimes that never import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tftrt.errors import SavedModelError
from tftrt.manifest import read_checked
from tftrt.plugins.types import EngineBackend, ShapeProfile
from tftrt.runtime.cache import Key
from tftrt.runtime.engine_op import EngineOp, NativeFn
from tftrt.runtime.profiles import implicit_batch_profile
from tftrt.specs import TensorSpec

PORTABLE = "portable"


def machine_of(backend: EngineBackend) -> str:
    """What the backend's serialized engines are specific to on this machine."""
    target = getattr(backend, "target", None)
    return PORTABLE if target is None else str(target())


def instance_key(inst: Mapping, op: EngineOp) -> Key:
    """The profiles a saved engine serves (manifests before profiles: implicit batch)."""
    if inst.get("profiles"):
        return tuple(ShapeProfile.from_json(p) for p in inst["profiles"])
    if op.dynamic_shape:
        raise SavedModelError("it was saved without its profiles")
    shapes = tuple(tuple(int(d) for d in s) for s in inst["shapes"])
    return (implicit_batch_profile(shapes, [s.shape for s in op.inputs]),)


def _stale(inst: Mapping, op: EngineOp, saved: tuple[str, str], here: tuple[str, str],
           machine: str) -> str | None:
    """Why a saved engine must not be used here, or None."""
    if saved != here:
        return f"it was built by {saved[0]} {saved[1]}, this is {here[0]} {here[1]}"
    mode = inst.get("precision_mode", op.precision_mode)
    if mode != op.precision_mode:
        return f"it was built for precision {mode}, the engine's is {op.precision_mode}"
    built_for = inst.get("machine", PORTABLE)
    if built_for != machine:
        return f"it was compiled for {built_for!r}, this machine is {machine!r}"
    return None


def restore_engine_ops(manifest: Mapping, adir: str, backend: EngineBackend,
                       native_for: Callable[[str], NativeFn | None]) -> dict[str, EngineOp]:
    """One ``EngineOp`` per engine of a validated manifest, its saved engines restored.

    A saved engine that fails its checksum, was built by another backend version, for
    another precision or another machine (for CPU engines: other instruction sets), or
    does not deserialize is dropped with one warning: the engine is rebuilt with the
    same profiles from its (checked) ONNX model, or its native segment runs. Engines
    saved by another backend than ``backend`` are not used.
    """
    opts = manifest["options"]
    saved = (manifest["backend"], manifest["backend_version"])
    here = (backend.name, backend.version()) if backend.name == saved[0] else None
    machine = machine_of(backend) if here else PORTABLE
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
        if meta.get("profiles") and op.dynamic_shape:
            op.profiles = tuple(ShapeProfile.from_json(p) for p in meta["profiles"])
        for inst in meta["instances"] if here else []:
            key = None
            try:
                key = instance_key(inst, op)
                why = _stale(inst, op, saved, here, machine)
                if why:
                    raise SavedModelError(why)
                op.add_serialized(key, read_checked(adir, inst["file"], inst["sha256"]))
            except Exception as exc:
                op.record_load_failure(f"saved engine {inst['file']} not loaded: {exc}", key)
        ops[name] = op
    return ops
