"""The command line converts a SavedModel and saves it."""

from __future__ import annotations

import tftrt
from tftrt.cli import main


def test_cli_convert(keras_mlp_dir: str, tmp_path, capsys) -> None:
    out = tmp_path / "converted"
    assert main(["convert", keras_mlp_dir, str(out), "--backend", "onnxruntime"]) == 0
    text = capsys.readouterr().out
    assert "[*] Total number of TensorRT engines: 1" in text
    loaded = tftrt.load(str(out))
    assert list(loaded.signatures) == ["serving_default"]
    assert loaded.manifest["backend"] == "onnxruntime"
