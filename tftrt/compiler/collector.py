"""Python's full garbage collections, deferred while a conversion runs.

Loading a SavedModel makes hundreds of thousands of long-lived Python objects (on
top of TensorFlow's own); the cyclic collector then runs full passes over all of
them, each a third of a second on ResNet50, that free nothing the conversion
keeps. Young generations are still collected, so short-lived cycles are freed
as usual; full passes resume at the collector's own pace afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
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
