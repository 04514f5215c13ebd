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


def test_cli_convert_int8_with_calibration_data(keras_mlp_dir: str, tmp_path, capsys) -> None:
    import numpy as np

    data = tmp_path / "calib.npy"
    np.save(data, np.random.default_rng(0).random((20, 8, 8), dtype=np.float32))
    out = tmp_path / "int8"
    assert main(["convert", keras_mlp_dir, str(out), "--backend", "onnxruntime",
                 "--precision", "INT8", "--calibration-data", str(data),
                 "--calibration-batch", "8", "--calibration-method", "minmax"]) == 0
    assert "INT8 scales: minmax calibration on 2 batches of shapes [[8, 8, 8]]" in \
        capsys.readouterr().out
    (meta,) = tftrt.load(str(out)).manifest["engines"].values()
    assert meta["calibration"]["batches"] == 2
