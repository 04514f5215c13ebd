"""keras_hub backbones of the zoo, with small random configurations.

Each entry is a function making the backbone; the SavedModel is its ``export``.
Inputs are made from the exported signature (``signature_inputs``).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

VOCAB = 1000
SEQ = 16
IMAGE = 64


def _text(**kw) -> dict:
    return dict(vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=64,
                intermediate_dim=128, **kw)


def _hub():
    import keras_hub  # installed by tests/requirements-nodeps.txt

    return keras_hub.models


def bert():
    return _hub().BertBackbone(**_text(max_sequence_length=64))


def albert():
    return _hub().AlbertBackbone(vocabulary_size=VOCAB, num_layers=2, num_heads=4,
                                 hidden_dim=64, embedding_dim=32, intermediate_dim=128,
                                 num_groups=1, num_inner_repetitions=1,
                                 max_sequence_length=64)


def roberta():
    return _hub().RobertaBackbone(**_text(max_sequence_length=64))


def distil_bert():
    return _hub().DistilBertBackbone(**_text(max_sequence_length=64))


def electra():
    return _hub().ElectraBackbone(vocab_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=64,
                                  embedding_dim=64, intermediate_dim=128,
                                  max_sequence_length=64)


def deberta_v3():
    return _hub().DebertaV3Backbone(**_text(max_sequence_length=64, bucket_size=8))


def fnet():
    return _hub().FNetBackbone(vocabulary_size=VOCAB, num_layers=2, hidden_dim=64,
                               intermediate_dim=128, max_sequence_length=64)


def gpt2():
    return _hub().GPT2Backbone(**_text(max_sequence_length=64))


def opt():
    return _hub().OPTBackbone(**_text(max_sequence_length=64))


def llama():
    return _hub().LlamaBackbone(vocabulary_size=VOCAB, num_layers=2, num_query_heads=4,
                                hidden_dim=64, intermediate_dim=128, num_key_value_heads=2)


def mistral():
    return _hub().MistralBackbone(vocabulary_size=VOCAB, num_layers=2, num_query_heads=4,
                                  hidden_dim=64, intermediate_dim=128, num_key_value_heads=2,
                                  sliding_window=8)


def gemma():
    return _hub().GemmaBackbone(vocabulary_size=VOCAB, num_layers=2, num_query_heads=4,
                                num_key_value_heads=1, hidden_dim=64, intermediate_dim=128,
                                head_dim=16)


def gpt_neox():
    return _hub().GPTNeoXBackbone(**_text(max_sequence_length=64))


def t5():
    return _hub().T5Backbone(vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=64,
                             intermediate_dim=128)


def bart():
    return _hub().BartBackbone(**_text(max_sequence_length=64))


def vit():
    return _hub().ViTBackbone(image_shape=(IMAGE, IMAGE, 3), patch_size=16, num_layers=2,
                              num_heads=4, hidden_dim=64, mlp_dim=128)


def clip():
    from keras_hub.src.models.clip.clip_text_encoder import CLIPTextEncoder
    from keras_hub.src.models.clip.clip_vision_encoder import CLIPVisionEncoder

    vision = CLIPVisionEncoder(patch_size=16, hidden_dim=64, num_layers=2, num_heads=4,
                               intermediate_dim=128, image_shape=(IMAGE, IMAGE, 3))
    text = CLIPTextEncoder(vocabulary_size=VOCAB, embedding_dim=64, hidden_dim=64, num_layers=2,
                           num_heads=4, intermediate_dim=128, max_sequence_length=SEQ)
    return _hub().CLIPBackbone(vision, text, projection_dim=32)


def whisper():
    return _hub().WhisperBackbone(vocabulary_size=VOCAB, num_layers=2, num_heads=4,
                                  hidden_dim=64, intermediate_dim=128, num_mels=16,
                                  max_encoder_sequence_length=64,
                                  max_decoder_sequence_length=SEQ)


BACKBONES: dict[str, Callable[[], keras.Model]] = {
    "BertBackbone": bert, "AlbertBackbone": albert, "RobertaBackbone": roberta,
    "DistilBertBackbone": distil_bert, "ElectraBackbone": electra,
    "DebertaV3Backbone": deberta_v3, "FNetBackbone": fnet, "GPT2Backbone": gpt2,
    "OPTBackbone": opt, "LlamaBackbone": llama, "MistralBackbone": mistral,
    "GemmaBackbone": gemma, "GPTNeoXBackbone": gpt_neox, "T5Backbone": t5,
    "BartBackbone": bart, "ViTBackbone": vit, "CLIPBackbone": clip,
    "WhisperBackbone": whisper,
}


def builder(name: str) -> Callable[[str], None]:
    def build(path: str) -> None:
        keras.utils.set_random_seed(0)
        BACKBONES[name]().export(path, verbose=False)

    return build


def signature_inputs(serve, rng: np.random.Generator, batch: int,
                     seq: int = SEQ) -> dict[str, np.ndarray]:
    """Random inputs for a backbone's serving signature: ids below VOCAB, masks with padding."""
    out = {}
    for name, spec in serve.structured_input_signature[1].items():
        shape = [batch] + [seq if d is None else d for d in spec.shape.as_list()[1:]]
        dtype = spec.dtype.as_numpy_dtype
        if "mask" in name:
            mask = np.ones(shape, dtype)
            if batch > 1 and len(shape) == 2:
                mask[-1, shape[1] // 2:] = 0
            out[name] = mask
        elif "segment" in name:
            out[name] = rng.integers(0, 2, shape).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            out[name] = rng.integers(0, VOCAB, shape).astype(dtype)
        elif np.issubdtype(dtype, np.bool_):
            out[name] = np.ones(shape, bool)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out
