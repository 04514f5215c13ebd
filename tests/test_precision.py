"""Reduced precision: FP16 per backend, INT8 by calibration and from quantization ops."""

from __future__ import annotations

import os
import weakref

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import export_module
from tftrt import load as tftrt_load
from tftrt import trt_convert as trt
from tftrt.compiler import calibration, precision
from tftrt.errors import CalibrationError

BACKENDS = ["openvino", "onnxruntime"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A small CNN trained on scikit-learn's 8x8 digits, exported; and its held-out data."""
    import keras
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=32, verbose=0)
    path = str(tmp_path_factory.mktemp("models") / "digits_cnn")
    model.export(path, verbose=False)
    return path, x_train, x_test, y_test


def accuracy(fn, x: np.ndarray, y: np.ndarray) -> float:
    logits = next(iter(fn(x).values())).numpy()
    return float(np.mean(np.argmax(logits, axis=1) == y) * 100)


def calibration_fn(x: np.ndarray, batches: int = 8, size: int = 32):
    return lambda: ([x[k * size:(k + 1) * size]] for k in range(batches))


@pytest.fixture(scope="module")
def fp32_accuracy(digits) -> float:
    path, _, x_test, y_test = digits
    serve = tf.saved_model.load(path).signatures["serving_default"]
    acc = accuracy(lambda x: serve(tf.constant(x)), x_test, y_test)
    assert acc > 90, "the test CNN did not learn"
    return acc


def test_int8_calibration_runs_without_the_conversion_ir(digits, monkeypatch) -> None:
    """The segmented IR (a copy of the weights) is released before the engines are
    quantized, the memory peak of an INT8 conversion."""
    import tftrt.trt_convert as face

    path, x_train, _, _ = digits
    irs: list[weakref.ref] = []
    compile_model, quantize = face.compile_model, calibration.quantize

    def compiling(*args, **kwargs):
        conversion = compile_model(*args, **kwargs)
        irs.append(weakref.ref(conversion.ir))
        return conversion

    alive: list[bool] = []

    def quantizing(*args, **kwargs):
        alive.append(irs[-1]() is not None)
        return quantize(*args, **kwargs)

    monkeypatch.setattr(face, "compile_model", compiling)
    monkeypatch.setattr(calibration, "quantize", quantizing)
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="INT8",
                                   backend="onnxruntime")
    conv.convert(calibration_input_fn=calibration_fn(x_train, batches=2))
    assert alive == [False]
    assert conv._conversion.ir is None  # noqa: SLF001
    (op,) = conv.engines.values()
    assert precision.has_qdq(op.onnx_model)


@pytest.mark.parametrize("backend", BACKENDS)
def test_int8_calibrated_cnn_keeps_accuracy(digits, fp32_accuracy, backend) -> None:
    path, x_train, x_test, y_test = digits
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="INT8",
                                   backend=backend)
    fn = conv.convert(calibration_input_fn=calibration_fn(x_train))
    acc = accuracy(fn, x_test, y_test)
    assert abs(acc - fp32_accuracy) <= 1.0, (acc, fp32_accuracy)
    (op,) = conv.engines.values()
    assert op.precision == "INT8"
    assert precision.has_qdq(op.onnx_model)
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    where = " on CPUExecutionProvider" if backend == "onnxruntime" else ""
    assert f"Backend: {backend}{where}, precision: INT8" in lines[0]
    assert "INT8 scales: entropy calibration on 8 batches of shapes [[32, 8, 8, 1]]" in lines[0]
    int8, kept = precision.int8_layers(op.onnx_model)
    assert int8.get("Conv") and "INT8 layers: " in lines[0]
    assert all(f"{k} x{v}" in lines[0] for k, v in int8.items())
    if kept:  # the summary says which ops stayed float
        assert "Kept float" in lines[0] and all(k in lines[0] for k in kept)


def test_int8_calibrates_every_engine_of_a_split_model(digits, fp32_accuracy, monkeypatch,
                                                       capsys) -> None:
    """Two engines around a native op: the second is calibrated on the first's FP32 output."""
    path, x_train, x_test, y_test = digits
    monkeypatch.setenv("TF_TRT_OP_DENYLIST", "MaxPool")
    monkeypatch.setenv("TFTRT_PROGRESS", "1")  # bars show on a terminal only: force them
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="INT8",
                                   minimum_segment_size=2, backend="openvino")
    before = calibration.CALIBRATIONS
    fn = conv.convert(calibration_input_fn=calibration_fn(x_train, batches=4))
    assert len(conv.engines) == 2 and calibration.CALIBRATIONS == before + 2
    shapes = sorted(str(op.calibration["input_shapes"]) for op in conv.engines.values())
    assert shapes == ["[[32, 4, 4, 32]]", "[[32, 8, 8, 1]]"]
    assert all(op.calibration["batches"] == 4 for op in conv.engines.values())
    err = capsys.readouterr().err  # the progress: batches done, elapsed time
    assert "INT8 calibration: running calibration data: 4batch [00:" in err
    assert "INT8 calibration: entropy scales: 100%" in err and "2/2" in err
    assert abs(accuracy(fn, x_test, y_test) - fp32_accuracy) <= 1.0
    assert all(op.precision == "INT8" for op in conv.engines.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp16_cnn_keeps_accuracy_and_says_what_runs(digits, fp32_accuracy, backend) -> None:
    path, _, x_test, y_test = digits
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="FP16",
                                   backend=backend)
    fn = conv.convert()
    acc = accuracy(fn, x_test, y_test)
    assert abs(acc - fp32_accuracy) <= 0.5, (acc, fp32_accuracy)
    (op,) = conv.engines.values()
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    if backend == "onnxruntime":
        assert op.precision == "FP32"
        assert "no faster half kernels" in lines[0]
    elif op.precision == "FP32":  # this CPU: no AMX, no AVX512-FP16
        assert "no bf16/f16 kernels" in lines[0]


def test_fp16_cast_onnx_for_tensorrt_keeps_sensitive_ops_fp32(digits, fp32_accuracy) -> None:
    """The TensorRT path's FP16 ONNX, run here by ONNX Runtime: half weights, FP32 softmax."""
    import onnx
    import onnxruntime as ort

    path, _, x_test, y_test = digits
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, backend="onnxruntime")
    conv.convert()
    (op,) = conv.engines.values()
    cast = precision.onnx_for_backend(op.onnx_model, "tensorrt", "FP16")
    model = onnx.load_from_string(cast)
    conv_w = [i for i in model.graph.initializer if len(i.dims) == 4]
    assert conv_w and all(i.data_type == onnx.TensorProto.FLOAT16 for i in conv_w)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    sess = ort.InferenceSession(cast, providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: x_test})[0]
    acc = float(np.mean(np.argmax(logits, axis=1) == y_test) * 100)
    assert abs(acc - fp32_accuracy) <= 0.5

    softmax = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["h"]),
         onnx.helper.make_node("Softmax", ["h"], ["y"], axis=-1)], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 4])],
        [onnx.numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")]),
        opset_imports=[onnx.helper.make_opsetid("", 17)])
    cast = onnx.load_from_string(precision.cast_to_fp16(softmax.SerializeToString()))
    (sm,) = [n for n in cast.graph.node if n.op_type == "Softmax"]
    producers = {o: n for n in cast.graph.node for o in n.output}
    feeding = producers[sm.input[0]]
    assert feeding.op_type == "Cast" and feeding.attribute[0].i == onnx.TensorProto.FLOAT


def test_int8_saved_model_loads_without_recalibrating(digits, tmp_path) -> None:
    path, x_train, x_test, _ = digits
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="INT8",
                                   backend="openvino", calibration_method="minmax")
    fn = conv.convert(calibration_input_fn=calibration_fn(x_train, batches=2))
    want = next(iter(fn(x_test[:16]).values())).numpy()
    out = str(tmp_path / "int8")
    conv.save(out)
    before = calibration.CALIBRATIONS
    loaded = tftrt_load(out)
    got = next(iter(loaded.signatures["serving_default"](x_test[:16]).values())).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert calibration.CALIBRATIONS == before
    (op,) = loaded.engines.values()
    assert op.stats.builds == 0 and op.stats.engine_calls == 1
    assert op.precision == "INT8"
    saved = loaded.manifest["engines"][op.name]["calibration"]
    assert saved["method"] == "minmax" and saved == op.calibration
    assert saved["weight_bits"] == (8 if precision.cpu_has_vnni() else 7)


def test_dynamic_shape_defers_calibration_to_build(digits) -> None:
    path, x_train, x_test, _ = digits
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="INT8",
                                   use_dynamic_shape=True, backend="onnxruntime",
                                   calibration_method="percentile")
    conv.convert(calibration_input_fn=calibration_fn(x_train, batches=2))
    (op,) = conv.engines.values()
    assert op.calibration is None and not precision.has_qdq(op.onnx_model)
    with pytest.raises(trt.ConversionStateError, match="build"):
        conv.save("/nonexistent/never-written")
    conv.build(lambda: [[x_test[:4]], [x_test[:9]]])
    assert op.calibration["method"] == "percentile" and op.precision == "INT8"


# -- the QAT path: ranges from the graph ----------------------------------------------------

def _qat_fn(w: np.ndarray, weight_bits: int):
    def fn(x):
        x = tf.quantization.fake_quant_with_min_max_vars(x, -1.0, 1.0)
        kernel = tf.quantization.fake_quant_with_min_max_vars(
            tf.constant(w), -0.5, 0.5, num_bits=weight_bits, narrow_range=True)
        y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
        y = tf.quantization.fake_quant_with_min_max_vars(y, -4.0, 4.0)
        y = tf.nn.relu(y)
        return tf.quantization.fake_quant_with_min_max_vars(y, 0.0, 4.0)
    return fn


ORT_SATURATES = pytest.mark.xfail(
    not precision.cpu_has_vnni(), strict=True,
    reason="ONNX Runtime quantizes the (float, on-grid) 8-bit weights into its own int8 "
    "convolution, whose u8 x s8 16-bit pair sums saturate on CPUs without VNNI")


@pytest.mark.parametrize("backend,weight_bits", [
    ("openvino", 8), ("openvino", 7), ("onnxruntime", 7),
    pytest.param("onnxruntime", 8, marks=ORT_SATURATES)])
def test_qat_model_matches_tf_fake_quant(tmp_path, rng, backend, weight_bits) -> None:
    w = rng.uniform(-0.5, 0.5, (3, 3, 4, 8)).astype(np.float32)
    path = export_module(str(tmp_path / "qat"), _qat_fn(w, weight_bits),
                         [tf.TensorSpec([None, 6, 6, 4], tf.float32)])
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="INT8",
                                   use_calibration=False, backend=backend)
    fn = conv.convert()
    x = rng.uniform(-1.2, 1.2, (2, 6, 6, 4)).astype(np.float32)
    got = next(iter(fn(x).values())).numpy()
    want = _qat_fn(w, weight_bits)(tf.constant(x)).numpy()
    # One step of the coarsest quantizer (the convolution's output, 8/255): an int8
    # convolution rounds its exact integer sum where TF rounds a float sum, so an output
    # lying on a rounding boundary may take the neighbouring level; the rest are exact.
    diff = np.abs(got - want)
    assert diff.max() <= 8.0 / 255 * 1.001
    assert np.mean(diff == 0) >= 0.95
    (op,) = conv.engines.values()
    assert op.calibration == {"source": "graph"}
    int8_weights = weight_bits == 7 or precision.cpu_has_vnni()
    # the folded weights go back to int8 + DequantizeLinear where the kernels are exact
    assert (op.precision == "INT8") == int8_weights, op.precision
    lines: list[str] = []
    conv.summary(print_fn=lines.append)
    assert "INT8 scales: from the graph's quantization ops" in lines[0]
    if not int8_weights and backend == "openvino":
        assert "8-bit weights would saturate" in lines[0]


def test_quantize_and_dequantize_model_takes_its_ranges_from_the_graph(tmp_path, rng) -> None:
    w = rng.uniform(-1, 1, (16, 8)).astype(np.float32)

    def fn(x):
        x = tf.quantization.quantize_and_dequantize_v2(x, -2.0, 2.0, range_given=True)
        y = tf.matmul(x, tf.constant(w))
        y = tf.quantization.quantize_and_dequantize_v2(y, -8.0, 8.0, range_given=True)
        return tf.nn.relu(y) + 1.0

    path = export_module(str(tmp_path / "qdq"), fn, [tf.TensorSpec([None, 16], tf.float32)])
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="INT8",
                                   use_calibration=False, backend="openvino")
    got_fn = conv.convert()
    x = rng.uniform(-2, 2, (4, 16)).astype(np.float32)
    got = next(iter(got_fn(x).values())).numpy()
    assert np.abs(got - fn(tf.constant(x)).numpy()).max() <= 8.0 / 127 * 1.001
    (op,) = conv.engines.values()
    assert op.calibration == {"source": "graph"}


def test_int8_weight_limit_follows_the_cpu() -> None:
    assert precision.int8_weight_limit("tensorrt") == 127
    expected = 127 if precision.cpu_has_vnni() else 63
    assert precision.int8_weight_limit("openvino") == expected


# -- bad input: clear errors, nothing written -----------------------------------------------

def _assert_unconverted(conv, tmp_path) -> None:
    """convert() failed: the converter holds no conversion and save() writes nothing."""
    out = tmp_path / "out"
    with pytest.raises(trt.ConversionStateError):
        conv.save(str(out))
    assert not out.exists() and not any(p.name.startswith(".tftrt") for p in tmp_path.iterdir())


def test_int8_calibration_without_data_is_refused(digits, tmp_path) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=digits[0], precision_mode="INT8")
    with pytest.raises(CalibrationError, match="needs calibration_input_fn"):
        conv.convert()
    _assert_unconverted(conv, tmp_path)


def test_calibration_data_of_varying_shapes_is_refused(digits, tmp_path) -> None:
    path, x_train, _, _ = digits
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="INT8")
    with pytest.raises(CalibrationError, match="single shape.*item 1 has"):
        conv.convert(calibration_input_fn=lambda: [[x_train[:8]], [x_train[:4]]])
    _assert_unconverted(conv, tmp_path)


def test_failing_calibration_input_fn_is_reported(digits, tmp_path) -> None:
    path, x_train, _, _ = digits

    def broken():
        yield [x_train[:8]]
        raise OSError("disk went away")

    conv = trt.TrtGraphConverterV2(input_saved_model_dir=path, precision_mode="INT8")
    with pytest.raises(CalibrationError, match="calibration_input_fn raised OSError: disk "
                                                "went away"):
        conv.convert(calibration_input_fn=broken)
    _assert_unconverted(conv, tmp_path)


def test_calibration_input_fn_yielding_nothing_is_refused(digits, tmp_path) -> None:
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=digits[0], precision_mode="INT8")
    with pytest.raises(CalibrationError, match="yielded no inputs"):
        conv.convert(calibration_input_fn=lambda: iter(()))
    _assert_unconverted(conv, tmp_path)


def test_calibration_method_is_checked_and_read_from_env(monkeypatch) -> None:
    with pytest.raises(ValueError, match="not one of"):
        calibration.calibration_method("kl")
    monkeypatch.setenv(calibration.ENV_METHOD, "MinMax")
    assert calibration.calibration_method(None) == "minmax"
    assert calibration.calibration_method("percentile") == "percentile"
    assert os.environ[calibration.ENV_METHOD] == "MinMax"


def test_weights_on_an_int8_grid_are_found_exactly(rng) -> None:
    levels = rng.integers(-127, 128, (8, 4, 3, 3)).astype(np.float32)
    per_channel = rng.uniform(0.01, 0.1, 8).astype(np.float32)
    w = levels * per_channel[:, None, None, None]
    w[:, 0, 0, 0] = 127 * per_channel  # each channel reaches its top level
    scale = precision.grid_scale(w, 0)
    np.testing.assert_allclose(scale, per_channel, rtol=1e-6)
    per_tensor = (levels * np.float32(0.02)).astype(np.float32)
    per_tensor.flat[0] = -128 * np.float32(0.02)
    assert np.allclose(precision.grid_scale(per_tensor, 0), 0.02)
    assert precision.grid_scale(rng.standard_normal((8, 4)).astype(np.float32), 0) is None
