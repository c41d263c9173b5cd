"""Public architectures from Hugging Face ``transformers``, built from small configs with
random weights (nothing is downloaded): the same model classes people deploy, at a width that
plans in seconds on two cores. Needs ``transformers`` (the ``test`` or ``bench`` extra).
"""
from __future__ import annotations

from typing import Callable

import torch


class FirstOutput(torch.nn.Module):
    """Wraps a transformers model so that export sees one tensor out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, return_dict=False)[0]


def hf(config_name: str, model_name: str, shape: tuple, **config) -> Callable:
    def make():
        import transformers

        torch.manual_seed(0)  # the same weights and inputs on every call (benches compare runs)
        cfg = getattr(transformers, config_name)(**config)
        model = getattr(transformers, model_name)(cfg)
        return FirstOutput(model).eval(), (torch.randn(*shape),)

    return make


HF_SMALL: dict[str, Callable] = {
    "hf_resnet_small": hf("ResNetConfig", "ResNetModel", (1, 3, 64, 64), embedding_size=16,
                           hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"),
    "hf_convnext_small": hf("ConvNextConfig", "ConvNextModel", (1, 3, 64, 64), hidden_sizes=[16, 32],
                             depths=[1, 1], num_stages=2),
    "hf_mobilevit_small": hf("MobileViTConfig", "MobileViTModel", (1, 3, 64, 64), hidden_sizes=[32, 40, 48],
                              neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], num_attention_heads=2),
    "hf_segformer_small": hf("SegformerConfig", "SegformerModel", (1, 3, 64, 64), hidden_sizes=[8, 16, 24, 32],
                              num_attention_heads=[1, 1, 2, 2], depths=[1, 1, 1, 1]),
    "hf_swin_small": hf("SwinConfig", "SwinModel", (1, 3, 64, 64), embed_dim=16, depths=[1, 1],
                         num_heads=[1, 2], window_size=4),
    "hf_vit_small": hf("ViTConfig", "ViTModel", (1, 3, 64, 64), hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128, image_size=64, patch_size=16),
    "hf_regnet_small": hf("RegNetConfig", "RegNetModel", (1, 3, 64, 64), hidden_sizes=[16, 32, 48, 64],
                           depths=[1, 1, 1, 1], embedding_size=16, groups_width=8),
    "hf_levit_small": hf("LevitConfig", "LevitModel", (1, 3, 64, 64), image_size=64, hidden_sizes=[32, 48, 64],
                          num_attention_heads=[1, 2, 2], depths=[1, 1, 1], key_dim=[8, 8, 8]),
    "hf_data2vec_audio_small": hf("Data2VecAudioConfig", "Data2VecAudioModel", (1, 4000), hidden_size=32,
                                   num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                   conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3),
                                   num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                                   num_feat_extract_layers=2),
    "hf_wav2vec2_small": hf("Wav2Vec2Config", "Wav2Vec2Model", (1, 4000), hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
                             conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16,
                             num_conv_pos_embedding_groups=4),
}
