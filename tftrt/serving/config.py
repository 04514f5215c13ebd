"""A Triton model configuration (``config.pbtxt``) for a converted model, from its manifest.

Inputs and outputs are the signature's (names, dtypes, dims); ``max_batch_size`` and the
dynamic batcher's preferred sizes are the batch sizes the saved engines were built for
(``tftrt.serving.batching``). Written as protobuf text by hand: the schema used is a
handful of fields, and Triton's own protobuf package is not needed to write them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tftrt.errors import SavedModelError
from tftrt.serving.batching import batch_plan
from tftrt.serving.served import batched
from tftrt.specs import SignatureTensor

TRITON_DTYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int16": "TYPE_INT16",
    "int32": "TYPE_INT32", "int64": "TYPE_INT64", "float16": "TYPE_FP16",
    "float32": "TYPE_FP32", "float64": "TYPE_FP64",
}
# The batch limit written when no engine states one (dynamic-shape engines saved without
# profiles): Triton needs a number.
DEFAULT_MAX_BATCH = 32


@dataclass
class ServingOptions:
    """What ``export-triton`` lets a user choose; the rest comes from the manifest."""

    instances: int = 1
    dynamic_batching: bool = True
    max_queue_delay_us: int = 2000
    max_batch_size: int | None = None  # None: from the engines
    loader: str = "auto"
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    """The values written to config.pbtxt, kept for reports and tests."""

    name: str
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...]
    inputs: tuple[SignatureTensor, ...]
    outputs: tuple[SignatureTensor, ...]
    options: ServingOptions
    note: str = ""

    def to_pbtxt(self) -> str:
        o = self.options
        lines = [f'name: {_q(self.name)}', 'backend: "python"',
                 f"max_batch_size: {self.max_batch_size}"]
        if self.note:
            lines.insert(0, f"# {self.note}")
        for key, tensors in (("input", self.inputs), ("output", self.outputs)):
            lines.append(f"{key} [")
            lines.append(",\n".join(
                f"  {{ name: {_q(t.name)} data_type: {TRITON_DTYPES[np.dtype(t.dtype).name]} "
                f"dims: [ {', '.join(str(d) for d in self._dims(t))} ] }}" for t in tensors))
            lines.append("]")
        lines.append(f"instance_group [ {{ kind: KIND_CPU count: {o.instances} }} ]")
        if o.dynamic_batching and self.max_batch_size > 0:
            pref = ", ".join(str(b) for b in self.preferred_batch_sizes)
            lines.append("dynamic_batching {"
                         + (f" preferred_batch_size: [ {pref} ]" if pref else "")
                         + f" max_queue_delay_microseconds: {o.max_queue_delay_us} }}")
        params = {"tftrt_loader": o.loader, **o.parameters}
        lines.append("parameters [")
        lines.append(",\n".join(f"  {{ key: {_q(k)} value: {{ string_value: {_q(v)} }} }}"
                                for k, v in params.items()))
        lines.append("]")
        return "\n".join(lines) + "\n"

    def _dims(self, t: SignatureTensor) -> list[int]:
        assert t.shape is not None
        dims = [-1 if d is None else int(d) for d in t.shape]
        return dims[1:] if self.max_batch_size > 0 else dims


def _q(s: str) -> str:
    """A protobuf text string literal (JSON escaping is a subset protobuf text reads)."""
    return json.dumps(s)


def _checked(tensors: Sequence[SignatureTensor], kind: str) -> tuple[SignatureTensor, ...]:
    for t in tensors:
        if np.dtype(t.dtype).name not in TRITON_DTYPES:
            raise SavedModelError(f"{kind} {t.name!r} has dtype {np.dtype(t.dtype).name}, "
                                  "which the Triton export does not carry")
        if t.shape is None:
            raise SavedModelError(f"{kind} {t.name!r} has an unknown rank: Triton needs "
                                  "each tensor's rank")
    return tuple(tensors)


def model_config(manifest: Mapping, name: str, options: ServingOptions) -> ModelConfig:
    """The Triton configuration of the converted model described by ``manifest``."""
    inputs = _checked([SignatureTensor.from_json(d) for d in manifest["inputs"]], "input")
    outputs = _checked([SignatureTensor.from_json(d) for d in manifest["outputs"]], "output")
    if options.instances < 1:
        raise ValueError(f"instances must be >= 1, got {options.instances}")
    if not batched(inputs, outputs):
        return ModelConfig(name, 0, (), inputs, outputs, options,
                           "not every signature tensor has a batch dimension: no batching")
    try:
        plan = batch_plan(manifest)
    except ValueError as exc:
        raise SavedModelError(f"cannot serve with batching: {exc}") from None
    note = ""
    limit = plan.max_batch
    if options.max_batch_size is not None:
        if options.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {options.max_batch_size}")
        limit = options.max_batch_size
        note = "max_batch_size set by the user"
    elif limit is None:
        limit = DEFAULT_MAX_BATCH
        note = f"no engine states a batch limit: max_batch_size {DEFAULT_MAX_BATCH} by default"
    preferred = tuple(b for b in plan.preferred if b <= limit)
    return ModelConfig(name, limit, preferred, inputs, outputs, options, note)
