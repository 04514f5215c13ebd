"""The model zoo: models users bring, built here with random weights.

One model of every keras.applications family, keras_hub backbones of every kind that
builds with a small configuration, and hand-built models (inner jit-compiled functions,
loops, conditionals, lookup tables, uint8 detectors, int64 ids). Each entry says how to
build it, how to make its inputs, and what is expected of its conversion: how many
engines, and which op types stay native because no engine can run them.

``tests/test_zoo.py`` converts the zoo (the fast profile a handful of it);
``benchmarks/bench_zoo.py`` measures it and writes ``docs/models.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tests.zoo import apps, hand, hub

Inputs = Callable[[object, np.random.Generator, int], dict[str, np.ndarray]]


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str  # "keras.applications", "keras_hub" or "hand-built"
    kind: str  # what sort of model it is, for the page
    build: Callable[[str], None]  # writes the SavedModel to a directory
    inputs: Inputs  # (serving signature, rng, batch) -> inputs
    engines: int = 1  # engines expected
    backend_engines: Mapping[str, int] = field(default_factory=dict)  # where they differ
    native: frozenset[str] = frozenset()  # op types expected to stay native
    # backend -> op types that also stay native there (what it does not compute exactly)
    backend_native: Mapping[str, frozenset[str]] = field(default_factory=dict)
    why: str = ""  # why it is not one engine, or what stays native
    fast: bool = False  # also in the default (fast) test profile
    rtol: float = 1e-4
    # converted with use_dynamic_shape (sequence models), else in implicit batch mode,
    # TF-TRT's default (image models of one size)
    dynamic: bool = True

    def expected_native(self, backend: str) -> frozenset[str]:
        return self.native | self.backend_native.get(backend, frozenset())

    def expected_engines(self, backend: str) -> int:
        return self.backend_engines.get(backend, self.engines)


def _hand(name: str, kind: str, **kw) -> ZooModel:
    build = getattr(hand, f"build_{name}")
    make = getattr(hand, f"inputs_{name}")
    return ZooModel(name, "hand-built", kind, build, lambda serve, rng, b: make(rng, b), **kw)


def _hub(name: str, kind: str, **kw) -> ZooModel:
    return ZooModel(name, "keras_hub", kind, hub.builder(name),
                    lambda serve, rng, b: hub.signature_inputs(serve, rng, b), **kw)


def _app(family: str, **kw) -> ZooModel:
    return ZooModel(apps.FAMILIES[family], "keras.applications", f"CNN ({family})",
                    apps.builder(family),
                    lambda serve, rng, b: apps.image_inputs(serve, rng, b), dynamic=False,
                    **kw)


HAND = [
    _hand("jit_layer", "Keras model with inner tf.function(jit_compile=True) layers",
          fast=True),
    _hand("while_rnn", "tf.while_loop RNN, 5 steps of tanh(x @ W)", fast=True),
    _hand("while_native_body", "tf.while_loop whose body holds an op no engine runs (Lgamma)",
          engines=3, native=frozenset({"Lgamma", "Enter", "Exit", "Merge", "Switch",
                                       "NextIteration", "LoopCond", "AddV2", "Less"}),
          why="the loop stays native (its body holds Lgamma); the rest of the body "
              "converts in place: 3 engines inside the loop, and the loop counter's "
              "AddV2/Less are too small to be segments", fast=True),
    _hand("cond", "tf.cond between two dense branches", fast=True),
    _hand("no_engine", "nothing converts (Lgamma, Digamma)", engines=0,
          native=frozenset({"Lgamma", "Digamma", "AddV2"}),
          why="no converter for Lgamma or Digamma; the lone AddV2 is too small a segment: "
              "the converted function runs TensorFlow's graph at the original's cost",
          fast=True),
    _hand("lookup", "string input through a StaticHashTable vocabulary",
          native=frozenset({"LookupTableFindV2"}),
          why="the table lookup (strings) stays native", fast=True),
    _hand("ssd", "SSD-style detector: uint8 images, combined_non_max_suppression with "
          "clip_boxes", fast=True),
    _hand("int64_ids", "int64 token ids, positions and a mask from the ids", fast=True,
          backend_native={"openvino": frozenset({"AddV2", "Less", "NotEqual", "SelectV2"})},
          why="OpenVINO computes int64 in 32 bits: the arithmetic on the ids themselves "
              "(whose values the model does not bound) stays native there"),
]

HUB = [
    _hub("BertBackbone", "encoder"),
    _hub("AlbertBackbone", "encoder (shared layers)"),
    _hub("RobertaBackbone", "encoder"),
    _hub("DistilBertBackbone", "encoder"),
    _hub("ElectraBackbone", "encoder"),
    _hub("DebertaV3Backbone", "encoder, relative positions (log buckets)"),
    _hub("FNetBackbone", "encoder, Fourier mixing"),
    _hub("GPT2Backbone", "decoder"),
    _hub("OPTBackbone", "decoder"),
    _hub("GPTNeoXBackbone", "decoder, rotary positions"),
    _hub("LlamaBackbone", "decoder, rotary positions, grouped-query attention"),
    _hub("MistralBackbone", "decoder, rotary positions, sliding window"),
    _hub("GemmaBackbone", "decoder, rotary positions"),
    _hub("T5Backbone", "encoder-decoder, relative positions (buckets)"),
    _hub("BartBackbone", "encoder-decoder"),
    _hub("WhisperBackbone", "audio encoder-decoder"),
    _hub("ViTBackbone", "vision transformer"),
    _hub("CLIPBackbone", "contrastive image-text (vision + text encoders)"),
]

APPS = [_app(family) for family in apps.FAMILIES]

ZOO: dict[str, ZooModel] = {m.name: m for m in HAND + HUB + APPS}
