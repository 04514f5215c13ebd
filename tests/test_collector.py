"""Full garbage collections deferred during a conversion."""

from __future__ import annotations

import gc

import pytest

from tftrt.compiler.collector import full_collections_deferred


def test_no_full_pass_inside_and_thresholds_restored():
    before = gc.get_threshold()
    seen = []

    def note(phase, info):
        if phase == "start":
            seen.append(info["generation"])
    gc.callbacks.append(note)
    try:
        with full_collections_deferred():
            for _ in range(200_000):  # young cycles: still collected
                a = []
                a.append(a)
    finally:
        gc.callbacks.remove(note)
    assert seen and 2 not in seen
    assert gc.get_threshold() == before


def test_thresholds_restored_after_an_error():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), full_collections_deferred():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
