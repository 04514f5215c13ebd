"""Shape profiles: which input shapes an engine serves, made the way TF-TRT makes them.

Implicit batch mode (``use_dynamic_shape=False``): an engine built for batch N
serves every batch <= N whose other dimensions are equal, i.e. the profile
[1-N, d1, d2, ...]. Dynamic shape mode: the shapes ``build()`` collected become
profiles by strategy (Range, Optimal, Range+Optimal, ImplicitBatchModeCompatible).
"""

from __future__ import annotations

from collections.abc import Sequence

from tftrt.plugins.types import ShapeProfile, Shapes
from tftrt.specs import PROFILE_STRATEGIES, Shape


def as_shapes(shapes: Sequence[Sequence[int]]) -> Shapes:
    return tuple(tuple(int(d) for d in s) for s in shapes)


def _batch_one(shape: tuple[int, ...], spec: Shape) -> tuple[int, ...]:
    """``shape`` with its leading (batch) dim lowered to 1, unless the spec fixes it."""
    if not shape or (spec is not None and len(spec) == len(shape) and spec[0] is not None):
        return shape
    return (min(1, shape[0]),) + shape[1:]


def _pin_static(shapes: Shapes, specs: Sequence[Shape]) -> Shapes:
    """Dims the engine's input specs fix override whatever was collected."""
    out = []
    for shape, spec in zip(shapes, specs, strict=True):
        if spec is None or len(spec) != len(shape):
            out.append(shape)
        else:
            out.append(tuple(d if s is None else s for d, s in zip(shape, spec, strict=True)))
    return tuple(out)


def implicit_batch_profile(shapes: Shapes, specs: Sequence[Shape]) -> ShapeProfile:
    """The profile of an implicit-batch engine built for ``shapes``: batch 1 up to theirs."""
    return ShapeProfile(tuple(_batch_one(s, p) for s, p in zip(shapes, specs, strict=True)),
                        shapes, shapes)


def make_profiles(strategy: str, collected: Sequence[Shapes],
                  specs: Sequence[Shape]) -> tuple[ShapeProfile, ...]:
    """The profiles TF-TRT makes from the shapes ``build()`` collected (duplicates dropped).

    Range: one profile from the element-wise minimum to the maximum (opt = max).
    Optimal: one static profile per distinct shape set. Range+Optimal: the Optimal
    profiles, then the Range one. ImplicitBatchModeCompatible: per shape set, batch 1
    up to it. Dims the engine's input specs fix are pinned to their value.
    """
    if strategy not in PROFILE_STRATEGIES:
        raise ValueError(f"Invalid profile strategy {strategy!r}; expected one of "
                         f"{list(PROFILE_STRATEGIES)}")
    entries = list(dict.fromkeys(_pin_static(as_shapes(c), specs) for c in collected))
    if not entries:
        raise ValueError("no input shapes were collected to make profiles from")
    ranks = {tuple(len(s) for s in e) for e in entries}
    if len(ranks) != 1:
        raise ValueError(f"the collected input shapes disagree in rank: {entries}")
    lo = tuple(tuple(min(d) for d in zip(*per_input, strict=True))
               for per_input in zip(*entries, strict=True))
    hi = tuple(tuple(max(d) for d in zip(*per_input, strict=True))
               for per_input in zip(*entries, strict=True))
    optimal = tuple(ShapeProfile(e, e, e) for e in entries)
    ranged = ShapeProfile(lo, hi, hi)
    if strategy == "Range":
        return (ranged,)
    if strategy == "Optimal":
        return optimal
    if strategy == "Range+Optimal":
        return optimal + ((ranged,) if ranged not in optimal else ())
    return tuple(implicit_batch_profile(e, specs) for e in entries)


def select_profile(profiles: Sequence[ShapeProfile], shapes: Shapes) -> int:
    """The index of the first profile containing ``shapes`` (TF-TRT's rule), or -1."""
    for k, p in enumerate(profiles):
        if p.contains(shapes):
            return k
    return -1


def profile_tag(profiles: Sequence[ShapeProfile]) -> str:
    """A file-name-safe name for a set of profiles, e.g. ``1-8x128+4x384``."""
    return "+".join(p.tag for p in profiles)
