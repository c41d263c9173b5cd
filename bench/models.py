"""Public architectures for the benchmarks, randomly initialised (no weights are downloaded).

Hugging Face ``transformers`` model classes built from their default configs (the published
sizes), plus the bundled toy models. Each entry returns ``(module, example_inputs)``.
"""
from __future__ import annotations

from typing import Callable

import torch

from layoutopt.zoo import MODELS as ZOO
from layoutopt.zoo import build as build_zoo
from layoutopt.zoo.public import HF_SMALL, hf

from full_size import FULL

HF: dict[str, Callable] = {
    "hf_resnet50": hf("ResNetConfig", "ResNetModel", (1, 3, 224, 224)),
    "hf_mobilenet_v2": hf("MobileNetV2Config", "MobileNetV2Model", (1, 3, 224, 224)),
    "hf_convnext_tiny": hf("ConvNextConfig", "ConvNextModel", (1, 3, 224, 224)),
    "hf_mobilevit_small": hf("MobileViTConfig", "MobileViTModel", (1, 3, 256, 256)),
    "hf_segformer_b0": hf("SegformerConfig", "SegformerModel", (1, 3, 224, 224)),
    "hf_swin_tiny": hf("SwinConfig", "SwinModel", (1, 3, 224, 224)),
    "hf_wav2vec2_base_2l": hf("Wav2Vec2Config", "Wav2Vec2Model", (1, 16000), num_hidden_layers=2),
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
    "hf_convnext_small": HF_SMALL["hf_convnext_small"],  # 2 stages, 64 px
    "hf_vit_small": HF_SMALL["hf_vit_small"],  # 2 layers, 64 px
    "hf_mobilevit_small": HF_SMALL["hf_mobilevit_small"],  # 64 px; not run by default, see SLOW
    "hf_wav2vec2_small": HF_SMALL["hf_wav2vec2_small"],  # conv1d feature encoder + 1 layer, 0.25 s
    "hf_mobilenet_v2_96": hf("MobileNetV2Config", "MobileNetV2Model", (1, 3, 96, 96), image_size=96),
}


# Stock lowerings that did not finish within 10 minutes per flow on 2 cores (Ethos-U55 and
# Cortex-M), and the full-size models: run them with --models when there is time.
SLOW = {"hf_mobilevit_small", *FULL}


def zoo_entry(name: str) -> Callable:
    return lambda: build_zoo(name)


ALL: dict[str, Callable] = {**{k: zoo_entry(k) for k in ZOO}, **HF}

# Full size at the usual resolution, for the ExecuTorch bench's --models (each stock lowering
# of a ConvNeXt or ViT takes minutes to tens of minutes on 2 cores).
EXECUTORCH.update(FULL)
