"""The model zoo converts as expected: its engines, only genuinely unconvertible ops left
native, TensorFlow's results, and no engine that fails at run time.

The default profile converts the zoo's fast models; ``-m slow`` converts all of it, one
model per process (``python -m tests.zoo NAME``: the large models would not fit in one).
``benchmarks/bench_zoo.py`` measures the same conversions for ``docs/models.md``.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.zoo import ZOO, ZooModel
from tests.zoo.measure import Measurement, measure, measure_isolated

FAST = sorted(n for n, m in ZOO.items() if m.fast)
SLOW = sorted(n for n, m in ZOO.items() if not m.fast)


def check(model: ZooModel, m: Measurement) -> None:
    left = m.native_ops - model.expected_native(m.backend)
    assert not left, f"{model.name}: ops left native that should convert: {m.native_summary()}"
    want = model.expected_engines(m.backend)
    assert m.engines == want, (
        f"{model.name}: {m.engines} engines, expected {want}; {m.native_summary()}")
    assert m.max_error <= model.rtol, f"{model.name}: max error {m.max_error:.3g}"
    # an engine that builds but fails at run time is a bug, not a fallback
    assert m.run_failures == 0 and m.build_failures == 0, f"{model.name}: engine failures"
    assert m.native_calls == 0, f"{model.name}: engines fell back to their native segments"
    assert m.engine_calls > 0 or want == 0, f"{model.name}: no engine ran"


@pytest.mark.parametrize("name", FAST)
def test_zoo_fast(name: str, tmp_path) -> None:
    model = ZOO[name]
    src = str(tmp_path / model.name)
    model.build(src)
    check(model, measure(model.name, src, model.inputs, use_dynamic_shape=model.dynamic))


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_zoo(name: str) -> None:
    row = measure_isolated(name)
    native = {reason: Counter(ops) for reason, ops in row["native"].items()}
    m = Measurement(name, row["engines"], row["ops"], row["ops_in_engines"], native,
                    row["max_error"], row["run_failures"], row["build_failures"],
                    row["native_calls"], row["engine_calls"], backend=row["backend"])
    check(ZOO[name], m)
