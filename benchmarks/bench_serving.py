"""A converted model behind Triton under load: 1, 4 and 16 concurrent clients, each sending
a fixed number of batch-1 requests; p50/p99 latency and throughput, side by side in one run
with the same converted model called in-process (the same number of threads calling it),
dynamic batching on and off.

    python benchmarks/bench_serving.py [--model mobilenet_v2] [--requests 100] [--rounds 3]
                                       [--clients 1 4 16] [--protocol grpc]

Needs the serving extra and ``tftrt install-triton``. The model is keras.applications
with random weights, converted with OpenVINO (in a subprocess), engines built for batch 1,
4, 8 and 16.
Modes run in alternating rounds so machine load hits each alike. Results are printed
and written to benchmarks/results/serving.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tftrt import trt_convert as trt  # noqa: E402
from tftrt.serving import ServingOptions, TritonServer, export_triton  # noqa: E402
from tftrt.serving.served import ServedModel  # noqa: E402

MODELS = {"mobilenet_v2": keras.applications.MobileNetV2,
          "resnet50": keras.applications.ResNet50}
BATCHES = (1, 4, 8, 16)


def cpu_flags() -> list[str]:
    try:
        flags = next(ln for ln in open("/proc/cpuinfo") if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
            if f in flags]


def convert(name: str, workdir: str) -> str:
    keras.utils.set_random_seed(0)
    src, out = os.path.join(workdir, name), os.path.join(workdir, name + "_trt")
    MODELS[name](weights=None, classifier_activation=None).export(src, verbose=False)
    conv = trt.TrtGraphConverterV2(input_saved_model_dir=src, backend="openvino",
                                   maximum_cached_engines=len(BATCHES))
    conv.convert()
    rng = np.random.default_rng(0)
    conv.build(input_fn=lambda: ([rng.random((b, 224, 224, 3), dtype=np.float32)]
                                 for b in BATCHES))
    conv.save(out)
    return out


def run_clients(clients: int, requests: int, call) -> list[float]:
    """Each of ``clients`` threads calls ``call(k)`` ``requests`` times; latencies (ms) and
    the wall time of the whole run (s) as the last element."""
    lat: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def loop(k: int) -> None:
        mine = []
        start.wait()
        try:
            for _ in range(requests):
                t0 = time.perf_counter()
                call(k)
                mine.append((time.perf_counter() - t0) * 1e3)
        except BaseException as exc:  # counted, and the run fails below
            errors.append(exc)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    return lat + [wall]


def triton_caller(module, url: str, model: str, in_name: str, x: np.ndarray, clients: int,
                  opened: list):
    """A call per client: its own connection (closed at the end through ``opened``)."""
    conns = [module.InferenceServerClient(url) for _ in range(clients)]
    opened.extend(conns)
    inputs = []
    for _ in range(clients):
        inp = module.InferInput(in_name, list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        inputs.append(inp)
    return lambda k: conns[k].infer(model, [inputs[k]]).as_numpy("output_0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mobilenet_v2", choices=sorted(MODELS))
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=100, help="per client per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--protocol", default="grpc", choices=("grpc", "http"))
    ap.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" /
                                         "serving.json"))
    ap.add_argument("--convert-to", default=None, help=argparse.SUPPRESS)  # the subprocess
    args = ap.parse_args()
    if args.convert_to:
        print(convert(args.model, args.convert_to))
        return
    if args.protocol == "grpc":
        import tritonclient.grpc as client_module
    else:
        import tritonclient.http as client_module

    with tempfile.TemporaryDirectory(prefix="tftrt-bench-serving-") as workdir:
        # converted in a process of its own, so that the in-process baseline is a process
        # that only loads the converted model, as a user's would be
        converted = subprocess.run([sys.executable, __file__, "--model", args.model,
                                    "--convert-to", workdir], check=True, text=True,
                                   stdout=subprocess.PIPE).stdout.strip().splitlines()[-1]
        repo = os.path.join(workdir, "repo")
        export_triton(converted, repo, "dyn", ServingOptions(max_queue_delay_us=2000))
        export_triton(converted, repo, "nodyn", ServingOptions(dynamic_batching=False))
        local = ServedModel(converted)
        in_name = local.inputs[0].name
        x = np.random.default_rng(1).random((1, 224, 224, 3), dtype=np.float32)
        with TritonServer(repo) as server:
            url = server.grpc_url if args.protocol == "grpc" else server.http_url
            rows = []
            opened: list = []
            for clients in args.clients:
                modes = {
                    "in-process": lambda k: local.run({in_name: x}),
                    "triton, dynamic batching": triton_caller(client_module, url, "dyn",
                                                              in_name, x, clients, opened),
                    "triton, no batching": triton_caller(client_module, url, "nodyn",
                                                         in_name, x, clients, opened),
                }
                for call in modes.values():  # warm up: engines, connections, batcher
                    run_clients(clients, 5, call)
                lat = {m: [] for m in modes}
                wall = dict.fromkeys(modes, 0.0)
                for _ in range(args.rounds):
                    for m, call in modes.items():
                        got = run_clients(clients, args.requests, call)
                        lat[m] += got[:-1]
                        wall[m] += got[-1]
                for m in modes:
                    rows.append({"mode": m, "clients": clients, "requests": len(lat[m]),
                                 "p50_ms": float(np.percentile(lat[m], 50)),
                                 "p99_ms": float(np.percentile(lat[m], 99)),
                                 "throughput_rps": len(lat[m]) / wall[m]})
                    r = rows[-1]
                    print(f"{clients:>3} clients  {m:<26} p50 {r['p50_ms']:7.2f} ms  "
                          f"p99 {r['p99_ms']:7.2f} ms  {r['throughput_rps']:7.1f} req/s",
                          flush=True)
            for conn in opened:  # idle connections would hold up the server's shutdown
                conn.close()
            assert local.builds == 0
    meta = {"model": args.model, "protocol": args.protocol, "batch": 1,
            "engine_batches": list(BATCHES), "requests_per_client_per_round": args.requests,
            "rounds": args.rounds, "loadavg_after": os.getloadavg(), "cpu_flags": cpu_flags(),
            "cpus": os.cpu_count(), "python": platform.python_version()}
    print(f"load average {os.getloadavg()}, CPU flags {cpu_flags()}")
    pathlib.Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
