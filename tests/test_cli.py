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


# -- convert: every parameter, data files, errors ---------------------------------------

def _input_name(saved_model_dir: str) -> str:
    """The signature's one input (Keras names it after a global counter)."""
    import tensorflow as tf

    sig = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    (name,) = sig.structured_input_signature[1]
    return name


def test_cli_convert_fp16_saves_and_runs(keras_mlp_dir: str, tmp_path, capsys) -> None:
    import numpy as np

    x = np.random.default_rng(1).random((4, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "fp16"
    assert main(["convert", keras_mlp_dir, str(out), "--precision", "FP16", "--build-data",
                 str(tmp_path / "x.npy"), "--maximum-cached-engines", "2",
                 "--max-workspace-size", "1048576"]) == 0
    assert f"Saved to {out}" in capsys.readouterr().out
    loaded = tftrt.load(str(out))
    opts = loaded.manifest["options"]
    assert opts["precision_mode"] == "FP16" and opts["maximum_cached_engines"] == 2
    assert opts["max_workspace_size_bytes"] == 1048576
    (meta,) = loaded.manifest["engines"].values()
    assert [i["shapes"] for i in meta["instances"]] == [[[4, 8, 8]]]  # built from the file
    import tensorflow as tf

    want = next(iter(tf.saved_model.load(keras_mlp_dir).signatures["serving_default"](
        tf.constant(x)).values())).numpy()
    got = next(iter(loaded.signatures["serving_default"](x).values())).numpy()
    assert np.abs(got - want).max() <= 2e-2 * np.abs(want).max()
    assert all(op.stats.builds == 0 for op in loaded.engines.values())


def test_cli_convert_dynamic_shape_npz_and_flags(keras_mlp_dir: str, tmp_path, capsys) -> None:
    import numpy as np

    rng = np.random.default_rng(2)
    name = _input_name(keras_mlp_dir)
    np.savez(tmp_path / "b.npz", **{f"{name}:0": rng.random((2, 8, 8), dtype=np.float32),
                                    f"{name}:1": rng.random((6, 8, 8), dtype=np.float32)})
    out = tmp_path / "dyn"
    assert main(["convert", keras_mlp_dir, str(out), "--backend", "onnxruntime",
                 "--dynamic-shape", "--profile-strategy", "optimal", "--build-data",
                 str(tmp_path / "b.npz"), "--no-build-at-runtime", "--no-save-engines",
                 "--minimum-segment-size", "2", "--signature", "serving_default",
                 "--tags", "serve", "--quiet"]) == 0
    assert "TRTEngineOP Name" not in capsys.readouterr().out  # --quiet
    manifest = tftrt.load(str(out)).manifest
    assert manifest["options"]["use_dynamic_shape"] is True
    assert manifest["options"]["profile_strategy"] == "Optimal"
    assert manifest["options"]["allow_build_at_runtime"] is False
    (meta,) = manifest["engines"].values()
    assert meta["instances"] == [] and len(meta["profiles"]) == 2  # one per build shape


def test_cli_data_files(tmp_path) -> None:
    import numpy as np
    import pytest

    from tftrt.commands import data
    from tftrt.errors import InputSpecError

    np.save(tmp_path / "a.npy", np.arange(10, dtype=np.float32).reshape(5, 2))
    (call,) = data.load_calls(str(tmp_path / "a.npy"))
    assert call.shape == (5, 2)
    assert [c.shape for c in data.load_calls(str(tmp_path / "a.npy"), batch=2)] == [(2, 2)] * 2
    np.savez(tmp_path / "b.npz", **{"x:1": np.zeros((3, 2)), "x:0": np.ones((4, 2)),
                                    "y:0": np.ones((4,))})
    calls = data.load_calls(str(tmp_path / "b.npz"))
    assert [sorted(c) for c in calls] == [["x", "y"], ["x"]] and calls[0]["x"].shape == (4, 2)
    with pytest.raises(InputSpecError, match="does not exist"):
        data.load_calls(str(tmp_path / "missing.npy"))
    with pytest.raises(InputSpecError, match="must be a .npy or .npz"):
        data.load_calls(str(tmp_path / "b.txt"))
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(InputSpecError, match="cannot read"):
        data.load_calls(str(tmp_path / "bad.npy"))
    with pytest.raises(InputSpecError, match="fewer than one batch of 8"):
        data.load_calls(str(tmp_path / "a.npy"), batch=8)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputSpecError, match="cannot read"):  # never unpickled
        data.load_calls(str(tmp_path / "obj.npy"))


def _run_cli(*args: str, env: dict | None = None):
    import os
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    full = {**os.environ, "PYTHONPATH": str(root), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tftrt", *args], capture_output=True,
                          text=True, env=full, cwd=root, timeout=600)


def test_cli_missing_path_is_one_line_and_a_failure(tmp_path) -> None:
    for argv in (["convert", str(tmp_path / "missing"), str(tmp_path / "out")],
                 ["summary", str(tmp_path / "missing")],
                 ["report", str(tmp_path / "missing")],
                 ["bench", str(tmp_path / "missing")],
                 ["convert", "in", "out", "--precision", "FP64"],
                 ["convert"]):
        done = _run_cli(*argv)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode != 0, argv
        assert len(lines) == 1 and "error:" in lines[0], (argv, done.stderr)
        assert "Traceback" not in done.stderr and not done.stdout, argv
    assert "SavedModel directory" in _run_cli("convert", str(tmp_path / "missing"),
                                              "out").stderr
    assert not (tmp_path / "out").exists()


def test_cli_user_mistakes_in_process(keras_mlp_dir: str, tmp_path, capsys) -> None:
    import numpy as np

    np.save(tmp_path / "wrong.npy", np.zeros((2, 3), np.float32))
    cases = [
        (["summary", keras_mlp_dir], "not one tftrt converted"),
        (["convert", keras_mlp_dir, str(tmp_path / "o"), "--build-data",
          str(tmp_path / "wrong.npy"), "--backend", "onnxruntime"], "must have"),
        (["convert", keras_mlp_dir, str(tmp_path / "o"), "--backend", "nope"], "nope"),
        (["convert", keras_mlp_dir, str(tmp_path / "o"), "--calibration-data",
          str(tmp_path / "wrong.npy")], "for --precision INT8"),
    ]
    for argv, what in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and what in err, (argv, err)
    assert not (tmp_path / "o").exists()  # a failed conversion leaves nothing behind


def test_cli_internal_error_is_one_line_too(monkeypatch, capsys) -> None:
    from tftrt.commands import summary

    def broken(args):
        raise TypeError("a bug")

    monkeypatch.setattr(summary, "run", broken)
    assert main(["summary", "anything"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: TypeError: a bug" in err


def test_cli_bench_and_report(keras_mlp_dir: str, tmp_path, capsys) -> None:
    out = tmp_path / "c"
    assert main(["convert", keras_mlp_dir, str(out), "--backend", "onnxruntime",
                 "--quiet"]) == 0
    capsys.readouterr()
    for argv in (["bench", keras_mlp_dir, str(out)],
                 ["bench", keras_mlp_dir, "--backend", "onnxruntime", "--batch", "4"]):
        assert main([*argv, "--calls", "20", "--warmup", "2"]) == 0
        text = capsys.readouterr().out
        header, native, ours = text.splitlines()[1:4]
        assert header.split() == ["p50", "ms", "p90", "ms", "p99", "ms", "mean", "ms",
                                  "items/s"]
        for row in (native, ours):
            numbers = [float(v) for v in row.split()[-5:]]
            assert all(v > 0 for v in numbers) and numbers[0] <= numbers[1] <= numbers[2]
        assert native.startswith("native TensorFlow")
        assert "Speedup (p50):" in text and "20 timed calls each" in text
    assert f"{_input_name(keras_mlp_dir)} [4, 8, 8] float32" in text


def test_cli_progress_bar_only_on_a_terminal(keras_mlp_dir: str, tmp_path, capsys) -> None:
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8), np.float32))
    argv = ["convert", keras_mlp_dir, str(tmp_path / "o1"), "--backend", "onnxruntime",
            "--build-data", str(tmp_path / "x.npy"), "--quiet"]
    assert main(argv) == 0  # pytest's stderr is no terminal: no bar
    assert "Building engines" not in capsys.readouterr().err
    argv[2] = str(tmp_path / "o2")
    shown = _run_cli(*argv, env={"TFTRT_PROGRESS": "1"})  # as on a terminal
    assert shown.returncode == 0, shown.stderr
    assert "Building engines: 100%" in shown.stderr and "1/1" in shown.stderr
    # a real terminal: docs/guide/resnet50-build.txt (tests/test_guide.py checks it)
