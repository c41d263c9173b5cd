"""Public architectures for the benchmarks, randomly initialised (no weights are downloaded).

Hugging Face ``transformers`` model classes built from their default configs (the published
sizes), plus the bundled toy models. Each entry returns ``(module, example_inputs)``.
"""
from __future__ import annotations

from typing import Callable

import torch

from layoutopt.zoo import MODELS as ZOO
from layoutopt.zoo import build as build_zoo


class FirstOutput(torch.nn.Module):
    """Wraps a transformers model so that export sees one tensor out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, return_dict=False)[0]


def _hf(config_name: str, model_name: str, shape: tuple, **config) -> Callable:
    def make():
        import transformers

        cfg = getattr(transformers, config_name)(**config)
        model = getattr(transformers, model_name)(cfg)
        return FirstOutput(model).eval(), (torch.randn(*shape),)

    return make


HF: dict[str, Callable] = {
    "hf_resnet50": _hf("ResNetConfig", "ResNetModel", (1, 3, 224, 224)),
    "hf_mobilenet_v2": _hf("MobileNetV2Config", "MobileNetV2Model", (1, 3, 224, 224)),
    "hf_convnext_tiny": _hf("ConvNextConfig", "ConvNextModel", (1, 3, 224, 224)),
    "hf_mobilevit_small": _hf("MobileViTConfig", "MobileViTModel", (1, 3, 256, 256)),
    "hf_segformer_b0": _hf("SegformerConfig", "SegformerModel", (1, 3, 224, 224)),
    "hf_swin_tiny": _hf("SwinConfig", "SwinModel", (1, 3, 224, 224)),
    "hf_wav2vec2_base_2l": _hf("Wav2Vec2Config", "Wav2Vec2Model", (1, 16000), num_hidden_layers=2),
}

# Small configs of the same classes, for the tests.
HF_SMALL: dict[str, Callable] = {
    "hf_resnet_small": _hf("ResNetConfig", "ResNetModel", (1, 3, 64, 64), embedding_size=16,
                           hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"),
    "hf_convnext_small": _hf("ConvNextConfig", "ConvNextModel", (1, 3, 64, 64), hidden_sizes=[16, 32],
                             depths=[1, 1], num_stages=2),
    "hf_mobilevit_small": _hf("MobileViTConfig", "MobileViTModel", (1, 3, 64, 64), hidden_sizes=[32, 40, 48],
                              neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], num_attention_heads=2),
    "hf_segformer_small": _hf("SegformerConfig", "SegformerModel", (1, 3, 64, 64), hidden_sizes=[8, 16, 24, 32],
                              num_attention_heads=[1, 1, 2, 2], depths=[1, 1, 1, 1]),
    "hf_swin_small": _hf("SwinConfig", "SwinModel", (1, 3, 64, 64), embed_dim=16, depths=[1, 1],
                         num_heads=[1, 2], window_size=4),
    "hf_vit_small": _hf("ViTConfig", "ViTModel", (1, 3, 64, 64), hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128, image_size=64, patch_size=16),
    "hf_regnet_small": _hf("RegNetConfig", "RegNetModel", (1, 3, 64, 64), hidden_sizes=[16, 32, 48, 64],
                           depths=[1, 1, 1, 1], embedding_size=16, groups_width=8),
    "hf_levit_small": _hf("LevitConfig", "LevitModel", (1, 3, 64, 64), image_size=64, hidden_sizes=[32, 48, 64],
                          num_attention_heads=[1, 2, 2], depths=[1, 1, 1], key_dim=[8, 8, 8]),
    "hf_data2vec_audio_small": _hf("Data2VecAudioConfig", "Data2VecAudioModel", (1, 4000), hidden_size=32,
                                   num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                   conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3),
                                   num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                                   num_feat_extract_layers=2),
    "hf_wav2vec2_small": _hf("Wav2Vec2Config", "Wav2Vec2Model", (1, 4000), hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
                             conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16,
                             num_conv_pos_embedding_groups=4),
}


def ds_cnn() -> tuple:
    """MLPerf Tiny's keyword-spotting DS-CNN (ExecuTorch's example model), on a 49x10 MFCC map."""
    from executorch.examples.models.mlperf_tiny.ds_cnn import DSCNNKWS

    return DSCNNKWS().eval(), (torch.rand(1, 1, 49, 10) * 2 - 1,)


# The ExecuTorch bench's set: small enough that lowering every model twice for each of four
# flows fits a 2-core machine; the input sizes are below the published ones where noted.
EXECUTORCH: dict[str, Callable] = {
    "shufflenet_nano": lambda: build_zoo("shufflenet_nano"),  # ShuffleNetV2 units, 64 px
    "mobilenet_v2_nano": lambda: build_zoo("mobilenet_v2_nano"),  # 64 px
    "ds_cnn_kws": ds_cnn,
    "wav2letter_nano": lambda: build_zoo("wav2letter_nano"),
    "hf_mobilenet_v2_96": _hf("MobileNetV2Config", "MobileNetV2Model", (1, 3, 96, 96), image_size=96),
    "hf_convnext_small": HF_SMALL["hf_convnext_small"],  # 2 stages, 64 px
    "hf_vit_small": HF_SMALL["hf_vit_small"],  # 2 layers, 64 px
    "hf_mobilevit_small": HF_SMALL["hf_mobilevit_small"],  # 64 px
    "hf_wav2vec2_small": HF_SMALL["hf_wav2vec2_small"],  # conv1d feature encoder + 1 layer, 0.25 s
}


def zoo_entry(name: str) -> Callable:
    return lambda: build_zoo(name)


ALL: dict[str, Callable] = {**{k: zoo_entry(k) for k in ZOO}, **HF}
