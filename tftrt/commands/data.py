"""Build and calibration inputs from ``.npy`` and ``.npz`` files (``--build-data``,
``--calibration-data``, ``--data``).

* ``.npy``: one array, the model's one (positional) input.
* ``.npz``: one array per signature input, named after it (``x``); several calls as
  ``x:0``, ``x:1``, ... (one call per number).

With ``batch``, each call is split along axis 0 into calls of ``batch`` rows (a last
partial batch is dropped); without it each call is used as stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from tftrt.errors import InputSpecError

Call = Any  # an array (one positional input) or {input name: array}


def load_calls(path: str, batch: int | None = None) -> list[Call]:
    """The calls stored in ``path`` (see the module docstring)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", ".npz"):
        raise InputSpecError(f"input data file {path!r} must be a .npy or .npz file")
    if not os.path.isfile(path):
        raise InputSpecError(f"input data file {path!r} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputSpecError(f"cannot read {path!r} as {ext}: {exc}") from None
    if ext == ".npy":
        calls: list[Call] = [loaded]
    else:
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
        if not arrays:
            raise InputSpecError(f"{path!r} holds no arrays")
        numbered: dict[int, dict[str, np.ndarray]] = {}
        for key, value in arrays.items():
            name, sep, k = key.rpartition(":")
            if sep and k.isdigit():
                numbered.setdefault(int(k), {})[name] = value
            else:
                numbered.setdefault(0, {})[key] = value
        calls = [numbered[k] for k in sorted(numbered)]
    if batch is not None:
        calls = [part for call in calls for part in _split(call, batch, path)]
    return calls


def _split(call: Call, batch: int, path: str) -> list[Call]:
    if batch < 1:
        raise InputSpecError(f"the batch size must be >= 1, got {batch}")
    arrays = call if isinstance(call, dict) else {"": call}
    rows = {len(a) if a.ndim else 0 for a in arrays.values()}
    if len(rows) != 1:
        raise InputSpecError(f"{path!r}: the arrays of one call have different numbers of rows "
                             f"{sorted(rows)}; they cannot be split into batches")
    (n,) = rows
    if n < batch:
        raise InputSpecError(f"{path!r} has {n} rows, fewer than one batch of {batch}")
    parts = [{k: a[i:i + batch] for k, a in arrays.items()} for i in range(0, n - batch + 1,
                                                                          batch)]
    return [p[""] if not isinstance(call, dict) else p for p in parts]


def input_fn(path: str, batch: int | None = None) -> Callable[[], list[Call]]:
    """An ``input_fn`` (for ``build()`` or calibration) yielding the calls in ``path``."""
    calls = load_calls(path, batch)
    return lambda: list(calls)
