"""Random TF graphs for differential fuzzing: hypothesis strategies and a builder.

A ``GraphSpec`` is plain data (hypothesis shrinks it); ``build_function`` turns it
into a Python function of TF ops. Graphs mix ops tftrt converts with ops it has
no converter for (``BesselI0e``, ``Atan2``), share constants between consumers,
fan tensors out, add control dependencies, return several outputs and carry an
int32 path beside the float32 one. Values stay where float rounding cannot flip a
discrete result (no float -> int casts, no comparisons), so engine and
TensorFlow must agree within float tolerance and exactly on int32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from hypothesis import strategies as st

FLOAT_UNARY = ("Relu", "Tanh", "Sigmoid", "Abs", "Neg", "Softplus", "Elu", "Sin",
               "Identity", "StopGradient", "BesselI0e")
FLOAT_BINARY = ("AddV2", "Sub", "Mul", "Maximum", "Minimum", "SquaredDifference", "Atan2")
FLOAT_OTHER = ("MatMul", "Sum", "Mean", "ConcatV2", "Split", "AddN", "ConstBinary", "FromInt")
INT_OPS = ("IAdd", "ISub", "IMaximum", "IMinimum", "IAbs", "INeg", "IConstAdd")
# Op types a deny list may name (those the registry converts).
DENYABLE = ("Relu", "Tanh", "Sigmoid", "AddV2", "Mul", "MatMul", "Sum", "ConcatV2", "Sub",
            "Maximum", "Softplus", "BatchMatMulV2")


@dataclass(frozen=True)
class OpSpec:
    kind: str
    a: int  # operand indices, taken modulo the pool they read from
    b: int
    c: int
    const: int  # which shared constant
    control: int | None  # index of a tensor to depend on by a control edge


@dataclass(frozen=True)
class GraphSpec:
    width: int
    batch: int
    dynamic_batch: bool
    rank3: bool
    float_inputs: int
    int_input: bool
    ops: tuple[OpSpec, ...]
    outputs: tuple[int, ...]
    int_outputs: tuple[int, ...]
    seed: int
    variables: bool = False  # the shared float constants are tf.Variables instead

    def input_shape(self, batch: int | None) -> list[int | None]:
        return [batch, 2, self.width] if self.rank3 else [batch, self.width]

    def signature(self) -> list[tf.TensorSpec]:
        shape = self.input_shape(None if self.dynamic_batch else self.batch)
        specs = [tf.TensorSpec(shape, tf.float32, name=f"x{k}")
                 for k in range(self.float_inputs)]
        if self.int_input:
            specs.append(tf.TensorSpec(shape, tf.int32, name="n"))
        return specs

    def input_names(self) -> list[str]:
        return [s.name for s in self.signature()]

    def inputs(self, batch: int | None = None, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + seed)
        shape = self.input_shape(batch or self.batch)
        xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(self.float_inputs)]
        if self.int_input:
            xs.append(rng.integers(-5, 6, shape).astype(np.int32))
        return xs


@dataclass(frozen=True)
class ConvertParams:
    minimum_segment_size: int
    max_engines: int | None
    deny: tuple[str, ...]
    dynamic_shape: bool
    backend: str
    save: bool  # also save, reload (tftrt.load and plain TF) and compare those
    unfrozen: bool  # TF_TRT_EXPERIMENTAL_FEATURES=disable_graph_freezing (needs dynamic_shape)


op_specs = st.builds(
    OpSpec,
    kind=st.sampled_from(FLOAT_UNARY + FLOAT_BINARY + FLOAT_OTHER + INT_OPS),
    a=st.integers(0, 63), b=st.integers(0, 63), c=st.integers(0, 63),
    const=st.integers(0, 2),
    control=st.none() | st.integers(0, 63))


@st.composite
def graph_specs(draw, max_ops: int = 12) -> GraphSpec:
    """A random graph: 1-``max_ops`` ops over 1-2 float inputs and maybe an int32 one."""
    int_input = draw(st.booleans())
    ops = draw(st.lists(op_specs, min_size=1, max_size=max_ops))
    if not int_input:
        ops = [o for o in ops if o.kind not in INT_OPS and o.kind != "FromInt"] or \
            [OpSpec("Relu", 0, 0, 0, 0, None)]
    return GraphSpec(
        width=draw(st.integers(1, 6)), batch=draw(st.integers(1, 3)),
        dynamic_batch=draw(st.booleans()), rank3=draw(st.booleans()),
        float_inputs=draw(st.integers(1, 2)), int_input=int_input, ops=tuple(ops),
        outputs=tuple(draw(st.lists(st.integers(0, 63), min_size=1, max_size=3))),
        int_outputs=tuple(draw(st.lists(st.integers(0, 63), max_size=1))) if int_input else (),
        seed=draw(st.integers(0, 2**16)), variables=draw(st.booleans()))


convert_params = st.builds(
    ConvertParams,
    minimum_segment_size=st.sampled_from([1, 2, 3, 5]),
    max_engines=st.sampled_from([None, 1, 2]),
    deny=st.lists(st.sampled_from(DENYABLE), max_size=2, unique=True).map(tuple),
    dynamic_shape=st.booleans(),
    backend=st.sampled_from(["openvino", "onnxruntime"]),
    save=st.integers(0, 3).map(lambda k: k == 0),
    unfrozen=st.booleans())


class _Builder:
    """Applies a GraphSpec's ops to a pool of float tensors and a pool of int32 tensors."""

    def __init__(self, spec: GraphSpec, args, variables: list[tf.Variable]) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.floats = list(args[:spec.float_inputs])
        self.ints = list(args[spec.float_inputs:])
        values = shared_values(spec)
        # shared: each Const (or variable read) has several consumers
        self.consts = ([tf.convert_to_tensor(v) for v in variables] if variables
                       else [tf.constant(v) for v in values])
        self.int_consts = [tf.constant(self.rng.integers(-3, 4, spec.width).astype(np.int32))
                           for _ in range(3)]
        self.weights: dict[tuple[int, int], tf.Tensor] = {}

    def weight(self, rows: int, which: int) -> tf.Tensor:
        key = (rows, which)
        if key not in self.weights:
            w = self.rng.standard_normal((rows, self.spec.width)) / np.sqrt(rows)
            self.weights[key] = tf.constant(w.astype(np.float32))
        return self.weights[key]

    def f(self, i: int) -> tf.Tensor:
        return self.floats[i % len(self.floats)]

    @staticmethod
    def fit(x: tf.Tensor, like: tf.Tensor, strict: bool = False) -> tf.Tensor:
        """``x``, summed over its last axis unless that broadcasts against ``like``'s.

        ``strict``: the result's last axis is ``like``'s or 1, so several such
        results broadcast together.
        """
        if x.shape[-1] in (like.shape[-1], 1) or (like.shape[-1] == 1 and not strict):
            return x
        return tf.reduce_sum(x, axis=-1, keepdims=True)

    def pair(self, i: int, j: int) -> tuple[tf.Tensor, tf.Tensor]:
        x = self.f(i)
        return x, self.fit(self.f(j), x)

    def apply(self, op: OpSpec) -> None:
        pool = self.floats + self.ints
        if op.control is not None:
            with tf.control_dependencies([pool[op.control % len(pool)]]):
                self._apply(op)
        else:
            self._apply(op)

    def _apply(self, op: OpSpec) -> None:  # noqa: C901 - one branch per op kind
        k, f = op.kind, self.f
        out: list[tf.Tensor] = []
        if k in FLOAT_UNARY:
            fn = {"Relu": tf.nn.relu, "Tanh": tf.tanh, "Sigmoid": tf.sigmoid, "Abs": tf.abs,
                  "Neg": tf.negative, "Softplus": tf.nn.softplus, "Elu": tf.nn.elu,
                  "Sin": tf.sin, "Identity": tf.identity, "StopGradient": tf.stop_gradient,
                  "BesselI0e": tf.math.bessel_i0e}[k]
            out = [fn(f(op.a))]
        elif k in FLOAT_BINARY:
            fn = {"AddV2": tf.add, "Sub": tf.subtract, "Mul": tf.multiply,
                  "Maximum": tf.maximum, "Minimum": tf.minimum,
                  "SquaredDifference": tf.math.squared_difference, "Atan2": tf.atan2}[k]
            out = [fn(*self.pair(op.a, op.b))]
        elif k == "ConstBinary":
            fn = (tf.add, tf.multiply, tf.maximum)[op.b % 3]
            c = self.consts[op.const]
            out = [fn(self.fit(f(op.a), c), c)]
        elif k == "MatMul":
            x = f(op.a)
            w = self.weight(int(x.shape[-1]), op.const)
            if self.spec.variables:  # columns scaled by a variable: a weight read at run time
                w = w * self.consts[op.const]
            out = [tf.matmul(x, w)]
        elif k in ("Sum", "Mean"):
            fn = tf.reduce_sum if k == "Sum" else tf.reduce_mean
            out = [fn(f(op.a), axis=-1, keepdims=True)]
        elif k == "ConcatV2":
            out = [tf.concat([f(op.a), f(op.b)], axis=-1)]
        elif k == "Split":
            x = f(op.a)
            if x.shape[-1] % 2:
                x = tf.concat([x, f(op.b)[..., :1]], axis=-1)
            out = list(tf.split(x, 2, axis=-1))  # one node, two outputs
        elif k == "AddN":
            x = f(op.a)
            y, z = (self.fit(f(i), x, strict=True) for i in (op.b, op.c))
            if x.shape[-1] == y.shape[-1] == z.shape[-1]:
                out = [tf.add_n([x, y, z])]
            else:
                out = [x + y + z]
        elif k == "FromInt":
            out = [tf.cast(self.ints[op.a % len(self.ints)], tf.float32)]
        elif k in INT_OPS:
            self._apply_int(op)
        self.floats.extend(out)

    def _apply_int(self, op: OpSpec) -> None:
        a = self.ints[op.a % len(self.ints)]
        b = self.ints[op.b % len(self.ints)]
        out = {"IAdd": lambda: a + b, "ISub": lambda: a - b,
               "IMaximum": lambda: tf.maximum(a, b), "IMinimum": lambda: tf.minimum(a, b),
               "IAbs": lambda: tf.abs(a), "INeg": lambda: -a,
               "IConstAdd": lambda: a + self.int_consts[op.const]}[op.kind]()
        self.ints.append(out)

    def outputs(self) -> dict[str, tf.Tensor]:
        # The last op always feeds an output, so graphs are not pruned to nothing.
        picks = [len(self.floats) - 1] + list(self.spec.outputs)
        outs = {f"out{k}": tf.identity(self.floats[i % len(self.floats)])
                for k, i in enumerate(picks)}
        for k, i in enumerate(self.spec.int_outputs):
            outs[f"iout{k}"] = tf.identity(self.ints[i % len(self.ints)])
        return outs


def shared_values(spec: GraphSpec) -> list[np.ndarray]:
    """The values of the three shared float constants (or variables)."""
    rng = np.random.default_rng(spec.seed + 1)
    return [rng.uniform(-1, 1, spec.width).astype(np.float32) for _ in range(3)]


def build_function(spec: GraphSpec):
    """The spec as a Python function of TF ops returning {name: tensor}.

    With ``spec.variables`` the shared constants are variables, created here and
    listed in ``fn.variables`` (a saved module must track them).
    """
    variables = [tf.Variable(v) for v in shared_values(spec)] if spec.variables else []

    def fn(*args):
        b = _Builder(spec, args, variables)
        for op in spec.ops:
            b.apply(op)
        return b.outputs()

    fn.variables = variables
    return fn
