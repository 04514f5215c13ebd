"""Exporting a converted model for Triton, without a server: batch limits and preferred
sizes from the engines, the configuration written, the served model's padding and its
refusal to build engines, and the commands' answers to bad input."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

from tests.conftest import max_rel_err
from tftrt.cli import main
from tftrt.errors import InputSpecError
from tftrt.serving import ServingOptions, export_triton
from tftrt.serving.batching import batch_plan
from tftrt.serving.config import model_config
from tftrt.serving.served import ServedModel


def _engine(instances, batched=True):
    shape = [None, 4] if batched else [2, 4]
    return {"inputs": [{"ref": "x:0", "dtype": "float32", "shape": shape}],
            "outputs": [{"ref": "y:0", "dtype": "float32", "shape": shape}],
            "instances": instances}


def _manifest(*engines):
    sig = {"name": "x", "ref": "x:0", "dtype": "float32", "shape": [None, 4]}
    return {"inputs": [sig], "outputs": [dict(sig, name="y", ref="y:0")],
            "engines": {f"e{k}": e for k, e in enumerate(engines)}}


def test_static_engines_give_exact_sizes_and_pad_between_them() -> None:
    plan = batch_plan(_manifest(_engine([{"shapes": [[1, 4]]}, {"shapes": [[8, 4]]}])))
    assert plan.ranges == ((1, 1), (8, 8)) and plan.preferred == (1, 8)
    assert plan.chunks(1) == [(1, 1)]
    assert plan.chunks(6) == [(6, 8)]  # padded up to the batch-8 engine: 8 rows computed
    assert plan.chunks(3) == [(1, 1)] * 3  # three batch-1 calls compute fewer rows than 8
    assert plan.chunks(21) == [(8, 8), (8, 8), (5, 8)]
    assert plan.chunks(17) == [(8, 8), (8, 8), (1, 1)]
    four = batch_plan(_manifest(_engine([{"shapes": [[b, 4]]} for b in (1, 4, 8, 16)])))
    assert four.chunks(9) == [(1, 1), (8, 8)] and four.chunks(15) == [(15, 16)]


def test_profiles_give_ranges_and_engines_intersect() -> None:
    prof = {"shapes": [[8, 4]], "profiles": [{"min": [[1, 4]], "opt": [[4, 4]],
                                              "max": [[16, 4]]}]}
    plan = batch_plan(_manifest(_engine([prof]), _engine([{"shapes": [[8, 4]]}]),
                                _engine([{"shapes": [[2, 4]]}], batched=False)))
    assert plan.ranges == ((8, 8),)  # the static engine narrows the profile's 1..16
    assert plan.preferred == (8,)
    alone = batch_plan(_manifest(_engine([prof])))
    assert alone.ranges == ((1, 16),) and alone.preferred == (4,)
    assert alone.chunks(5) == [(5, 5)] and alone.chunks(20) == [(16, 16), (4, 4)]


def test_config_pbtxt_carries_signature_batching_and_instances() -> None:
    man = _manifest(_engine([{"shapes": [[1, 4]]}, {"shapes": [[8, 4]]}]))
    cfg = model_config(man, "m", ServingOptions(instances=2, max_queue_delay_us=500))
    text = cfg.to_pbtxt()
    assert "max_batch_size: 8" in text
    assert '{ name: "x" data_type: TYPE_FP32 dims: [ 4 ] }' in text
    assert "preferred_batch_size: [ 1, 8 ]" in text and "max_queue_delay_microseconds: 500" in text
    assert "count: 2" in text
    off = model_config(man, "m", ServingOptions(dynamic_batching=False)).to_pbtxt()
    assert "dynamic_batching" not in off and "max_batch_size: 8" in off
    unknown = model_config(_manifest(_engine([{"shapes": []}])), "m", ServingOptions())
    assert unknown.max_batch_size == 32 and "no engine states a batch limit" in unknown.note


@pytest.fixture(scope="module")
def converted(keras_mlp_dir, tmp_path_factory) -> str:
    from tftrt import trt_convert as trt

    conv = trt.TrtGraphConverterV2(input_saved_model_dir=keras_mlp_dir, backend="onnxruntime",
                                   maximum_cached_engines=2)
    conv.convert()
    conv.build(input_fn=lambda: iter([[np.zeros((1, 8, 8), np.float32)],
                                      [np.zeros((4, 8, 8), np.float32)]]))
    out = str(tmp_path_factory.mktemp("serving") / "mlp_trt")
    conv.save(out)
    return out


def test_served_copy_never_builds_and_pads_onto_built_engines(converted, keras_mlp_dir,
                                                               tmp_path) -> None:
    import tensorflow as tf

    cfg = export_triton(converted, str(tmp_path / "repo"), "mlp")
    assert (cfg.max_batch_size, cfg.preferred_batch_sizes) == (4, (1, 4))
    served = ServedModel(str(tmp_path / "repo" / "mlp" / "1" / "model"))
    assert served.manifest["options"]["allow_build_at_runtime"] is False
    native = tf.saved_model.load(keras_mlp_dir).signatures["serving_default"]
    (key,) = native.structured_input_signature[1]
    x = np.random.default_rng(0).random((7, 8, 8), dtype=np.float32)  # split: 4 + 3
    got = served.run({served.inputs[0].name: x})["output_0"]
    want = next(iter(native(**{key: tf.constant(x)}).values())).numpy()
    assert max_rel_err(got, want) < 1e-4
    assert served.builds == 0 and served.native_calls == 0
    with pytest.raises(InputSpecError, match=served.inputs[0].name):
        served.run({served.inputs[0].name: x[:, :, :4]})
    with pytest.raises(InputSpecError, match="dtype int32"):
        served.run({served.inputs[0].name: x.astype(np.int32)})


def test_export_refuses_a_directory_that_is_not_a_converted_model(keras_mlp_dir, tmp_path,
                                                                  capsys) -> None:
    assert main(["export-triton", keras_mlp_dir, str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a tftrt converted model" in err[0]
    assert not (tmp_path / "repo").exists() or not os.listdir(tmp_path / "repo")
    assert main(["serve", str(tmp_path / "missing"), "--http-port", "0",
                 "--grpc-port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_serve_refuses_an_occupied_port(converted, capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", converted, "--http-port", str(port), "--grpc-port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tftrt: port {port} on 127.0.0.1 is in use"]
