"""Lowering-context mechanics: layout changes."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from tftrt.converters.context import NHWC_TO_NCHW, LoweringContext


def _run(ctx: LoweringContext, x: np.ndarray, out: str, out_shape) -> np.ndarray:
    model = ctx.make_model([("X", np.dtype(np.float32), x.shape)],
                           [(out, np.dtype(np.float32), out_shape)], "t")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x})[0]


def test_moving_only_unit_axes_is_a_reshape_not_a_transpose() -> None:
    ctx = LoweringContext()
    ctx.bind("x:0", "X")  # TF layout (N, 1, 1, C)
    ctx.shapes["x:0"] = (None, 1, 1, 5)
    y = ctx.as_layout("x:0", NHWC_TO_NCHW)
    assert [n.op_type for n in ctx.nodes] == ["Squeeze", "Unsqueeze"]
    x = np.arange(10, dtype=np.float32).reshape(2, 1, 1, 5)
    np.testing.assert_array_equal(_run(ctx, x, y, (2, 5, 1, 1)), x.transpose(0, 3, 1, 2))


def test_real_layout_change_is_one_cached_transpose() -> None:
    ctx = LoweringContext()
    ctx.bind("x:0", "X")
    ctx.shapes["x:0"] = (None, 3, 4, 5)
    y = ctx.as_layout("x:0", NHWC_TO_NCHW)
    assert ctx.as_layout("x:0", NHWC_TO_NCHW) == y
    assert [n.op_type for n in ctx.nodes] == ["Transpose"]
    x = np.random.default_rng(0).random((2, 3, 4, 5), dtype=np.float32)
    np.testing.assert_array_equal(_run(ctx, x, y, (2, 5, 3, 4)), x.transpose(0, 3, 1, 2))
