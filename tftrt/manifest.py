"""A converted model's ``assets/tftrt/manifest.json``: its schema, and reading it safely.

The manifest is the contract between the compiler, which writes it, and the
runtime, which reads it (with or without TensorFlow installed).

``load_converted`` trusts nothing in a loaded model but TensorFlow's own ops and
the engine runtimes: the manifest is plain JSON, checked here before any field
is used (types, required keys, file names inside the model, SHA-256 digests);
every file it names is then read through its checksum. Keys the schema does not
name are allowed, so a newer tftrt can add fields without breaking older readers
of the same format version.

A small declarative checker rather than jsonschema: the schema is one fixed
structure, and the checks it needs (relative paths, hex digests) are one-liners
here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from tftrt.errors import SavedModelError
from tftrt.specs import PROFILE_STRATEGIES

ASSET_DIR = os.path.join("assets", "tftrt")
MANIFEST = "manifest.json"
FORMAT = "tftrt-converted-model"
FORMAT_VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _relative_path(v: Any) -> bool:
    """A file name inside the model: relative, no '..' component, no drive or NUL."""
    parts = v.replace("\\", "/").split("/")
    return bool(v) and not v.startswith(("/", "\\")) and ":" not in v and "\0" not in v \
        and ".." not in parts


def _dims(v: Any) -> bool:
    return isinstance(v, list) and all(d is None or (type(d) is int and d >= -1) for d in v)


def _int_dims(v: Any) -> bool:
    return isinstance(v, list) and all(type(d) is int and d >= 0 for d in v)


class Omittable:
    """A key an object may leave out (manifests written by older tftrt releases do)."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema


# Leaf checks: a type, or a predicate with a description for the error.
STR = (str, "a string")
BOOL = (bool, "a boolean")
SHA = (lambda v: isinstance(v, str) and _SHA256.fullmatch(v) is not None,
       "a SHA-256 hex digest")
PATH = (lambda v: isinstance(v, str) and _relative_path(v), "a relative path inside the model")
SHAPE = (lambda v: v is None or _dims(v), "null or a list of dimensions")
POS_INT = (lambda v: type(v) is int and v >= 1, "an integer >= 1")
NON_NEG_INT = (lambda v: type(v) is int and v >= 0, "an integer >= 0")
# numpy's names, and "string" for tf.string (a signature may take or return strings)
DTYPE = (lambda v: v in {"float16", "bfloat16", "float32", "float64", "int8", "uint8",
                         "int16", "uint16", "int32", "int64", "bool", "string"},
         "a tensor dtype name")
PRECISION = (lambda v: v in ("FP32", "FP16", "INT8"), "FP32, FP16 or INT8")

SIGNATURE_TENSOR = {"name": STR, "ref": STR, "dtype": DTYPE, "shape": SHAPE}
SEGMENT_TENSOR = {"ref": STR, "dtype": DTYPE, "shape": SHAPE}
DIMS = (_int_dims, "a list of dimensions")
PROFILE = {"min": [DIMS], "opt": [DIMS], "max": [DIMS]}
INSTANCE = {"shapes": [DIMS], "file": PATH, "sha256": SHA, "precision": STR,
            "profiles": Omittable([PROFILE]), "precision_mode": Omittable(PRECISION),
            "machine": Omittable(STR)}
ENGINE = {"onnx": PATH, "onnx_sha256": SHA, "inputs": [SEGMENT_TENSOR],
          "outputs": [SEGMENT_TENSOR], "instances": [INSTANCE],
          "profiles": Omittable([PROFILE]), "segment_ops": Omittable({str: NON_NEG_INT})}
SCHEMA = {
    "format": STR, "format_version": (lambda v: type(v) is int, "an integer"),
    "tftrt_version": STR, "signature_key": STR,
    "inputs": [SIGNATURE_TENSOR], "outputs": [SIGNATURE_TENSOR],
    "graph": PATH, "graph_sha256": SHA, "backend": STR, "backend_version": STR,
    "options": {"precision_mode": PRECISION, "use_dynamic_shape": BOOL,
                "maximum_cached_engines": POS_INT, "max_workspace_size_bytes": NON_NEG_INT,
                "allow_build_at_runtime": BOOL,
                "profile_strategy": Omittable((lambda v: v in PROFILE_STRATEGIES + ("Unknown",),
                                               "a profile strategy"))},
    "engines": ({str: ENGINE}),
    # False: saved with remove_native_segments (plain TensorFlow cannot run the engines)
    "native_segments": Omittable(BOOL),
}
# Optional (null or absent when the model is not one engine end to end): engine input k
# is signature input inputs[k]; signature output j is engine output outputs[j].
WHOLE_MODEL = {"engine": STR, "inputs": [NON_NEG_INT], "outputs": [NON_NEG_INT]}


def problems(value: Any, schema: Any = None, where: str = "manifest") -> list[str]:
    """Every way ``value`` departs from ``schema`` (the manifest's by default)."""
    schema = SCHEMA if schema is None else schema
    if isinstance(schema, list):  # a list of items of one schema
        if not isinstance(value, list):
            return [f"{where} must be a list"]
        return [p for k, v in enumerate(value) for p in problems(v, schema[0], f"{where}[{k}]")]
    if isinstance(schema, dict) and set(schema) == {str}:  # a map of string keys
        if not isinstance(value, dict):
            return [f"{where} must be an object"]
        return [p for k, v in value.items()
                for p in problems(v, schema[str], f"{where}[{k!r}]")]
    if isinstance(schema, dict):  # an object with these keys (required unless Omittable)
        if not isinstance(value, dict):
            return [f"{where} must be an object"]
        out = [f"{where}.{k} is missing" for k, s in schema.items()
               if k not in value and not isinstance(s, Omittable)]
        return out + [p for k, s in schema.items() if k in value
                      for p in problems(value[k], getattr(s, "schema", s), f"{where}.{k}")]
    check, what = schema
    ok = isinstance(value, check) and not (check is not bool and isinstance(value, bool)) \
        if isinstance(check, type) else check(value)
    return [] if ok else [f"{where} must be {what}, got {value!r:.60}"]


def plan_problems(manifest: dict) -> list[str]:
    """How the optional whole-model plan departs from its schema or from the manifest's
    signature and engines."""
    plan = manifest.get("whole_model")
    if plan is None:
        return []
    found = problems(plan, WHOLE_MODEL, "manifest.whole_model")
    if found:
        return found
    engine = manifest["engines"].get(plan["engine"])
    if engine is None:
        return [f"manifest.whole_model.engine {plan['engine']!r} is not one of the engines"]
    where = "manifest.whole_model"
    if len(plan["inputs"]) != len(engine["inputs"]):
        found.append(f"{where}.inputs must name one signature input for each of the "
                     f"engine's {len(engine['inputs'])} inputs")
    if len(plan["outputs"]) != len(manifest["outputs"]):
        found.append(f"{where}.outputs must name one engine output for each of the "
                     f"{len(manifest['outputs'])} signature outputs")
    found += [f"{where}.inputs[{k}] must be < {len(manifest['inputs'])} (the signature's "
              f"inputs), got {i}" for k, i in enumerate(plan["inputs"])
              if i >= len(manifest["inputs"])]
    found += [f"{where}.outputs[{k}] must be < {len(engine['outputs'])} (the engine's "
              f"outputs), got {o}" for k, o in enumerate(plan["outputs"])
              if o >= len(engine["outputs"])]
    return found


def validate(manifest: Any, path: str) -> dict:
    """``manifest`` if it matches the schema, else a ``SavedModelError`` listing the problems."""
    found = problems(manifest)
    if not found:
        found = plan_problems(manifest)
    if found:
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise SavedModelError(f"the manifest {path!r} is malformed: " + "; ".join(found[:5])
                              + more)
    return manifest


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_checked(adir: str, rel: str, sha: str) -> bytes:
    """The bytes of file ``rel`` inside asset directory ``adir``, checked against ``sha``."""
    path = os.path.normpath(os.path.join(adir, rel))
    if not path.startswith(os.path.normpath(adir) + os.sep):
        raise SavedModelError(f"manifest names a file outside the model: {rel!r}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SavedModelError(f"converted model file {rel!r} is missing: {exc}") from None
    if sha256(data) != sha:
        raise SavedModelError(f"converted model file {rel!r} is corrupted (checksum mismatch)")
    return data


def read_manifest(export_dir: str) -> dict:
    """The validated manifest of the converted model in ``export_dir``."""
    if not os.path.isdir(export_dir):
        raise SavedModelError(f"converted model directory {export_dir!r} does not exist")
    adir = os.path.join(export_dir, ASSET_DIR)
    path = os.path.join(adir, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise SavedModelError(f"{export_dir!r} is not a tftrt converted model: "
                              f"{os.path.join(ASSET_DIR, MANIFEST)} is missing") from None
    except (OSError, ValueError) as exc:
        raise SavedModelError(f"the manifest {path!r} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SavedModelError(f"{path!r} is not a tftrt manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise SavedModelError(f"manifest format version {manifest.get('format_version')!r} is "
                              f"not supported (this tftrt reads {FORMAT_VERSION})")
    return validate(manifest, path)
