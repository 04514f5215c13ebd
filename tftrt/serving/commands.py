"""The serving subcommands of ``tftrt``: ``export-triton``, ``serve``, ``install-triton``.

Bad input (not a converted model, a port in use, no server installed) is one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading

from tftrt.errors import TftrtError

EXIT_BAD_INPUT = 2


def _options(args: argparse.Namespace):
    from tftrt.serving.config import ServingOptions

    return ServingOptions(instances=args.instances, dynamic_batching=not args.no_dynamic_batching,
                          max_queue_delay_us=args.max_queue_delay_us,
                          max_batch_size=args.max_batch_size, loader=args.loader)


def _describe(config) -> str:
    batch = (f"max_batch_size {config.max_batch_size}, preferred batch sizes "
             f"{list(config.preferred_batch_sizes)}, dynamic batching "
             f"{'on' if config.options.dynamic_batching else 'off'}"
             if config.max_batch_size else "no batching")
    return f"model {config.name!r}: {batch}, {config.options.instances} instance(s)"


def _fail(message: str) -> int:
    print(f"tftrt: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _export(args: argparse.Namespace) -> int:
    from tftrt.serving.repository import export_triton

    try:
        config = export_triton(args.converted_dir, args.repo, args.name, _options(args),
                               portable=args.portable)
    except (TftrtError, ValueError, OSError) as exc:
        return _fail(str(exc))
    where = os.path.join(os.path.abspath(args.repo), config.name)
    print(f"Exported {_describe(config)} to {where}")
    return 0


def _install(args: argparse.Namespace) -> int:
    from tftrt.serving.triton import install_triton

    try:
        install = install_triton(args.target, quiet=not args.verbose)
    except (TftrtError, OSError) as exc:
        return _fail(str(exc))
    print(f"Triton Inference Server: {install.binary}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from tftrt.manifest import read_manifest
    from tftrt.serving.repository import export_triton
    from tftrt.serving.server import TritonServer, check_port
    from tftrt.serving.triton import find_triton

    try:
        read_manifest(args.converted_dir)
        for port in (args.http_port, args.grpc_port):
            if port:
                check_port(args.host, port)
        install = find_triton(args.triton_home)
    except TftrtError as exc:
        return _fail(str(exc))
    with tempfile.TemporaryDirectory(prefix="tftrt-repo-") as repo:
        try:
            config = export_triton(args.converted_dir, repo, args.name, _options(args))
        except (TftrtError, ValueError, OSError) as exc:
            return _fail(str(exc))
        server = TritonServer(repo, http_port=args.http_port, grpc_port=args.grpc_port,
                              host=args.host, install=install, keep_log=True)
        stop = threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set())
                    for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            print(f"Starting Triton for {_describe(config)} ...", flush=True)
            try:
                server.start()
            except TftrtError as exc:
                return _fail(str(exc))
            print(f"Serving {config.name!r}: HTTP http://{server.http_url}  gRPC "
                  f"{server.grpc_url}  (Ctrl-C stops)", flush=True)
            while not stop.wait(0.5):
                if server.failed:  # the supervisor could not bring it back
                    print(f"tftrt: {server.failed}", file=sys.stderr)
                    return 1
        finally:
            code = server.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
        print(f"Stopped (Triton exit code {code}); server log: {server.log_path}")
        return 0


def _serving_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("converted_dir", help="a model saved by tftrt (converter.save)")
    p.add_argument("--name", default=None, help="model name (default: the directory's name)")
    p.add_argument("--instances", type=int, default=1, help="model instances (processes)")
    p.add_argument("--no-dynamic-batching", action="store_true")
    p.add_argument("--max-queue-delay-us", type=int, default=2000,
                   help="how long the dynamic batcher waits to fill a batch")
    p.add_argument("--max-batch-size", type=int, default=None,
                   help="override the batch limit read from the built engines")
    p.add_argument("--loader", default="auto", choices=("auto", "tftrt", "runtime"),
                   help="runtime: TensorFlow-free (one-engine models); auto picks it where "
                        "it applies")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the serving subcommands to the ``tftrt`` parser's subparsers."""
    exp = sub.add_parser("export-triton", help="write a Triton model repository for a "
                                               "converted model")
    _serving_flags(exp)
    exp.add_argument("repo", help="the model repository directory (created if missing)")
    exp.add_argument("--portable", action="store_true",
                     help="do not record this machine's Python path (the server's Python "
                          "has tftrt installed)")
    exp.set_defaults(func=_export)
    srv = sub.add_parser("serve", help="serve a converted model with Triton in the foreground")
    _serving_flags(srv)
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--http-port", type=int, default=8000, help="0: a free port")
    srv.add_argument("--grpc-port", type=int, default=8001, help="0: a free port")
    srv.add_argument("--triton-home", default=None,
                     help="the Triton install (default: $TFTRT_TRITON_HOME or the cache)")
    srv.set_defaults(func=_serve)
    ins = sub.add_parser("install-triton", help="install Triton's server binary (from the "
                                                "nvidia-pytriton wheel) apart from Python")
    ins.add_argument("--target", default=None,
                     help="directory (default: $TFTRT_TRITON_HOME or ~/.cache/tftrt)")
    ins.add_argument("--verbose", action="store_true")
    ins.set_defaults(func=_install)
