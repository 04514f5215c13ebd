"""tftrt on an NVIDIA GPU (ONNX Runtime's CUDA provider, TensorFlow-free runtime) against
PyTorch eager and torch.compile on the same architectures, side by side in one run.

    python benchmarks/bench_gpu.py MODELS_DIR --out OUT_DIR [--models ...] [--calls 50]
        [--torch eager compile] [--batches 1 32] [--modes FP32 FP16]

MODELS_DIR is what benchmarks/gpu_prepare.py made (on a machine with TensorFlow):
per model and precision, the manifest and ONNX that ``tftrt.runtime.load`` reads,
TensorFlow's outputs on the benchmark's inputs, and their checksums. Needs no
TensorFlow; needs onnxruntime-gpu, torch, torchvision and transformers.

For each model, precision and batch: tftrt's outputs are checked against the CPU
engine (ONNX Runtime's CPU provider on the same ONNX) and against TensorFlow's;
then every variant is timed in interleaved rounds (one call of each per round,
each call synchronized), and the median latency and throughput are reported.
Variants: tftrt with host arrays in and out (CUDA graph), the same without a
CUDA graph, tftrt with device tensors in and out (DLPack, IO binding), the
same with other CUDA provider options (``--cuda-variants``), PyTorch eager,
torch.compile (default mode) and torch.compile mode="reduce-overhead" (CUDA
graphs). Rows go to OUT_DIR/gpu_results.jsonl as they are measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gpu_prepare import checksum, coarsen, inputs_for  # noqa: E402

import tftrt.runtime  # noqa: E402
from tftrt.engines import ort_providers as prov  # noqa: E402


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def interleaved_ms(fns: dict, calls: int, sync) -> dict[str, float]:
    """Median ms of each function, timed one call of each per round (each synchronized)."""
    for fn in fns.values():
        for _ in range(5):
            fn()
    sync()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(calls):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def torch_model(name: str, mode: str):
    import torch

    if name == "bert_base":
        from transformers import BertConfig, BertModel

        cfg = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                         num_attention_heads=12, intermediate_size=3072,
                         max_position_embeddings=512)
        model = BertModel(cfg, add_pooling_layer=True)
    else:
        import torchvision

        model = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():
        for p in model.parameters():  # the same weight grid as the converted models
            p.copy_(torch.from_numpy(coarsen(p.detach().cpu().numpy())))
    model = model.eval().cuda()
    return model.half() if mode == "FP16" else model


def torch_inputs(name: str, feed: dict, mode: str):
    import torch

    if name == "bert_base":
        return {"input_ids": torch.from_numpy(feed["token_ids"]).long().cuda(),
                "token_type_ids": torch.from_numpy(feed["segment_ids"]).long().cuda(),
                "attention_mask": torch.from_numpy(feed["padding_mask"]).long().cuda()}
    x = torch.from_numpy(feed["input"]).permute(0, 3, 1, 2).contiguous().cuda()
    return {"x": x.half() if mode == "FP16" else x}


def measure(name: str, mode: str, batch: int, models: dict, base, refs, args,
            prepared: dict) -> dict:
    """Check and time one model, precision and batch; returns the result row."""
    import torch

    gpu, plain, cpu = models["gpu"], models["plain"], models["cpu"]
    raw = inputs_for(name, batch)
    info = prepared["inputs"][str(batch)]
    if checksum(raw) != info["sha256"]:
        raise RuntimeError(f"{name} batch {batch}: inputs differ from the prepared ones "
                           "(another NumPy random stream?)")
    feed = raw if name == "bert_base" else {info["names"][0]: raw["input"]}
    os.environ.pop(prov.CUDA_GRAPH_ENV, None)  # engines are built at their first call
    t0 = time.perf_counter()
    got = gpu(**feed)
    build_s = time.perf_counter() - t0
    os.environ[prov.CUDA_GRAPH_ENV] = "0"
    plain(**feed)
    os.environ.pop(prov.CUDA_GRAPH_ENV)
    want = cpu(**feed)
    dev_feed = {k: torch.from_numpy(v).cuda() for k, v in feed.items()}
    dev = gpu.run_on_device(**dev_feed)
    row = {"model": name, "precision": mode, "batch": batch, "engine": gpu.describe(),
           "no_graph_engine": plain.describe(), "build_s": round(build_s, 1),
           "err_vs_cpu_engine": {k: rel_err(got[k], want[k]) for k in want},
           "err_vs_tf": {k: rel_err(got[k][:4], refs[f"b{batch}/{k}"]) for k in want},
           "device_err_vs_cpu_engine": {k: rel_err(torch.from_dlpack(v).cpu().numpy(),
                                                   want[k]) for k, v in dev.items()}}
    fns = {"tftrt host (CUDA graph)": lambda: gpu(**feed),
           "tftrt host (no graph)": lambda: plain(**feed),
           "tftrt device (DLPack)": lambda: gpu.run_on_device(**dev_feed)}
    for options, variant in models["variants"].items():  # other CUDA provider options
        os.environ[prov.CUDA_OPTIONS_ENV] = options
        outs = variant.run_on_device(**dev_feed)  # built now, with these options
        os.environ.pop(prov.CUDA_OPTIONS_ENV)
        row.setdefault("variant_err_vs_cpu_engine", {})[options] = {
            k: rel_err(torch.from_dlpack(v).cpu().numpy(), want[k]) for k, v in outs.items()}
        fns[f"tftrt device ({options})"] = lambda v=variant: v.run_on_device(**dev_feed)
    tin = torch_inputs(name, raw, mode)
    warmup = {}
    for variant in args.torch:
        net = base if variant == "eager" else torch.compile(
            base, mode=None if variant == "compile" else variant, dynamic=False)

        def call(net=net):
            with torch.inference_mode():
                return net(**tin)

        t1 = time.perf_counter()
        call()
        call()
        torch.cuda.synchronize()
        warmup[variant] = round(time.perf_counter() - t1, 1)
        fns[f"torch {variant}"] = call
    ms = interleaved_ms(fns, args.calls, torch.cuda.synchronize)
    row.update(torch_warmup_s=warmup, median_ms={k: round(v, 3) for k, v in ms.items()},
               per_s={k: round(batch * 1e3 / v, 1) for k, v in ms.items()}, calls=args.calls)
    return row


def run_model(name: str, args, prepared: dict) -> None:
    import torch

    refs = np.load(os.path.join(args.models_dir, f"{name}_ref.npz"))
    for mode in args.modes:
        path = os.path.join(args.models_dir, f"{name}_{mode.lower()}")
        models = {"gpu": tftrt.runtime.load(path, providers="cuda,cpu"),
                  "plain": tftrt.runtime.load(path, providers="cuda,cpu"),  # no CUDA graph
                  "cpu": tftrt.runtime.load(os.path.join(args.models_dir, f"{name}_fp32"),
                                            providers="cpu"),
                  "variants": {o: tftrt.runtime.load(path, providers="cuda,cpu")
                               for o in args.cuda_variants}}
        base = torch_model(name, mode) if args.torch else None
        for batch in args.batches:
            row = measure(name, mode, batch, models, base, refs, args, prepared)
            with open(os.path.join(args.out, "gpu_results.jsonl"), "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name} {mode} b{batch}: err vs CPU engine "
                  f"{max(row['err_vs_cpu_engine'].values()):.1e}, vs TF "
                  f"{max(row['err_vs_tf'].values()):.1e}; "
                  + ", ".join(f"{k} {v:.2f}" for k, v in row["median_ms"].items()) + " ms",
                  flush=True)
        del models, base
        torch.cuda.empty_cache()


def environment() -> dict:
    import onnxruntime as ort
    import torch

    env = {"python": platform.python_version(), "onnxruntime": ort.__version__,
           "torch": torch.__version__, "numpy": np.__version__,
           "gpu": torch.cuda.get_device_name(0), "cuda_runtime": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version(), "providers": ort.get_available_providers()}
    try:
        import subprocess

        env["driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
             "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models_dir")
    p.add_argument("--out", required=True)
    p.add_argument("--models", nargs="+", default=["mobilenet_v2", "resnet50", "bert_base"])
    p.add_argument("--modes", nargs="+", default=["FP32", "FP16"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    p.add_argument("--torch", nargs="*", default=["eager", "compile"],
                   help="PyTorch variants: eager, compile, reduce-overhead")
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--cuda-variants", nargs="*", default=[],
                   help="more tftrt variants, each with these CUDA provider options "
                        "(TFTRT_ONNXRUNTIME_CUDA_OPTIONS), e.g. prefer_nhwc=1")
    args = p.parse_args()
    import torch

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.models_dir, "prepared.json")) as f:
        prepared = {m["model"]: m for m in json.load(f)["models"]}
    env = environment()
    # ONNX Runtime's CUDA provider computes FP32 products in TF32 where use_tf32 is on
    # (its default); PyTorch is set to the same, for the same arithmetic.
    probe = tftrt.runtime.load(os.path.join(args.models_dir, f"{args.models[0]}_fp32"),
                               providers="cuda,cpu")
    engine = probe.engine.engine_for(tuple(tuple(1 if d is None else d for d in s.shape)
                                           for s in probe.engine.inputs))
    env["ort_cuda_options"] = engine.provider_options
    tf32 = engine.provider_options.get("use_tf32", "1") == "1"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    del probe, engine
    print(json.dumps(env), flush=True)
    with open(os.path.join(args.out, "gpu_env.json"), "w") as f:
        json.dump({**env, "argv": sys.argv}, f, indent=1)
    for name in args.models:
        run_model(name, args, prepared[name])


if __name__ == "__main__":
    main()
