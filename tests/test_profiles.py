"""Shape profiles and the engine cache, without TensorFlow: the rules of TF-TRT's
profile strategies (the guide's table) and of its implicit-batch cache."""

from __future__ import annotations

import threading
import time

import pytest

from tftrt.plugins.types import ShapeProfile
from tftrt.runtime.cache import NEGATIVE_CAPACITY, EngineCache, serves
from tftrt.runtime.profiles import (
    implicit_batch_profile,
    make_profiles,
    profile_tag,
    select_profile,
)

GUIDE = [((8, 128),), ((4, 384),)]  # the guide's example: inputs [8,128] and [4,384]
SPECS = [(None, None)]


def _p(lo, opt, hi) -> ShapeProfile:
    return ShapeProfile((tuple(lo),), (tuple(opt),), (tuple(hi),))


@pytest.mark.parametrize("strategy,expected", [
    ("Range", [_p((4, 128), (8, 384), (8, 384))]),
    ("Optimal", [_p((8, 128), (8, 128), (8, 128)), _p((4, 384), (4, 384), (4, 384))]),
    ("Range+Optimal", [_p((8, 128), (8, 128), (8, 128)), _p((4, 384), (4, 384), (4, 384)),
                       _p((4, 128), (8, 384), (8, 384))]),
    ("ImplicitBatchModeCompatible", [_p((1, 128), (8, 128), (8, 128)),
                                     _p((1, 384), (4, 384), (4, 384))]),
])
def test_the_guides_table(strategy, expected) -> None:
    profiles = make_profiles(strategy, GUIDE, SPECS)
    assert list(profiles) == expected
    # the guide writes them as [4-8, 128-384], [8, 128] and [4, 384], [1-8, 128], ...
    shown = {"Range": "[4-8,128-384]", "Optimal": "[8,128] [4,384]",
             "Range+Optimal": "[8,128] [4,384] [4-8,128-384]",
             "ImplicitBatchModeCompatible": "[1-8,128] [1-4,384]"}[strategy]
    assert " ".join(str(p) for p in profiles) == shown


def test_duplicates_and_static_dims() -> None:
    collected = [((8, 128), (3,)), ((8, 128), (3,)), ((2, 64), (3,))]
    (rng,) = make_profiles("Range", collected, [(None, None), (3,)])
    assert rng == ShapeProfile(((2, 64), (3,)), ((8, 128), (3,)), ((8, 128), (3,)))
    assert len(make_profiles("Optimal", collected, [(None, None), (3,)])) == 2
    # a batch dim the spec fixes stays fixed in ImplicitBatchModeCompatible
    (fixed,) = make_profiles("ImplicitBatchModeCompatible", [((8, 16),)], [(8, None)])
    assert fixed.min == ((8, 16),)


def test_bad_collections_are_refused() -> None:
    with pytest.raises(ValueError, match="Invalid profile strategy 'Best'.*'Range'"):
        make_profiles("Best", GUIDE, SPECS)
    with pytest.raises(ValueError, match="no input shapes"):
        make_profiles("Range", [], SPECS)
    with pytest.raises(ValueError, match="disagree in rank"):
        make_profiles("Range", [((8, 128),), ((8, 128, 1),)], [None])


def test_first_containing_profile_wins() -> None:
    profiles = make_profiles("Range+Optimal", GUIDE, SPECS)
    assert select_profile(profiles, ((8, 128),)) == 0
    assert select_profile(profiles, ((4, 384),)) == 1
    assert select_profile(profiles, ((6, 256),)) == 2
    assert select_profile(profiles, ((9, 128),)) == -1
    assert select_profile(profiles, ((8, 128, 1),)) == -1
    assert profile_tag(profiles) == "8x128+4x384+4-8x128-384"


def test_implicit_batch_profile_serves_smaller_batches_only() -> None:
    key = (implicit_batch_profile(((128, 16), (128, 4)), [(None, 16), (None, 4)]),)
    assert serves(key, ((64, 16), (64, 4))) and serves(key, ((1, 16), (7, 4)))
    assert not serves(key, ((129, 16), (1, 4)))
    assert not serves(key, ((64, 17), (64, 4)))  # other dims must be equal
    assert implicit_batch_profile(((), (3,)), [(), (3,)]).min == ((), (3,))


class _Counting:
    """Stands for an engine backend: counts builds, takes a while to build."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail, self.built = delay, fail, []
        self.lock = threading.Lock()

    def build(self, key):
        time.sleep(self.delay)
        with self.lock:
            self.built.append(key)
        return None if self.fail else f"engine{len(self.built)}"


def _implicit(cache: EngineCache, shapes, builder: _Counting, may_build: bool = True):
    key = (implicit_batch_profile(shapes, [None] * len(shapes)),)
    return cache.acquire(shapes, key, lambda: builder.build(key), may_build=may_build,
                         exclusive=False, rank=lambda k: k[0].max)


def test_implicit_cache_picks_the_smallest_compatible_batch_and_evicts_lru() -> None:
    cache, b = EngineCache(2), _Counting()
    e128 = _implicit(cache, ((128, 16),), b)
    assert [_implicit(cache, ((n, 16),), b) for n in (64, 32, 7, 128, 64)] == [e128] * 5
    e32 = _implicit(cache, ((32, 8),), b)  # other dims differ: a second engine
    e256 = _implicit(cache, ((256, 16),), b)  # evicts the least recently used (128)
    assert len(b.built) == 3 and len(cache.items()) == 2
    assert _implicit(cache, ((8, 16),), b) == e256
    assert _implicit(cache, ((4, 8),), b) == e32
    assert len(b.built) == 3


def test_refused_and_failed_builds_leave_negative_entries() -> None:
    cache, b = EngineCache(1), _Counting()
    e = _implicit(cache, ((8, 4),), b)
    assert _implicit(cache, ((16, 4),), b, may_build=False) is None
    assert _implicit(cache, ((16, 4),), b) is None  # not retried, even now
    assert _implicit(cache, ((8, 4),), b) == e  # the refusal evicted no engine
    failing = _Counting(fail=True)
    assert _implicit(cache, ((2, 5),), failing) is None
    assert _implicit(cache, ((1, 5),), failing) is None  # served by the failed key
    assert len(failing.built) == 1
    for n in range(NEGATIVE_CAPACITY + 1):  # negative entries are bounded
        _implicit(cache, ((1, 100 + n),), b, may_build=False)
    assert _implicit(cache, ((16, 4),), b) is not None  # the oldest one was forgotten


def test_exclusive_cache_builds_one_engine() -> None:
    cache, b = EngineCache(1), _Counting()
    key = make_profiles("Range", GUIDE, SPECS)
    engine = cache.acquire(((8, 128),), key, lambda: b.build(key), may_build=True,
                           exclusive=True)
    other = ((9, 128),)
    assert cache.acquire(other, (_p(*[other[0]] * 3),), lambda: b.build(other),
                         may_build=True, exclusive=True) is None
    assert cache.acquire(((5, 200),), key, lambda: b.build(key), may_build=True,
                         exclusive=True) == engine
    assert len(b.built) == 1


def test_racing_threads_build_each_engine_once() -> None:
    cache, b = EngineCache(4), _Counting(delay=0.05)
    results, errors = [], []

    def call(n: int) -> None:
        try:
            for _ in range(10):
                results.append(_implicit(cache, ((n, 3),), b))
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(8 if k % 2 else 4,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and None not in results
    keys = [k[0].max for k in b.built]
    assert len(keys) == len(set(keys)), keys  # no engine built twice
