"""Serving converted models behind Triton Inference Server (``docs/deployment.md``).

``export_triton(converted_dir, repo)`` writes a Triton model repository;
``TritonServer(repo)`` runs it (a context manager); ``install_triton()`` puts the server
binary in place. Importing this package imports neither TensorFlow nor a client.
"""

from __future__ import annotations

from tftrt.serving.config import ModelConfig, ServingOptions
from tftrt.serving.repository import export_triton
from tftrt.serving.server import TritonServer
from tftrt.serving.triton import ServingError, find_triton, install_triton

__all__ = ["ModelConfig", "ServingError", "ServingOptions", "TritonServer", "export_triton",
           "find_triton", "install_triton"]
