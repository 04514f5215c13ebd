"""A converted model behind the real Triton Inference Server, on 127.0.0.1: results over
HTTP and gRPC equal TensorFlow's, and the server keeps answering through bad requests,
disconnecting clients and a killed model process, every request accounted for.

Needs the ``serving`` extra and ``tftrt install-triton`` (CI installs both); elsewhere
these tests skip, and under CI a missing server fails them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.client import HTTPException

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import max_rel_err
from tftrt.serving import ServingOptions, TritonServer, export_triton, find_triton
from tftrt.serving.triton import ServingError

try:
    import tritonclient.grpc as grpc
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("the serving extra (tritonclient) is not installed", allow_module_level=True)


def _install():
    try:
        return find_triton()
    except ServingError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def _convert(src: str, out: str, batches: list[tuple[int, ...]]) -> str:
    from tftrt import trt_convert as trt

    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, backend="openvino",
                                   maximum_cached_engines=len(batches))
    conv.convert()
    rng = np.random.default_rng(0)
    conv.build(input_fn=lambda: ([rng.random(s, dtype=np.float32)] for s in batches))
    conv.save(out)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """name -> (native SavedModel, converted model): the quickstart model and MobileNetV2."""
    import keras

    root = tmp_path_factory.mktemp("serving")
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)  # docs/quickstart.md's model, trained as there
    quick = keras.Sequential([keras.Input((8, 8), name="images"), keras.layers.Flatten(),
                              keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dropout(0.2), keras.layers.Dense(10)])
    quick.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    digits = load_digits()
    quick.fit((digits.images[:1500] / 16.0).astype(np.float32), digits.target[:1500],
              epochs=5, verbose=0)
    quick.export(str(root / "quickstart"), verbose=False)
    mobile = keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None,
                                            classifier_activation=None)
    mobile.export(str(root / "mobilenet_v2"), verbose=False)
    return {
        "quickstart": (str(root / "quickstart"), _convert(
            str(root / "quickstart"), str(root / "quickstart_trt"), [(1, 8, 8), (8, 8, 8)])),
        "mobilenet_v2": (str(root / "mobilenet_v2"), _convert(
            str(root / "mobilenet_v2"), str(root / "mobilenet_v2_trt"),
            [(1, 96, 96, 3), (4, 96, 96, 3)])),
    }


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    install = _install()
    repo = str(tmp_path_factory.mktemp("repo"))
    for name, (_, converted) in models.items():
        export_triton(converted, repo, name, ServingOptions(max_queue_delay_us=1000))
    with TritonServer(repo, install=install) as srv:
        yield srv
    assert not srv.alive()


_NATIVE: dict[str, object] = {}  # SavedModel dir -> loaded (its signature reads it)


def _native(models, name: str, x: np.ndarray) -> np.ndarray:
    """TensorFlow's own result: the native SavedModel's serving signature."""
    src = models[name][0]
    if src not in _NATIVE:
        _NATIVE[src] = tf.saved_model.load(src)
    fn = _NATIVE[src].signatures["serving_default"]
    (key,) = fn.structured_input_signature[1]
    return next(iter(fn(**{key: tf.constant(x)}).values())).numpy()


def _infer(module, url: str, model: str, name: str, x: np.ndarray, **kw) -> np.ndarray:
    client = module.InferenceServerClient(url, **kw)
    try:
        inp = module.InferInput(name, list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        return client.infer(model, [inp]).as_numpy("output_0")
    finally:  # an open connection would hold up the server's shutdown
        client.close()


def _input(models, model: str) -> tuple[str, tuple[int, ...]]:
    from tftrt.manifest import read_manifest

    (spec,) = read_manifest(models[model][1])["inputs"]
    return spec["name"], tuple(spec["shape"][1:])


def test_served_results_equal_tensorflows(server, models) -> None:
    rng = np.random.default_rng(1)
    for model in models:
        name, shape = _input(models, model)
        for rows in (1, 3):  # 3: no engine built for it; runs within a built engine's range
            x = rng.random((rows, *shape), dtype=np.float32)
            want = _native(models, model, x)
            for module, url in ((http, server.http_url), (grpc, server.grpc_url)):
                got = _infer(module, url, model, name, x)
                assert max_rel_err(got, want) < 1e-4, (model, rows, module.__name__)


def test_config_comes_from_the_built_engines(server) -> None:
    cfg = server.model_config("quickstart")
    assert cfg["max_batch_size"] == 8
    assert cfg["dynamic_batching"]["preferred_batch_size"] == [1, 8]
    assert cfg["input"][0]["name"] == "images"
    assert [int(d) for d in cfg["input"][0]["dims"]] == [8, 8]
    assert server.model_config("mobilenet_v2")["max_batch_size"] == 4


def _error(fn) -> str:
    with pytest.raises(InferenceServerException) as info:
        fn()
    return str(info.value)


def test_wrong_shape_dtype_and_model_are_clear_errors(server, models) -> None:
    client = http.InferenceServerClient(server.http_url)
    bad_shape = http.InferInput("images", [1, 8, 7], "FP32")
    bad_shape.set_data_from_numpy(np.zeros((1, 8, 7), np.float32))
    assert "images" in _error(lambda: client.infer("quickstart", [bad_shape]))
    bad_dtype = http.InferInput("images", [1, 8, 8], "INT32")
    bad_dtype.set_data_from_numpy(np.zeros((1, 8, 8), np.int32))
    message = _error(lambda: client.infer("quickstart", [bad_dtype]))
    assert "images" in message and "INT32" in message
    ok = http.InferInput("images", [1, 8, 8], "FP32")
    ok.set_data_from_numpy(np.zeros((1, 8, 8), np.float32))
    message = _error(lambda: client.infer("resnet", [ok]))
    assert "unknown model" in message and "resnet" in message
    gclient = grpc.InferenceServerClient(server.grpc_url)
    assert "resnet" in _error(lambda: gclient.infer("resnet", [
        _grpc_input("images", np.zeros((1, 8, 8), np.float32))]))
    client.close()
    gclient.close()
    x = np.random.default_rng(2).random((2, 8, 8), dtype=np.float32)
    assert max_rel_err(_infer(http, server.http_url, "quickstart", "images", x),
                       _native(models, "quickstart", x)) < 1e-4


def _grpc_input(name: str, x: np.ndarray):
    inp = grpc.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp


def test_clients_that_disconnect_mid_request(server, models) -> None:
    name, _ = _input(models, "mobilenet_v2")
    body = json.dumps({"inputs": [{"name": name, "shape": [4, 96, 96, 3],
                                   "datatype": "FP32", "data": [0.5] * (4 * 96 * 96 * 3)}]})
    head = (f"POST /v2/models/mobilenet_v2/infer HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    host, port = server.http_url.split(":")
    for cut in (len(body) // 2, len(body)):  # mid-upload, and after the whole request
        with socket.create_connection((host, int(port))) as s:
            s.sendall(head.encode() + body[:cut].encode())
        # closed without reading the response
    client = grpc.InferenceServerClient(server.grpc_url)
    x = np.random.default_rng(3).random((4, 96, 96, 3), dtype=np.float32)
    call = client.async_infer("mobilenet_v2", [_grpc_input(name, x)], callback=lambda *_: None)
    call.cancel()  # a gRPC client that gives up on its call
    client.close()
    x1 = x[:1]
    assert max_rel_err(_infer(grpc, server.grpc_url, "mobilenet_v2", name, x1),
                       _native(models, "mobilenet_v2", x1)) < 1e-4


def test_killed_model_process_fails_in_flight_requests_then_serves_again(server, models
                                                                          ) -> None:
    x = np.random.default_rng(4).random((1, 8, 8), dtype=np.float32)
    want = _native(models, "quickstart", x)
    outcomes: list[tuple[str, float]] = []
    sent = [0]
    finished: list[bool] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop() -> None:
        client = http.InferenceServerClient(server.http_url, network_timeout=60.0)
        inp = http.InferInput("images", [1, 8, 8], "FP32")
        inp.set_data_from_numpy(x)
        for _ in range(3000):  # bounded; ends when the test says so
            if stop.is_set():
                break
            with lock:
                sent[0] += 1
            t0 = time.monotonic()
            try:
                got = client.infer("quickstart", [inp]).as_numpy("output_0")
                kind = "ok" if max_rel_err(got, want) < 1e-4 else "wrong"
            except InferenceServerException as exc:  # an error response, or a timeout
                kind = "hung" if "timed out" in str(exc).lower() else "error"
            except (OSError, HTTPException):  # refused, or closed by the restarting server
                kind = "dropped"
            with lock:
                outcomes.append((kind, time.monotonic() - t0))
            time.sleep(0.005 if kind == "ok" else 0.05)
        client.close()
        with lock:
            finished.append(True)

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    (stub,) = server.model_processes("quickstart")
    restarts = server.restarts
    os.kill(stub, signal.SIGKILL)  # the model's process, under load
    deadline = time.monotonic() + 180
    while not (server.restarts > restarts and server.ready()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert len(finished) == len(threads), "a client died"
    kinds = [k for k, _ in outcomes]
    counts = {k: kinds.count(k) for k in set(kinds)}
    # every request sent: answered right, answered with an error, or its connection
    # refused or closed while the server restarted; none wrong, none past its timeout
    assert len(kinds) == sent[0]
    print(f"requests sent {sent[0]}: {counts}")
    assert set(counts) <= {"ok", "error", "dropped"}, counts
    assert counts.get("error", 0) + counts.get("dropped", 0) >= 1 and counts["ok"] >= 1
    assert max(dt for _, dt in outcomes) < 60
    assert server.restarts == restarts + 1 and server.failed is None
    assert stub not in server.model_processes("quickstart")
    assert max_rel_err(_infer(grpc, server.grpc_url, "quickstart", "images", x), want) < 1e-4
    assert max_rel_err(_infer(http, server.http_url, "quickstart", "images", x), want) < 1e-4


@pytest.mark.slow  # a second server start (a model load imports TensorFlow: ~20 s here)
def test_serve_command_runs_in_the_foreground_and_stops_on_ctrl_c(models) -> None:
    _install()
    proc = subprocess.Popen([sys.executable, "-m", "tftrt", "serve", models["quickstart"][1],
                             "--http-port", "0", "--grpc-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Serving"):
                break
        url = lines[-1].split("http://")[1].split()[0]
        x = np.ones((2, 8, 8), np.float32)
        assert max_rel_err(_infer(http, url, "quickstart_trt", "images", x),
                           _native(models, "quickstart", x)) < 1e-4
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Stopped (Triton exit code 0)" in out
    assert "Traceback" not in err
    log = out.rsplit("server log: ", 1)[1].strip()
    assert os.path.isfile(log)
    os.remove(log)


@pytest.mark.slow  # its own server start
def test_deployment_doc_example_serves(models, tmp_path) -> None:
    import pathlib
    import re

    _install()
    doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "deployment.md"
    (block,) = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    ns = {"CONVERTED_DIR": models["quickstart"][1], "REPO": str(tmp_path / "repo")}
    exec(compile(block, str(doc), "exec"), ns)  # noqa: S102 - our own docs
    want = _native(models, "quickstart", np.zeros((3, 8, 8), np.float32))
    assert max_rel_err(ns["logits"], want) < 1e-4
    assert not ns["server"].alive()
