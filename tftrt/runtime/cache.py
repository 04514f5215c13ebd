"""The engine cache of one engine op: engines keyed by the profiles they serve.

Thread-safe: a lookup takes the cache's lock only to pick an engine, never while
an engine builds or runs, and an engine is built once even when several threads
want it at the same time (the others wait for that build, then look again).
The engine picked for a set of shapes is remembered until the cached engines
change, so that a call on shapes seen before costs one dictionary lookup.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from tftrt.plugins.types import Engine, ShapeProfile, Shapes

Key = tuple[ShapeProfile, ...]

# Shapes whose build failed or was refused are remembered (not retried) in an LRU of
# their own, so that a refused shape never evicts a working engine.
NEGATIVE_CAPACITY = 64
# Distinct call shapes whose pick is remembered (dynamic shapes can take many).
PICKED_CAPACITY = 1024


def serves(key: Key, shapes: Shapes) -> bool:
    return any(p.contains(shapes) for p in key)


class EngineCache:
    """An LRU of ``capacity`` engines, plus negative entries and builds in flight."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._lock = threading.Lock()
        self._engines: OrderedDict[Key, Engine] = OrderedDict()
        self._failed: OrderedDict[Key, None] = OrderedDict()
        self._building: dict[Key, threading.Event] = {}
        # shapes -> the key of the engine that serves them; cleared when engines change
        self._picked: dict[Shapes, Key] = {}

    def hit(self, shapes: Shapes) -> Engine | None:
        """The engine ``acquire`` picked for ``shapes`` before, if the cache still holds it
        unchanged (the LRU order is kept); None when there is none to reuse."""
        with self._lock:
            try:
                key = self._picked.get(shapes)
            except TypeError:  # shapes given as lists: never remembered as such
                return None
            if key is None:
                return None
            self._engines.move_to_end(key)
            return self._engines[key]

    def acquire(self, shapes: Shapes, new_key: Key, build: Callable[[], Engine | None], *,
                may_build: bool, exclusive: bool,
                rank: Callable[[Key], Any] = lambda k: 0) -> Engine | None:
        """The engine to run ``shapes`` on, or None when none can serve them.

        Among cached engines serving ``shapes``, the one of lowest ``rank`` wins. Else
        an engine for ``new_key`` is built (once, by this thread) when ``may_build``;
        ``exclusive`` caches allow one engine at most, so once anything is cached or
        building, unserved shapes get None instead of a second build.
        """
        while True:
            with self._lock:
                hits = [k for k in self._engines if serves(k, shapes)]
                if hits:
                    key = min(hits, key=rank)
                    self._engines.move_to_end(key)
                    if len(self._picked) >= PICKED_CAPACITY:
                        self._picked.clear()
                    self._picked[tuple(tuple(s) for s in shapes)] = key
                    return self._engines[key]
                if any(serves(k, shapes) for k in self._failed):
                    return None
                pending = next((ev for k, ev in self._building.items()
                                if exclusive or serves(k, shapes)), None)
                if pending is None:
                    if exclusive and (self._engines or self._failed):
                        return None
                    if not may_build:
                        self._remember_failure(new_key)
                        return None
                    event = self._building[new_key] = threading.Event()
            if pending is not None:
                pending.wait()
                continue
            return self._build(new_key, build, event)

    def _build(self, key: Key, build: Callable[[], Engine | None],
               event: threading.Event) -> Engine | None:
        engine = None
        try:
            engine = build()
            return engine
        finally:
            with self._lock:
                if engine is None:
                    self._remember_failure(key)
                else:
                    self._insert(key, engine)
                del self._building[key]
            event.set()

    def _remember_failure(self, key: Key) -> None:
        self._failed[key] = None
        self._failed.move_to_end(key)
        while len(self._failed) > NEGATIVE_CAPACITY:
            self._failed.popitem(last=False)

    def _insert(self, key: Key, engine: Engine) -> None:
        self._picked.clear()  # a new engine may serve remembered shapes better
        self._failed.pop(key, None)
        self._engines[key] = engine
        self._engines.move_to_end(key)
        while len(self._engines) > self.capacity:
            self._engines.popitem(last=False)

    def put(self, key: Key, engine: Engine) -> None:
        """Add an engine built elsewhere (restored from a saved model)."""
        with self._lock:
            self._insert(key, engine)

    def items(self) -> list[tuple[Key, Engine]]:
        with self._lock:
            return list(self._engines.items())

    def clear(self) -> None:
        with self._lock:
            self._engines.clear()
            self._failed.clear()
            self._picked.clear()
