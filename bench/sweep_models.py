"""The sweep's models: every public vision and audio architecture this machine can build.

torchvision and timm do not import here (torchvision 0.28 is a CUDA build beside the CPU torch,
and timm imports torchvision), so the sweep takes the Hugging Face ``transformers`` classes
with a vision or audio config, built from small configs with random weights (nothing is
downloaded), the bundled zoo models, and the full-size ShuffleNetV2 x1.0 and MobileNetV3-Small
of ``full_size.py``. Each entry is ``(kind, builder)``; ``kind`` is ``cnn`` for models made of
convolutions, pooling, normalisation and elementwise ops only (the ones that must plan to one
transpose with NCHW I/O), else ``hybrid``, ``transformer``, ``audio``, ``segmentation``,
``detection`` or ``depth``.
"""
from __future__ import annotations

from typing import Callable

from layoutopt.zoo import build as build_zoo
from layoutopt.zoo.public import hf

from full_size import FULL

IMG = (1, 3, 64, 64)
WAVE = (1, 4000)  # 0.25 s at 16 kHz
LABELS = {"num_labels": 10}
VIT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=64,
           patch_size=16, **LABELS)
STAGES4 = dict(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1])
SWIN = dict(embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4, image_size=64, **LABELS)
WAV2VEC = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
               conv_dim=(16, 16, 16), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16,
               num_conv_pos_embedding_groups=4, classifier_proj_size=16, **LABELS)


def image(config: str, model: str, shape: tuple = IMG, **kw) -> Callable:
    return hf(config, model, shape, **kw)


def zoo(name: str) -> Callable:
    return lambda: build_zoo(name)


SWEEP: dict[str, tuple[str, Callable]] = {
    # bundled and full-size models written in this project
    "mobilenet_v2_nano": ("cnn", zoo("mobilenet_v2_nano")),
    "shufflenet_nano": ("cnn", zoo("shufflenet_nano")),
    "convnext_nano": ("hybrid", zoo("convnext_nano")),
    "wav2letter_nano": ("audio", zoo("wav2letter_nano")),
    "attention_block": ("transformer", zoo("attention_block")),
    "shufflenet_v2_x1_0": ("cnn", FULL["shufflenet_v2_x1_0"]),
    "mobilenet_v3_small": ("cnn", FULL["mobilenet_v3_small"]),
    # transformers image classifiers
    "resnet": ("cnn", image("ResNetConfig", "ResNetForImageClassification", embedding_size=16,
                            layer_type="basic", **STAGES4, **LABELS)),
    "resnet_bottleneck": ("cnn", image("ResNetConfig", "ResNetForImageClassification", embedding_size=16,
                                       hidden_sizes=[32, 64], depths=[1, 1], **LABELS)),
    "regnet": ("cnn", image("RegNetConfig", "RegNetForImageClassification", embedding_size=16, groups_width=8,
                            **STAGES4, **LABELS)),
    "mobilenet_v1": ("cnn", image("MobileNetV1Config", "MobileNetV1ForImageClassification", depth_multiplier=0.25,
                                  image_size=64, **LABELS)),
    "mobilenet_v2": ("cnn", image("MobileNetV2Config", "MobileNetV2ForImageClassification", depth_multiplier=0.35,
                                  image_size=64, **LABELS)),
    "efficientnet": ("cnn", image("EfficientNetConfig", "EfficientNetForImageClassification", width_coefficient=0.25,
                                  depth_coefficient=0.25, image_size=64, hidden_dim=320, **LABELS)),
    "bit": ("cnn", image("BitConfig", "BitForImageClassification", embedding_size=32, hidden_sizes=[128, 256],
                            depths=[1, 1], **LABELS)),
    "hgnet_v2": ("cnn", image("HGNetV2Config", "HGNetV2ForImageClassification", **LABELS)),
    "pplcnet": ("cnn", image("PPLCNetConfig", "PPLCNetForImageClassification", **LABELS)),
    "textnet": ("cnn", image("TextNetConfig", "TextNetForImageClassification", **LABELS)),
    "convnext": ("hybrid", image("ConvNextConfig", "ConvNextForImageClassification", **STAGES4, **LABELS)),
    "convnext_v2": ("hybrid", image("ConvNextV2Config", "ConvNextV2ForImageClassification", **STAGES4, **LABELS)),
    "poolformer": ("hybrid", image("PoolFormerConfig", "PoolFormerForImageClassification", **STAGES4, **LABELS)),
    "mobilevit": ("hybrid", image("MobileViTConfig", "MobileViTForImageClassification", hidden_sizes=[32, 40, 48],
                                  neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], num_attention_heads=2,
                                  image_size=64, **LABELS)),
    "mobilevit_v2": ("hybrid", image("MobileViTV2Config", "MobileViTV2ForImageClassification", width_multiplier=0.5,
                                     image_size=64, **LABELS)),
    "levit": ("hybrid", image("LevitConfig", "LevitForImageClassification", image_size=64, hidden_sizes=[32, 48, 64],
                              num_attention_heads=[1, 2, 2], depths=[1, 1, 1], key_dim=[8, 8, 8], **LABELS)),
    "efficientformer_swift": ("hybrid", image("SwiftFormerConfig", "SwiftFormerForImageClassification",
                                              depths=[1, 1, 1, 1], embed_dims=[16, 32, 48, 64], **LABELS)),
    "cvt": ("hybrid", image("CvtConfig", "CvtForImageClassification", embed_dim=[16, 32, 48], num_heads=[1, 2, 3],
                            depth=[1, 2, 3], **LABELS)),
    "pvt": ("hybrid", image("PvtConfig", "PvtForImageClassification", image_size=64, hidden_sizes=[16, 32, 48, 64],
                            num_attention_heads=[1, 1, 2, 2], depths=[1, 1, 1, 1], **LABELS)),
    "pvt_v2": ("hybrid", image("PvtV2Config", "PvtV2ForImageClassification", image_size=64, **STAGES4,
                               num_attention_heads=[1, 1, 2, 2], **LABELS)),
    "segformer": ("hybrid", image("SegformerConfig", "SegformerForImageClassification", hidden_sizes=[8, 16, 24, 32],
                                  num_attention_heads=[1, 1, 2, 2], depths=[1, 1, 1, 1], **LABELS)),
    "focalnet": ("hybrid", image("FocalNetConfig", "FocalNetForImageClassification", embed_dim=16, depths=[1, 1],
                                 image_size=64, **LABELS)),
    "hiera": ("transformer", image("HieraConfig", "HieraForImageClassification", embed_dim=16, image_size=[64, 64],
                                   depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], **LABELS)),
    "swin": ("transformer", image("SwinConfig", "SwinForImageClassification", **SWIN)),
    "swin_v2": ("transformer", image("Swinv2Config", "Swinv2ForImageClassification", **SWIN)),
    "donut_swin": ("transformer", image("DonutSwinConfig", "DonutSwinForImageClassification", **SWIN)),
    "dinat": ("transformer", image("DinatConfig", "DinatForImageClassification", embed_dim=16, depths=[1, 1],
                                   num_heads=[1, 2], **LABELS)),
    "vit": ("transformer", image("ViTConfig", "ViTForImageClassification", **VIT)),
    "deit": ("transformer", image("DeiTConfig", "DeiTForImageClassification", **VIT)),
    "beit": ("transformer", image("BeitConfig", "BeitForImageClassification", **VIT)),
    "data2vec_vision": ("transformer", image("Data2VecVisionConfig", "Data2VecVisionForImageClassification", **VIT)),
    "dinov2": ("transformer", image("Dinov2Config", "Dinov2ForImageClassification", **VIT)),
    "vit_msn": ("transformer", image("ViTMSNConfig", "ViTMSNForImageClassification", **VIT)),
    "ijepa": ("transformer", image("IJepaConfig", "IJepaForImageClassification", **VIT)),
    "clip_vision": ("transformer", image("CLIPConfig", "CLIPForImageClassification", vision_config=dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=64,
        patch_size=16), **LABELS)),
    "siglip_vision": ("transformer", image("SiglipConfig", "SiglipForImageClassification", vision_config=dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=64,
        patch_size=16), **LABELS)),
    # segmentation, depth and detection heads
    "segformer_seg": ("segmentation", image("SegformerConfig", "SegformerForSemanticSegmentation",
                                            hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 2, 2],
                                            depths=[1, 1, 1, 1], decoder_hidden_size=32, **LABELS)),
    "mobilevit_deeplab": ("segmentation", image("MobileViTConfig", "MobileViTForSemanticSegmentation",
                                                hidden_sizes=[32, 40, 48], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
                                                num_attention_heads=2, image_size=64, aspp_out_channels=32, **LABELS)),
    "mobilenet_v2_deeplab": ("segmentation", image("MobileNetV2Config", "MobileNetV2ForSemanticSegmentation",
                                                   depth_multiplier=0.35, image_size=64, **LABELS)),
    "beit_seg": ("segmentation", image("BeitConfig", "BeitForSemanticSegmentation", out_indices=[0, 1, 2, 3],
                                       use_auxiliary_head=False, **{**VIT, "num_hidden_layers": 4})),
    "upernet_convnext": ("segmentation", image("UperNetConfig", "UperNetForSemanticSegmentation", backbone_config=dict(
        model_type="convnext", hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1],
        out_features=["stage1", "stage2", "stage3", "stage4"]), hidden_size=32, auxiliary_in_channels=48,
        use_auxiliary_head=False, **LABELS)),
    "dpt_seg": ("segmentation", image("DPTConfig", "DPTForSemanticSegmentation", backbone_out_indices=[0, 1, 2, 3],
                                      neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=32,
                                      use_auxiliary_head=False, **{**VIT, "num_hidden_layers": 4})),
    "dpt_depth": ("depth", image("DPTConfig", "DPTForDepthEstimation", backbone_out_indices=[0, 1, 2, 3],
                                 neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=32,
                                 **{**VIT, "num_hidden_layers": 4})),
    "glpn_depth": ("depth", image("GLPNConfig", "GLPNForDepthEstimation", hidden_sizes=[8, 16, 24, 32],
                                  num_attention_heads=[1, 1, 2, 2], depths=[1, 1, 1, 1], decoder_hidden_size=16)),
    "detr_resnet": ("detection", image("DetrConfig", "DetrForObjectDetection", use_timm_backbone=False,
                                       use_pretrained_backbone=False, backbone_config=dict(
                                           model_type="resnet", embedding_size=16, hidden_sizes=[16, 32, 48, 64],
                                           depths=[1, 1, 1, 1], layer_type="basic", out_features=["stage4"]),
                                       d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                       decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                       num_queries=10, **LABELS)),
    "yolos": ("detection", image("YolosConfig", "YolosForObjectDetection", num_detection_tokens=10,
                                 image_size=[64, 64], **{k: v for k, v in VIT.items() if k != "image_size"})),
    # audio classifiers
    "wav2vec2": ("audio", hf("Wav2Vec2Config", "Wav2Vec2ForSequenceClassification", WAVE, **WAV2VEC)),
    "hubert": ("audio", hf("HubertConfig", "HubertForSequenceClassification", WAVE, **WAV2VEC)),
    "data2vec_audio": ("audio", hf("Data2VecAudioConfig", "Data2VecAudioForSequenceClassification", WAVE, **WAV2VEC)),
    "wavlm": ("audio", hf("WavLMConfig", "WavLMForSequenceClassification", WAVE, **WAV2VEC)),
    "unispeech": ("audio", hf("UniSpeechConfig", "UniSpeechForSequenceClassification", WAVE, **WAV2VEC)),
    "unispeech_sat": ("audio", hf("UniSpeechSatConfig", "UniSpeechSatForSequenceClassification", WAVE, **WAV2VEC)),
    "sew": ("audio", hf("SEWConfig", "SEWForSequenceClassification", WAVE, **WAV2VEC)),
    "sew_d": ("audio", hf("SEWDConfig", "SEWDForSequenceClassification", WAVE, **WAV2VEC)),
    "wav2vec2_conformer": ("audio", hf("Wav2Vec2ConformerConfig", "Wav2Vec2ConformerForSequenceClassification", WAVE,
                                       **WAV2VEC)),
    "ast": ("audio", hf("ASTConfig", "ASTForAudioClassification", (1, 64, 16), hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128, max_length=64, num_mel_bins=16, **LABELS)),
    "whisper_encoder": ("audio", hf("WhisperConfig", "WhisperForAudioClassification", (1, 16, 64), d_model=32,
                                    encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                                    decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                    num_mel_bins=16, max_source_positions=32, classifier_proj_size=16, **LABELS)),
}

# A block repeated n and 4n times: optimize's seconds should grow no faster than the graph.
REPEATS: dict[str, Callable[[int], Callable]] = {
    "vit": lambda n: image("ViTConfig", "ViTForImageClassification", **{**VIT, "num_hidden_layers": 2 * n}),
    "swin": lambda n: image("SwinConfig", "SwinForImageClassification", **{**SWIN, "depths": [n, n]}),
    "resnet": lambda n: image("ResNetConfig", "ResNetForImageClassification", embedding_size=16, layer_type="basic",
                              hidden_sizes=[16, 32, 48, 64], depths=[n] * 4, **LABELS),
    "wav2vec2": lambda n: hf("Wav2Vec2Config", "Wav2Vec2ForSequenceClassification", WAVE,
                             **{**WAV2VEC, "num_hidden_layers": n}),
}
