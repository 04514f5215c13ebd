"""The TensorFlow-free runtime: serve a fully converted model with NumPy and an engine
runtime alone.

``load(path)`` reads only ``assets/tftrt/``: the manifest (signature, engines, the
whole-model plan written at save time) and the engine files it names, each
through its checksum. Nothing here imports TensorFlow, so this serves GPU
servers, small deployment images and machines where TensorFlow cannot be
installed; a model that needs TensorFlow between its engines is refused with a
clear error (``tftrt.load`` runs it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tftrt.errors import EngineError, InputSpecError, SavedModelError
from tftrt.manifest import ASSET_DIR, read_manifest
from tftrt.plugins.types import EngineBackend
from tftrt.runtime.backends import runtime_backends, select_backend
from tftrt.runtime.engine_op import EngineOp
from tftrt.runtime.restore import restore_engine_ops
from tftrt.runtime.signature import WholeModelPlan, check_inputs
from tftrt.specs import SignatureTensor

log = logging.getLogger("tftrt")


class StandaloneModel:
    """A fully converted model: ``model(x)`` or ``model(name=x)`` -> {output name: array}.

    Inputs are the signature's, by position or keyword, checked for dtype and
    shape exactly as ``tftrt.load``'s functions check them.
    """

    def __init__(self, manifest: dict, plan: WholeModelPlan, engine: EngineOp) -> None:
        self.manifest = manifest
        self.signature_key: str = manifest["signature_key"]
        self.inputs = tuple(SignatureTensor.from_json(d) for d in manifest["inputs"])
        self.outputs = tuple(SignatureTensor.from_json(d) for d in manifest["outputs"])
        self.plan = plan
        self.engine = engine

    @property
    def backend(self) -> EngineBackend:
        return self.engine.backend

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        values = check_inputs(self.inputs, args, kwargs)
        arrays = []
        for spec, v in zip(self.inputs, values, strict=True):
            try:
                arrays.append(np.asarray(v))
            except (TypeError, RuntimeError) as exc:
                raise InputSpecError(f"input {spec.name!r} is not a host array ({exc}); "
                                     "pass device tensors to run_on_device()") from None
        outs = self.engine(self.plan.engine_inputs(arrays))
        return self.plan.signature_outputs(self.outputs, outs)

    def run_on_device(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run on device tensors (DLPack: CuPy, PyTorch, TensorFlow GPU tensors) with no
        copy through the host; the outputs stay on the device (engines that support it:
        ONNX Runtime on a GPU provider)."""
        values = check_inputs(self.inputs, args, kwargs)
        inputs = self.plan.engine_inputs(values)
        engine = self.engine.engine_for([tuple(int(d) for d in v.shape) for v in inputs])
        if engine is None:
            raise EngineError(f"{self.engine.name}: no engine for these shapes: "
                              f"{self.engine.stats.last_error}")
        run_device = getattr(engine, "run_device", None)
        if run_device is None:
            raise EngineError(f"the {self.engine.backend.name} engine takes host arrays only; "
                              "call the model itself")
        outs = run_device(inputs)
        self.engine.stats.engine_calls += 1
        return self.plan.signature_outputs(self.outputs, outs)

    def describe(self) -> list[str]:
        """One line per built engine: the shapes it is built for, backend, where it runs
        and at what precision."""
        lines = []
        for key, eng in self.engine.engines():
            where = getattr(eng, "runs_on", None)
            # the cache key: the engine's profiles; shown by the shapes it is built for
            built = [list(s) for s in key[0].opt] if key and hasattr(key[0], "opt") \
                else [list(s) for s in key]
            lines.append(f"{self.engine.name} {built}: "
                         f"{self.engine.backend.name}" + (f" on {where}" if where else "")
                         + f", precision {eng.precision}")
        return lines


def _backend_for(manifest: dict, name: str | None, providers: Sequence[str] | str | None
                 ) -> EngineBackend:
    """``name``'s backend; by default the one that saved the model, else ``auto``'s choice."""
    backends = runtime_backends()
    if name is None:
        saved = backends.get(manifest["backend"])
        if saved is not None and saved.available():
            backend = saved
        else:
            backend = select_backend("auto", backends)
            log.info("the model was saved by %s, which is not available here: its engines "
                     "are rebuilt by %s", manifest["backend"], backend.name)
    else:
        backend = select_backend(name, backends)
    if providers is not None:
        with_options = getattr(backend, "with_options", None)
        if with_options is None:
            raise ValueError(f"the {backend.name} backend takes no execution providers")
        backend = with_options(providers=providers)
    return backend


def load(export_dir: str, backend: str | None = None,
         providers: Sequence[str] | str | None = None) -> StandaloneModel:
    """Load a converted model that is one engine end to end, without TensorFlow.

    ``backend`` overrides the saved one (engines saved by another backend are rebuilt
    from their ONNX); ``providers`` picks ONNX Runtime's execution providers, in order
    (e.g. ``["cuda", "cpu"]``).
    """
    manifest = read_manifest(export_dir)
    if "whole_model" not in manifest:
        raise SavedModelError(f"{export_dir!r} was saved without a whole-model plan (by an "
                              "older tftrt): load it with tftrt.load, or save it again")
    if manifest["whole_model"] is None:
        raise SavedModelError(
            f"{export_dir!r} is not one engine end to end (it has {len(manifest['engines'])} "
            "engine(s) and TensorFlow ops around or between them): the TensorFlow-free "
            "runtime serves fully converted models only; load it with tftrt.load, which "
            "needs TensorFlow")
    plan = WholeModelPlan.from_json(manifest["whole_model"])
    adir = os.path.join(export_dir, ASSET_DIR)
    ops = restore_engine_ops(manifest, adir, _backend_for(manifest, backend, providers),
                             native_for=lambda name: None)
    return StandaloneModel(manifest, plan, ops[plan.engine])
