"""``export_triton``: a Triton model repository holding a tftrt converted model.

Layout (one model)::

    REPO/NAME/config.pbtxt       inputs, outputs, batching, instances (``config.py``)
    REPO/NAME/1/model.py         the Python-backend model (``triton_model.py``)
    REPO/NAME/1/model/           a copy of the converted SavedModel, its manifest saying
                                 allow_build_at_runtime: false (nothing built at request time)

Written into a temporary directory beside the target and moved into place, so a failed
export leaves nothing behind and an existing model is replaced whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import replace

from tftrt.errors import SaveError
from tftrt.manifest import ASSET_DIR, MANIFEST, read_manifest
from tftrt.serving.config import ModelConfig, ServingOptions, model_config

MODEL_FILE = os.path.join(os.path.dirname(__file__), "triton_model.py")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def local_python_path() -> list[str]:
    """This interpreter's import path (absolute directories), for a server on this machine."""
    return [os.path.abspath(p or os.getcwd()) for p in sys.path
            if os.path.isdir(p or os.getcwd())]


def default_name(converted_dir: str) -> str:
    base = os.path.basename(os.path.normpath(converted_dir))
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base) or "model"


def export_triton(converted_dir: str, repo: str, name: str | None = None,
                  options: ServingOptions | None = None, *, portable: bool = False,
                  overwrite: bool = True) -> ModelConfig:
    """Write model ``name`` (default: the directory's name) serving ``converted_dir`` into
    the Triton model repository ``repo``; returns the configuration written.

    ``portable`` leaves out this machine's Python import path: the server's Python must
    then have tftrt installed (a Triton container, another machine).
    """
    manifest = read_manifest(converted_dir)  # SavedModelError for a non-converted dir
    name = name or default_name(converted_dir)
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"model name {name!r}: use letters, digits, '_', '.', '-'")
    options = options or ServingOptions()
    if not portable:
        options = replace(options, parameters={
            **options.parameters, "tftrt_python_path": json.dumps(local_python_path())})
    config = model_config(manifest, name, options)
    repo = os.path.abspath(repo)
    target = os.path.join(repo, name)
    if os.path.exists(target) and not overwrite:
        raise SaveError(f"{target!r} exists (pass overwrite=True to replace it)")
    os.makedirs(repo, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}-", dir=repo)
    try:
        version = os.path.join(tmp, "1")
        os.makedirs(version)
        shutil.copytree(converted_dir, os.path.join(version, "model"), symlinks=False)
        _forbid_runtime_builds(os.path.join(version, "model"))
        shutil.copyfile(MODEL_FILE, os.path.join(version, "model.py"))
        with open(os.path.join(tmp, "config.pbtxt"), "w") as f:
            f.write(config.to_pbtxt())
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".{name}-old-", dir=repo)
            os.rmdir(old)
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise SaveError(f"exporting {converted_dir!r} to {target!r} failed: {exc}") from exc
    return config


def _forbid_runtime_builds(model_dir: str) -> None:
    """The served copy's manifest says engines are never built at run time."""
    path = os.path.join(model_dir, ASSET_DIR, MANIFEST)
    with open(path) as f:
        manifest = json.load(f)
    manifest["options"]["allow_build_at_runtime"] = False
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    read_manifest(model_dir)  # still valid

