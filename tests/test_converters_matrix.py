"""MatMul and BatchMatMul converters against TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tftrt.compiler.lowering import node_info
from tftrt.plugins.manager import get_registry
from tftrt.testing import check_function, lower_function, trace

TOL = {"rtol": 1e-4, "atol": 1e-4}


def _rand(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _op_types(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul(ta: bool, tb: bool) -> None:
    a = _rand((5, 3) if ta else (3, 5))
    b = _rand((4, 5) if tb else (5, 4), 1)
    check_function(lambda x, y: tf.raw_ops.MatMul(a=x, b=y, transpose_a=ta, transpose_b=tb),
                   [a, b], **TOL)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_matmul_constant_weights(ta: bool, tb: bool) -> None:
    w = _rand((6, 5) if tb else (5, 6), 1)

    def fn(x):
        return tf.raw_ops.MatMul(a=x, b=tf.constant(w), transpose_a=ta, transpose_b=tb)

    x = _rand((5, 3) if ta else (3, 5))
    model = check_function(fn, [x], **TOL)
    # constant weights are transposed at conversion time
    assert _op_types(model).count("Transpose") == (1 if ta else 0)
    specs = [tf.TensorSpec([5, None] if ta else [None, 5], tf.float32)]
    check_function(fn, [_rand((5, 7) if ta else (7, 5), 2)], specs=specs, **TOL)


def test_matmul_constant_left_operand() -> None:
    w = _rand((5, 4), 1)
    check_function(lambda x: tf.raw_ops.MatMul(a=tf.constant(w), b=x, transpose_a=True),
                   [_rand((5, 3))], **TOL)


def test_matmul_of_transpose_needs_no_transpose() -> None:
    def fn(x, y):
        return tf.raw_ops.MatMul(a=tf.transpose(x), b=y, transpose_a=True)

    model = check_function(fn, [_rand((3, 5)), _rand((5, 2), 1)], **TOL)
    assert "Transpose" not in _op_types(model)


@pytest.mark.parametrize("op", ["BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"])
@pytest.mark.parametrize("adj_x", [False, True])
@pytest.mark.parametrize("adj_y", [False, True])
def test_batch_matmul(op: str, adj_x: bool, adj_y: bool) -> None:
    x = _rand((2, 4, 3) if adj_x else (2, 3, 4))
    y = _rand((2, 5, 4) if adj_y else (2, 4, 5), 1)
    extra = {"Tout": tf.float32} if op == "BatchMatMulV3" else {}
    check_function(lambda a, b: getattr(tf.raw_ops, op)(x=a, y=b, adj_x=adj_x, adj_y=adj_y,
                                                        **extra), [x, y], **TOL)


@pytest.mark.parametrize("adj_y", [False, True])
def test_batch_matmul_v2_broadcasting(adj_y: bool) -> None:
    x = _rand((2, 1, 3, 4))
    y = _rand((5, 6, 4) if adj_y else (5, 4, 6), 1)
    check_function(lambda a, b: tf.raw_ops.BatchMatMulV2(x=a, y=b, adj_y=adj_y), [x, y], **TOL)
    w = _rand((6, 4) if adj_y else (4, 6), 2)  # rank-2 constant against a batch
    check_function(lambda a: tf.raw_ops.BatchMatMulV2(x=a, y=tf.constant(w), adj_y=adj_y), [x],
                   **TOL)


def test_batch_matmul_dynamic_batch() -> None:
    specs = [tf.TensorSpec([None, 3, 4], tf.float32), tf.TensorSpec([None, 4, 2], tf.float32)]
    check_function(lambda a, b: tf.raw_ops.BatchMatMulV2(x=a, y=b), [_rand((3, 3, 4)),
                                                                     _rand((3, 4, 2), 1)],
                   specs=specs, **TOL)


def _refusal(fn, specs, op: str) -> str | None:
    g, _, _ = trace(fn, specs)
    node = node_info(g, next(n for n in g.nodes if g.nodes[n]["op"] == op))
    return get_registry().converter(op).validate(node)


def test_refusals() -> None:
    f32 = tf.float32
    reason = _refusal(lambda a, b: tf.raw_ops.MatMul(a=a, b=b),
                      [tf.TensorSpec([2, 2], tf.int32)] * 2, "MatMul")
    assert reason is not None and "Received: int32" in reason
    reason = _refusal(lambda a, b: tf.raw_ops.BatchMatMulV2(x=a, y=b),
                      [tf.TensorSpec(None, f32), tf.TensorSpec([2, 2], f32)], "BatchMatMulV2")
    assert reason is not None and "known rank" in reason
    reason = _refusal(lambda a, b: tf.raw_ops.BatchMatMulV3(x=a, y=b, Tout=tf.int32),
                      [tf.TensorSpec([2, 2], tf.int8)] * 2, "BatchMatMulV3")
    assert reason is not None and "Ta, Tb and Tout" in reason
    assert lower_function(lambda a, b: tf.raw_ops.BatchMatMulV3(x=a, y=b, Tout=f32),
                          [tf.TensorSpec([2, 2], f32)] * 2) is not None


# -- Einsum ------------------------------------------------------------------------------------

EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),  # attention scores
    ("ij,kl->ijkl", [(2, 3), (4, 5)]),  # outer product
    ("i,i->", [(5,), (5,)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij->j", [(3, 4)]),
    ("ii->i", [(4, 4)]),  # diagonal: a label repeated within one operand
    ("iij->j", [(3, 3, 2)]),
    ("ABc,cD->ABD", [(2, 3, 4), (4, 5)]),  # upper-case labels
    ("i1,1_->i_", [(2, 3), (3, 4)]),  # labels ONNX has no name for
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,jk->...ik", [(2, 3, 3, 4), (4, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),  # ellipses of different ranks broadcast
    ("...ij,...jk->...ik", [(3, 4), (4, 2)]),  # empty ellipsis
    ("ab...,b->a...", [(3, 4, 2, 2), (4,)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("...ij->...", [(4, 2, 3)]),
    ("b...d,d->b...", [(2, 3, 4), (4,)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum(equation: str, shapes: list[tuple[int, ...]]) -> None:
    inputs = [_rand(s, k) for k, s in enumerate(shapes)]
    check_function(lambda *xs: tf.raw_ops.Einsum(inputs=list(xs), equation=equation), inputs,
                   **TOL)


def test_einsum_with_constant_operand_and_dynamic_batch() -> None:
    w = _rand((4, 3, 6), 1)

    def fn(x):  # a Keras EinsumDense kernel
        return tf.raw_ops.Einsum(inputs=[x, tf.constant(w)], equation="abc,cde->abde")

    specs = [tf.TensorSpec([None, 5, 4], tf.float32)]
    for batch in (1, 3):
        check_function(fn, [_rand((batch, 5, 4), batch)], specs=specs, **TOL)

    def ellipsis(x):
        return tf.raw_ops.Einsum(inputs=[x, tf.constant(w[:, 0])], equation="...c,cd->...d")

    check_function(ellipsis, [_rand((2, 5, 4))], specs=[tf.TensorSpec([None, None, 4],
                                                                      tf.float32)], **TOL)


def test_einsum_int_and_half() -> None:
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    check_function(lambda x: tf.raw_ops.Einsum(inputs=[x, x], equation="ij,kj->ik"), [a])
    h = _rand((3, 4)).astype(np.float16)
    check_function(lambda x: tf.raw_ops.Einsum(inputs=[x, x], equation="ij,ij->i"), [h],
                   rtol=1e-2, atol=1e-2)


def test_einsum_refusals() -> None:
    f32 = tf.float32
    ellipsis = lambda x, y: tf.raw_ops.Einsum(inputs=[x, y], equation="...ij,jk->...ik")  # noqa: E731
    reason = _refusal(ellipsis, [tf.TensorSpec(None, f32), tf.TensorSpec([2, 2], f32)],
                      "Einsum")
    assert reason is not None and "needs a known rank" in reason
    reason = _refusal(lambda x: tf.raw_ops.Einsum(inputs=[x], equation="ij->ji"),
                      [tf.TensorSpec([2, 2], tf.float64)], "Einsum")
    assert reason is not None and "Received: double" in reason
    # TF reads a space as a label; ONNX ignores it
    reason = _refusal(lambda x: tf.raw_ops.Einsum(inputs=[x], equation="i j->j"),
                      [tf.TensorSpec([2, 2, 2], f32)], "Einsum")
    assert reason is not None and "whitespace" in reason
