"""Python's full garbage collections, deferred while a conversion runs; memory handed back.

Loading a SavedModel makes hundreds of thousands of long-lived Python objects (on
top of TensorFlow's own); the cyclic collector then runs full passes over all of
them, each a third of a second on ResNet50, that free nothing the conversion
keeps. Young generations are still collected, so short-lived cycles are freed
as usual; full passes resume at the collector's own pace afterwards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# a threshold no conversion reaches: young collections promote objects to the
# oldest generation this many times before a full pass
_DEFERRED = 1 << 30


@contextmanager
def full_collections_deferred() -> Iterator[None]:
    """Within the block the collector makes no full pass (thresholds restored after)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], _DEFERRED)
    try:
        yield
    finally:
        if gc.get_threshold()[2] == _DEFERRED:  # unless the block set its own
            gc.set_threshold(*thresholds)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def release_memory(collect: bool = True) -> None:
    """Hand the C heap's free pages back to the system (glibc), after collecting garbage
    unless ``collect`` is false (a full collection costs ~0.3 s with TensorFlow loaded).

    A conversion frees far more than it keeps (the SavedModel's graph, decoded
    weights, ONNX copies), but glibc keeps freed memory for reuse, so the process
    stays at its high-water mark; calibration then adds its own peak on top.
    """
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


__all__ = ["full_collections_deferred", "release_memory"]
