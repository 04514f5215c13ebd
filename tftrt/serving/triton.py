"""Where Triton Inference Server lives on this machine, and putting it there.

The server binary and its Python backend ship inside the ``nvidia-pytriton`` wheel.
That wheel's own Python package pins ``numpy<2`` while tftrt runs on NumPy 2, and only
the binary is needed: ``install_triton`` unpacks the wheel with ``pip --no-deps
--target`` into a directory of its own, outside any environment, so no resolver ever
sees the pin. The server then runs models on this interpreter (``triton_model.py``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass

from tftrt.env import get as env_value
from tftrt.errors import TftrtError

PYTRITON = "nvidia-pytriton==0.7.0"
HOME_ENV = "TFTRT_TRITON_HOME"


class ServingError(TftrtError, RuntimeError):
    """The server could not be installed, started, or kept serving."""


def default_home() -> str:
    """``$TFTRT_TRITON_HOME``, else a directory under the user's cache."""
    home = env_value(HOME_ENV)
    if home:
        return home
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "tftrt", "triton-" + PYTRITON.split("==")[1])


@dataclass(frozen=True)
class TritonInstall:
    """A Triton server tree: ``bin/tritonserver``, ``backends/python``, and a Python
    backend stub for this interpreter's version."""

    root: str

    @property
    def binary(self) -> str:
        return os.path.join(self.root, "bin", "tritonserver")

    @property
    def python_backend(self) -> str:
        return os.path.join(self.root, "backends", "python")

    def stub(self) -> str:
        """The Python backend stub built for this interpreter's Python version."""
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        for path in (os.path.join(self.root, "python_backend_stubs", version,
                                  "triton_python_backend_stub"),
                     os.path.join(self.python_backend, "triton_python_backend_stub")):
            if os.path.isfile(path):
                return path
        raise ServingError(f"the Triton install at {self.root!r} has no Python backend "
                           f"stub for Python {version}")


def find_triton(home: str | None = None) -> TritonInstall:
    """The Triton install under ``home`` (the wheel's layout or a plain server tree)."""
    home = home or default_home()
    for root in (os.path.join(home, "pytriton", "tritonserver"), home):
        install = TritonInstall(os.path.abspath(root))
        if os.access(install.binary, os.X_OK) and os.path.isdir(install.python_backend):
            return install
    raise ServingError(f"no Triton Inference Server under {home!r}: run `tftrt "
                       f"install-triton` (or set {HOME_ENV} to a Triton server directory)")


def install_triton(home: str | None = None, quiet: bool = True) -> TritonInstall:
    """Unpack the ``nvidia-pytriton`` wheel's server into ``home`` (no-op if it is there)."""
    home = os.path.abspath(home or default_home())
    try:
        return find_triton(home)
    except ServingError:
        pass
    parent = os.path.dirname(home)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".triton-", dir=parent)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile",
           "--disable-pip-version-check", "--target", tmp, PYTRITON] + (["-q"] if quiet else [])
    try:
        done = subprocess.run(cmd, capture_output=quiet, text=True)
        if done.returncode != 0:
            tail = (done.stderr or "").strip().splitlines()[-1:] if quiet else []
            raise ServingError(f"installing {PYTRITON} failed: " + (tail[0] if tail else
                               f"pip exited with {done.returncode}"))
        if os.path.exists(home):
            shutil.rmtree(home)
        os.rename(tmp, home)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return find_triton(home)


def libpython_dir() -> str:
    """The directory of this interpreter's shared libpython, which the stub embeds."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise ServingError("this Python was built without a shared libpython, which Triton's "
                           "Python backend needs (use a Python built with --enable-shared)")
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    if not os.path.exists(os.path.join(libdir, name or "")):
        raise ServingError(f"this Python's shared library {name!r} is not in {libdir!r}")
    return libdir
