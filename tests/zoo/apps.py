"""keras.applications models of the zoo: one per family, random weights, exported."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

# family (keras.applications module) -> the model representing it
FAMILIES = {
    "convnext": "ConvNeXtSmall",
    "densenet": "DenseNet121",
    "efficientnet": "EfficientNetB0",
    "efficientnet_v2": "EfficientNetV2B0",
    "inception_resnet_v2": "InceptionResNetV2",
    "inception_v3": "InceptionV3",
    "mobilenet": "MobileNet",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3": "MobileNetV3Small",
    "nasnet": "NASNetMobile",
    "resnet": "ResNet50",
    "resnet_v2": "ResNet50V2",
    "vgg16": "VGG16",
    "vgg19": "VGG19",
    "xception": "Xception",
}


def builder(family: str) -> Callable[[str], None]:
    def build(path: str) -> None:
        keras.utils.set_random_seed(0)
        cls = getattr(keras.applications, FAMILIES[family])
        cls(weights=None, classifier_activation=None).export(path, verbose=False)

    return build


def image_inputs(serve, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    ((name, spec),) = serve.structured_input_signature[1].items()
    shape = [batch, *(224 if d is None else d for d in spec.shape.as_list()[1:])]
    return {name: rng.random(shape, dtype=np.float32)}
