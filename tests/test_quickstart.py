"""The guide's quickstart, as written in docs/quickstart.md, runs and gives Keras' results."""

from __future__ import annotations

import pathlib
import re

import numpy as np

from tests.conftest import max_rel_err
from tftrt.compiler import ir

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "quickstart.md"


def run_doc_blocks(path: pathlib.Path) -> dict:
    """Execute every python block of a doc in one namespace; returns the namespace."""
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
    assert blocks, f"no python blocks in {path}"
    ns: dict = {"__name__": "__doc__"}
    for block in blocks:
        exec(compile(block, str(path), "exec"), ns)  # noqa: S102 - our own docs
    return ns


def test_quickstart_runs_and_matches_keras(capsys) -> None:
    ns = run_doc_blocks(DOC)
    model, x_test = ns["model"], ns["x_test"]
    want = model(x_test[:128]).numpy()
    got = ns["trt_func"](x_test[:128])["output_0"].numpy()
    assert max_rel_err(got, want) < 1e-4
    # the summary was printed in TF-TRT's format with one engine
    out = capsys.readouterr().out
    assert "[*] Total number of TensorRT engines: 1" in out
    assert "TRTEngineOp_" in out
    # whole model in one engine: no TensorFlow in the per-call path
    assert ns["trt_func"].runs_without_tensorflow
    frozen = ns["converter"].frozen_graph_def
    assert ir.to_graph_def(ir.from_graph_def(frozen)) == frozen
    # loaded with its engines, nothing rebuilt
    loaded = ns["loaded"]
    assert max_rel_err(ns["logits"].numpy(), want) < 1e-4
    for op in loaded.engines.values():
        assert op.stats.builds == 0 and op.stats.engine_calls >= 1
    # plain TensorFlow runs the same directory natively
    assert max_rel_err(ns["native_logits"].numpy(), want) < 1e-5
    # the model learned something (the doc trains it)
    acc = float(np.mean(np.argmax(got, axis=1) == ns["y_test"][:128]))
    assert acc > 0.8
