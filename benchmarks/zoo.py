"""The models benchmarked, made here with random weights (nothing is downloaded).

Each exports a SavedModel and makes inputs of a given batch, keyed by the
serving signature's input names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Model:
    name: str
    export: Callable[[str], None]
    inputs: Callable[[int], dict[str, np.ndarray]]
    note: str = ""


def _image_inputs(size: int) -> Callable[[int], dict[str, np.ndarray]]:
    def make(batch: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(batch)
        return {"_": rng.random((batch, size, size, 3), dtype=np.float32)}
    return make


def _keras_app(factory: str) -> Callable[[str], None]:
    def export(path: str) -> None:
        import keras

        keras.utils.set_random_seed(0)
        model = getattr(keras.applications, factory)(weights=None, classifier_activation=None)
        model.export(path, verbose=False)
    return export


BERT_VOCAB = 30522


def _bert_export(layers: int) -> Callable[[str], None]:
    def export(path: str) -> None:
        import keras
        import keras_hub

        keras.utils.set_random_seed(0)
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=BERT_VOCAB, num_layers=layers, num_heads=12, hidden_dim=768,
            intermediate_dim=3072, max_sequence_length=512)
        backbone.export(path, verbose=False)
    return export


def _bert_inputs(seq: int) -> Callable[[int], dict[str, np.ndarray]]:
    def make(batch: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(batch)
        return {"token_ids": rng.integers(0, BERT_VOCAB, (batch, seq)).astype(np.int32),
                "segment_ids": np.zeros((batch, seq), np.int32),
                "padding_mask": np.ones((batch, seq), np.int32)}
    return make


def ssd_detector(size: int = 192, classes: int = 8, anchors: int = 3):
    """An SSD-style detector as a tf.function: a small convolutional backbone, box and
    class heads at two scales, box decoding, then TF's combined NMS."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    def conv(cin: int, cout: int, k: int = 3) -> np.ndarray:
        return (rng.standard_normal((k, k, cin, cout)) * np.sqrt(2.0 / (k * k * cin))
                ).astype(np.float32)

    widths = [3, 16, 32, 64, 96, 128]
    backbone = [conv(a, b) for a, b in zip(widths, widths[1:], strict=False)]
    heads = {s: (conv(c, anchors * 4, 1), conv(c, anchors * classes, 1))
             for s, c in (("s16", 96), ("s32", 128))}

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def detect(images):
        h, feats = images, {}
        for k, w in enumerate(backbone):
            h = tf.nn.relu6(tf.nn.conv2d(h, w, 2 if k < 5 else 1, "SAME"))
            if k == 3:
                feats["s16"] = h
        feats["s32"] = h
        boxes, scores = [], []
        batch = tf.shape(images)[0]
        for key, (wb, wc) in heads.items():
            f = feats[key]
            n = f.shape[1] * f.shape[2] * anchors
            d = tf.reshape(tf.nn.conv2d(f, wb, 1, "SAME"), [batch, n, 4])
            centers = tf.reshape(tf.sigmoid(d[..., :2]), [batch, n, 2])
            sizes = tf.exp(tf.clip_by_value(d[..., 2:], -4.0, 1.0)) * 0.1
            boxes.append(tf.concat([centers - sizes, centers + sizes], -1))
            scores.append(tf.sigmoid(tf.reshape(tf.nn.conv2d(f, wc, 1, "SAME"),
                                                [batch, n, classes])))
        boxes = tf.expand_dims(tf.concat(boxes, 1), 2)
        nms = tf.image.combined_non_max_suppression(
            boxes, tf.concat(scores, 1), max_output_size_per_class=20, max_total_size=50,
            iou_threshold=0.5, score_threshold=0.3)
        return {"boxes": nms.nmsed_boxes, "scores": nms.nmsed_scores,
                "classes": nms.nmsed_classes, "detections": nms.valid_detections}

    return detect


def _tf_module_export(make: Callable[[], object]) -> Callable[[str], None]:
    def export(path: str) -> None:
        import tensorflow as tf

        module = tf.Module()
        module.f = make()
        tf.saved_model.save(module, path, signatures={"serving_default": module.f})
    return export


def _partial_export(path: str) -> None:
    from tftrt.research.models import cut_chain

    _tf_module_export(lambda: cut_chain(blocks=4, batch=None))(path)


def _partial_inputs(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(batch)
    return {"_": rng.random((batch, 28, 28, 64), dtype=np.float32)}


MODELS = {m.name: m for m in [
    Model("mobilenet_v2", _keras_app("MobileNetV2"), _image_inputs(224)),
    Model("resnet50", _keras_app("ResNet50"), _image_inputs(224)),
    Model("efficientnet_b0", _keras_app("EfficientNetB0"), _image_inputs(224)),
    Model("inception_v3", _keras_app("InceptionV3"), _image_inputs(299)),
    Model("bert_base", _bert_export(12), _bert_inputs(128), "keras_hub BertBackbone, seq 128"),
    Model("ssd_detector", _tf_module_export(ssd_detector), _image_inputs(192),
          "conv backbone + 2-scale heads + combined NMS"),
    Model("partial_cut_chain", _partial_export, _partial_inputs,
          "convolutions cut by ops without converters (BesselI0e)"),
]}
QUICK = ("mobilenet_v2", "ssd_detector", "partial_cut_chain")


def export(model: Model, workdir: str) -> str:
    """The model's SavedModel directory under ``workdir`` (exported once)."""
    path = os.path.join(workdir, model.name)
    if not os.path.isdir(path):
        model.export(path)
    return path


def named_inputs(model: Model, batch: int, serve) -> dict[str, np.ndarray]:
    """The model's inputs at ``batch``, keyed by the signature's input names."""
    made = model.inputs(batch)
    names = sorted(serve.structured_input_signature[1])
    if list(made) == ["_"]:
        (name,) = names
        return {name: made["_"]}
    return made
