"""Bad input gets a clear error naming the problem, and nothing is written."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tftrt import trt_convert as trt
from tftrt.errors import ConversionStateError, InputSpecError, SavedModelError, SaveError


def _convert(path: str, **kw) -> trt.TrtGraphConverterV2:
    return trt.TrtGraphConverterV2(input_saved_model_dir=path, **kw)


def test_missing_saved_model_dir(tmp_path) -> None:
    with pytest.raises(SavedModelError, match="does not exist"):
        _convert(str(tmp_path / "nope")).convert()


def test_dir_without_saved_model(tmp_path) -> None:
    with pytest.raises(SavedModelError, match="no saved_model.pb"):
        _convert(str(tmp_path)).convert()


def test_malformed_saved_model(tmp_path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"\x08\x96\x01 this is not a proto")
    with pytest.raises(SavedModelError, match="malformed"):
        _convert(str(tmp_path)).convert()


def test_unknown_signature_key(keras_mlp_dir: str) -> None:
    with pytest.raises(SavedModelError, match="no signature 'nope'.*serving_default"):
        _convert(keras_mlp_dir, input_saved_model_signature_key="nope").convert()


def test_unknown_tag(keras_mlp_dir: str) -> None:
    with pytest.raises(SavedModelError, match=r"no MetaGraph with tags \['gpu'\]"):
        _convert(keras_mlp_dir, input_saved_model_tags=["gpu"]).convert()


def test_unknown_precision_mode(keras_mlp_dir: str) -> None:
    with pytest.raises(ValueError, match="precision_mode 'FP64'"):
        _convert(keras_mlp_dir, precision_mode="FP64")


def test_unknown_backend(keras_mlp_dir: str) -> None:
    with pytest.raises(ValueError, match="unknown engine backend 'cuda-magic'"):
        _convert(keras_mlp_dir, backend="cuda-magic")


def test_bad_minimum_segment_size(keras_mlp_dir: str) -> None:
    with pytest.raises(ValueError, match="minimum_segment_size"):
        _convert(keras_mlp_dir, minimum_segment_size=0)


def test_bad_profile_strategy(keras_mlp_dir: str) -> None:
    with pytest.raises(ValueError, match="Invalid profile strategy"):
        _convert(keras_mlp_dir, use_dynamic_shape=True, dynamic_shape_profile_strategy="Best")


def test_build_and_save_before_convert(keras_mlp_dir: str, tmp_path) -> None:
    conv = _convert(keras_mlp_dir)
    with pytest.raises(ConversionStateError, match="build.*convert"):
        conv.build(lambda: iter([np.zeros((1, 8, 8), np.float32)]))
    with pytest.raises(ConversionStateError, match="convert"):
        conv.save(str(tmp_path / "out"))
    with pytest.raises(RuntimeError, match="convert"):
        conv.summary()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bad, match", [
    (np.zeros((1, 8, 8), np.float64), "dtype float32, got float64"),
    (np.zeros((1, 64), np.float32), "rank 3"),
    (np.zeros((1, 8, 9), np.float32), r"shape \[None, 8, 8\]"),
])
def test_input_fn_with_wrong_dtype_or_rank(keras_mlp_dir: str, tmp_path, bad, match) -> None:
    conv = _convert(keras_mlp_dir)
    fn = conv.convert()
    with pytest.raises(InputSpecError, match=match):
        conv.build(lambda: iter([[bad]]))
    with pytest.raises(InputSpecError, match=match):
        fn(bad)
    assert not (tmp_path / "out").exists()


def test_save_refuses_non_empty_dir_and_keeps_it(keras_mlp_dir: str, tmp_path) -> None:
    conv = _convert(keras_mlp_dir)
    conv.convert()
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(SaveError, match="not empty"):
        conv.save(str(out))
    assert os.listdir(out) == ["precious.txt"]
    conv.save(str(out), overwrite=True)
    assert (out / "saved_model.pb").exists() and not (out / "precious.txt").exists()


def test_failed_save_leaves_nothing(keras_mlp_dir: str, tmp_path, monkeypatch) -> None:
    from tftrt.compiler import saving

    conv = _convert(keras_mlp_dir)
    conv.convert()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(saving, "_write_assets", boom)
    with pytest.raises(SaveError, match="disk full"):
        conv.save(str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []


def test_load_rejects_plain_saved_model_and_corruption(keras_mlp_dir: str, tmp_path) -> None:
    import tftrt

    with pytest.raises(SavedModelError, match="not a tftrt converted model"):
        tftrt.load(keras_mlp_dir)
    conv = _convert(keras_mlp_dir)
    conv.convert()
    conv.build(lambda: iter([np.zeros((2, 8, 8), np.float32)]))
    out = tmp_path / "out"
    conv.save(str(out))
    graph = out / "assets" / "tftrt" / "converted_graph.pb"
    graph.write_bytes(graph.read_bytes()[:-10])
    with pytest.raises(SavedModelError, match="corrupted"):
        tftrt.load(str(out))
