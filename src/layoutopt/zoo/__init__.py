"""Small models written here in plain PyTorch (random init) that show each layout pattern.

``MODELS`` maps a name to ``(builder, example_inputs)``; the demo, the tests and the bench use
them. They mirror public architectures at toy width: MobileNetV2's inverted residuals,
ConvNeXt's permute/LayerNorm/Linear blocks, ShuffleNetV2's channel shuffle, Wav2Letter's conv1d
stack and a ViT-style attention block.
"""
from __future__ import annotations

from typing import Callable

import torch

from .models import AttentionBlock, ConvNeXtNano, MobileNetV2Nano, ShuffleNetNano, Wav2LetterNano

DEFAULT = "mobilenet_v2_nano"

MODELS: dict[str, Callable[[], tuple[torch.nn.Module, tuple[torch.Tensor, ...]]]] = {
    "convnext_nano": lambda: (ConvNeXtNano(), (torch.randn(1, 3, 64, 64),)),
    "mobilenet_v2_nano": lambda: (MobileNetV2Nano(), (torch.randn(1, 3, 64, 64),)),
    "shufflenet_nano": lambda: (ShuffleNetNano(), (torch.randn(1, 3, 64, 64),)),
    "wav2letter_nano": lambda: (Wav2LetterNano(), (torch.randn(1, 16, 200),)),
    "attention_block": lambda: (AttentionBlock(), (torch.randn(1, 16, 32),)),
}


def names() -> list[str]:
    """The bundled toy models, then the public ones (``zoo.public``, built with transformers)."""
    from .public import HF_SMALL

    return list(MODELS) + list(HF_SMALL)


def build(name: str, seed: int = 0) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    from ..errors import InputError
    from .public import HF_SMALL

    if name not in MODELS and name not in HF_SMALL:
        raise InputError(f"unknown model '{name}'; choose one of: {', '.join(names())}")
    torch.manual_seed(seed)
    if name in HF_SMALL:
        try:
            import transformers  # noqa: F401
        except ImportError:
            raise InputError(f"model '{name}' is built with transformers: pip install transformers") from None
        model, inputs = HF_SMALL[name]()
    else:
        model, inputs = MODELS[name]()
    return model.eval(), inputs
