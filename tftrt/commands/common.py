"""What several subcommands share: checking a SavedModel path before TensorFlow loads."""

from __future__ import annotations

import os

from tftrt.errors import SavedModelError


def saved_model_dir(path: str) -> str:
    """``path`` if it is a SavedModel directory, else a SavedModelError naming the problem."""
    if not os.path.exists(path):
        raise SavedModelError(f"SavedModel directory {path!r} does not exist")
    if not os.path.isdir(path):
        raise SavedModelError(f"{path!r} is not a directory (a SavedModel is one)")
    if not any(os.path.isfile(os.path.join(path, f))
               for f in ("saved_model.pb", "saved_model.pbtxt")):
        raise SavedModelError(f"{path!r} is not a SavedModel: it has no saved_model.pb")
    return path


def converted_model_dir(path: str) -> str:
    """``path`` if it is a model tftrt saved, else a SavedModelError naming the problem."""
    from tftrt.manifest import ASSET_DIR, MANIFEST

    saved_model_dir(path)
    if not os.path.isfile(os.path.join(path, ASSET_DIR, MANIFEST)):
        raise SavedModelError(f"{path!r} is a SavedModel but not one tftrt converted "
                              f"({os.path.join(ASSET_DIR, MANIFEST)} is missing); "
                              "`tftrt report` shows what would convert")
    return path
