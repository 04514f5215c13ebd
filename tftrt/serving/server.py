"""Running Triton Inference Server on a model repository: start, wait until ready, keep
each model's process alive, stop.

Triton's Python backend runs each model instance in a stub process. When that process
dies, Triton answers every request for the model with an error but never restarts it
(and still reports the model ready); the supervisor here watches the stubs and reloads
a model whose stub is gone, so the server serves again without a restart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from tftrt.serving.triton import ServingError, TritonInstall, find_triton, libpython_dir

_ERROR_LINE = re.compile(r"^E\d{4} |error:", re.IGNORECASE)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port(host: str, port: int) -> None:
    """A ``ServingError`` if ``port`` on ``host`` cannot be bound (in use, or not allowed)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            what = "is in use" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
            raise ServingError(f"port {port} on {host} {what}") from None


def _children(pid: int) -> list[int]:
    """Child process ids of ``pid`` (each thread's children: Triton forks from many)."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _instances(config_path: str) -> int:
    try:
        with open(config_path) as f:
            counts = re.findall(r"count:\s*(\d+)", f.read())
    except OSError:
        return 1
    return sum(int(c) for c in counts) or 1


class TritonServer:
    """Triton serving the Python-backend models of ``repo`` on ``host``.

    Ports 0 mean free ports, chosen at start. Use as a context manager, or call
    ``start()`` and ``stop()``. With ``supervise``, a model process that dies (or the
    server itself) makes the server restart on the same ports.
    """

    def __init__(self, repo: str, http_port: int = 0, grpc_port: int = 0,
                 host: str = "127.0.0.1", install: TritonInstall | None = None,
                 supervise: bool = True, exit_timeout_s: int = 30,
                 extra_args: Sequence[str] = (), keep_log: bool = False) -> None:
        self.repo = os.path.abspath(repo)
        self.host, self.http_port, self.grpc_port = host, http_port, grpc_port
        self.install = install
        self.supervise = supervise
        self.exit_timeout_s = exit_timeout_s
        self.extra_args = list(extra_args)
        self.keep_log = keep_log  # copy the server log to a temporary file when stopped
        if not os.path.isdir(self.repo):
            raise ServingError(f"model repository {self.repo!r} does not exist")
        self.models = sorted(d for d in os.listdir(self.repo) if not d.startswith(".")
                             and os.path.isfile(os.path.join(self.repo, d, "config.pbtxt")))
        self.restarts = 0
        self.failed: str | None = None  # why supervision gave up, if it did
        self.process: subprocess.Popen | None = None
        self.log_path = ""
        self._cmd: list[str] = []
        self._env: dict[str, str] = {}
        self._workdir = ""
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._stubs: set[int] = set()

    # -- addresses --------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    # -- lifecycle ----------------------------------------------------------------
    def start(self, timeout_s: float = 180.0) -> TritonServer:
        if not self.models:
            raise ServingError(f"{self.repo!r} holds no model (no NAME/config.pbtxt)")
        install = self.install or find_triton()
        libdir = libpython_dir()
        for attr in ("http_port", "grpc_port"):
            port = getattr(self, attr)
            if port:
                check_port(self.host, port)
            else:
                setattr(self, attr, free_port(self.host))
        self._workdir = tempfile.mkdtemp(prefix="tftrt-triton-")
        backends = os.path.join(self._workdir, "backends")
        self._python_backend(install, os.path.join(backends, "python"))
        self.log_path = os.path.join(self._workdir, "server.log")
        self._cmd = [install.binary, f"--model-repository={self.repo}",
                     f"--backend-directory={backends}", "--model-control-mode=explicit",
                     "--load-model=*", f"--http-address={self.host}",
                     f"--http-port={self.http_port}", f"--grpc-address={self.host}",
                     f"--grpc-port={self.grpc_port}", "--allow-metrics=false",
                     f"--exit-timeout-secs={self.exit_timeout_s}", *self.extra_args]
        self._env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(
            p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p))
        try:
            self._launch(timeout_s)
        except BaseException:
            self.stop()
            raise
        if self.supervise:
            self._watcher = threading.Thread(target=self._watch, name="tftrt-triton-watch",
                                             daemon=True)
            self._watcher.start()
        return self

    def _launch(self, timeout_s: float) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self._cmd, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self._env,
                                            start_new_session=True)
        self._wait_ready(timeout_s)
        self._stubs.update(self._stub_pids())

    def _terminate(self, grace_s: float) -> int | None:
        """SIGINT (Triton drains in-flight requests), SIGKILL after ``grace_s``; then the
        model processes it left behind, by the ids seen."""
        if self.process is None:
            return None
        self._stubs.update(self._stub_pids())
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self._stubs:
            if "triton_python_backend_stub" in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)
        self._stubs.clear()
        return self.process.returncode

    def stop(self) -> int | None:
        """Stop the server (SIGINT, then SIGKILL past the exit timeout); its exit code."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=self.exit_timeout_s + 30)
            self._watcher = None
        code = self._terminate(self.exit_timeout_s + 10)
        if self._workdir:
            if self.keep_log and os.path.exists(self.log_path):  # the log outlives the run
                fd, saved = tempfile.mkstemp(prefix="tftrt-triton-", suffix=".log")
                os.close(fd)
                shutil.copyfile(self.log_path, saved)
                self.log_path = saved
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = ""
        return code

    def restart(self, timeout_s: float = 180.0) -> None:
        """Restart the server on the same ports (requests meanwhile are refused)."""
        # A short grace: what made us restart (a dead model process) keeps Triton from
        # finishing a clean shutdown until its exit timeout.
        self._terminate(grace_s=3.0)
        self.restarts += 1
        self._launch(timeout_s)

    def __enter__(self) -> TritonServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- HTTP control -------------------------------------------------------------
    def _request(self, method: str, path: str, timeout: float = 5.0) -> int:
        req = urllib.request.Request(f"http://{self.http_url}{path}", method=method,
                                     data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return 0

    def ready(self) -> bool:
        return self._request("GET", "/v2/health/ready", timeout=1.0) == 200

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._stop.is_set() and self._watcher is not None:
                raise ServingError("stopped while starting")
            if self.process.poll() is not None:
                raise ServingError(f"Triton exited with code {self.process.returncode}: "
                                   f"{self.log_errors()}")
            if self.ready():
                return
            time.sleep(0.2)
        raise ServingError(f"Triton was not ready after {timeout_s:.0f} s: {self.log_errors()}")

    def log_errors(self, last: int = 3) -> str:
        """The server log's last error lines, one string (for error messages)."""
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [ln.strip() for ln in f if _ERROR_LINE.search(ln.strip())]
        except OSError:
            return "no log"
        return " | ".join(lines[-last:]) or f"see {self.log_path}"

    # -- supervision ----------------------------------------------------------------
    def _python_backend(self, install: TritonInstall, target: str) -> None:
        """The server's Python backend directory: the install's, with this Python's stub."""
        os.makedirs(target)
        for entry in os.listdir(install.python_backend):
            if entry != "triton_python_backend_stub":
                os.symlink(os.path.join(install.python_backend, entry),
                           os.path.join(target, entry))
        os.symlink(install.stub(), os.path.join(target, "triton_python_backend_stub"))

    def _stub_pids(self, model: str | None = None) -> list[int]:
        if self.process is None:
            return []
        marks = [os.path.join(self.repo, m, "") for m in ([model] if model else self.models)]
        return [p for p in _children(self.process.pid)
                if "triton_python_backend_stub" in (c := _cmdline(p))
                and any(m in c for m in marks)]

    def model_processes(self, model: str) -> list[int]:
        """The ids of the processes running ``model``'s instances."""
        return self._stub_pids(model)

    def _watch(self) -> None:
        """Restart the server when a model process or the server itself is gone.

        Not a reload of the one model: after a model process died under load, Triton
        (2.51) kept the model unloading for minutes, and then waited out its exit timeout
        when stopped; a new server process serves again within a model load.
        """
        expected = {m: _instances(os.path.join(self.repo, m, "config.pbtxt"))
                    for m in self.models}
        while not self._stop.wait(0.2):
            gone = not self.alive() or any(len(self._stub_pids(m)) < n
                                           for m, n in expected.items())
            if gone and not self._stop.is_set():
                try:
                    self.restart()
                except ServingError as exc:
                    if not self._stop.is_set():
                        self.failed = f"restarting Triton failed: {exc}"
                    return

    def model_config(self, model: str) -> dict:
        """The configuration Triton loaded for ``model`` (its JSON form)."""
        with urllib.request.urlopen(f"http://{self.http_url}/v2/models/{model}/config",
                                    timeout=5) as r:
            return json.loads(r.read())
