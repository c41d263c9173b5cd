"""Public architectures at their published widths and usual resolutions, random weights.

ShuffleNetV2 x1.0 and MobileNetV3-Small are written here from their papers' tables (Ma et al.
2018, Table 5; Howard et al. 2019, Table 2) and Wav2Letter from its paper (Collobert et al. 2016,
the raw-waveform network), since neither torchvision nor torchaudio imports beside the CPU build
of torch on these machines; ConvNeXt-Tiny, ViT-Tiny/16 and MobileNetV2 are Hugging Face
``transformers`` image classifiers from configs of those sizes (1,000 classes, logits out, as
torchvision's models; the ``*_backbone`` entries return the last feature map instead).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from layoutopt.zoo.public import hf


def _conv_bn(cin, cout, k, stride=1, groups=1, act: type | None = nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act(inplace=True)) if act else nn.Sequential(*layers)


class ShuffleV2Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        half = cout // 2
        branch_in = cin if stride > 1 else half
        if stride > 1:
            self.shortcut = nn.Sequential(_conv_bn(cin, cin, 3, stride, groups=cin, act=None), _conv_bn(cin, half, 1))
        self.branch = nn.Sequential(_conv_bn(branch_in, half, 1), _conv_bn(half, half, 3, stride, groups=half, act=None),
                                    _conv_bn(half, half, 1))

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.branch(b)), dim=1)
        else:
            out = torch.cat((self.shortcut(x), self.branch(x)), dim=1)
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 x1.0: stages of 4, 8, 4 units at 116, 232, 464 channels."""

    def __init__(self, widths=(24, 116, 232, 464, 1024), repeats=(4, 8, 4), classes=1000):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, widths[0], 3, 2), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], widths[0]
        for cout, n in zip(widths[1:4], repeats):
            blocks += [ShuffleV2Block(cin, cout, 2)] + [ShuffleV2Block(cout, cout, 1) for _ in range(n - 1)]
            cin = cout
        self.stages = nn.Sequential(*blocks)
        self.last = _conv_bn(cin, widths[4], 1)
        self.fc = nn.Linear(widths[4], classes)

    def forward(self, x):
        return self.fc(self.last(self.stages(self.stem(x))).mean((2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, c, squeeze):
        super().__init__()
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidualV3(nn.Module):
    def __init__(self, cin, k, exp, cout, se, act, stride):
        super().__init__()
        layers = [] if exp == cin else [_conv_bn(cin, exp, 1, act=act)]
        layers.append(_conv_bn(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcite(exp, ((exp // 4 + 4) // 8) * 8))
        layers.append(_conv_bn(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3Small(nn.Module):
    """MobileNetV3-Small with in-place Hardswish/ReLU, as deployed."""

    # kernel, expansion, out, squeeze-excite, activation, stride
    SPEC = [(3, 16, 16, True, nn.ReLU, 2), (3, 72, 24, False, nn.ReLU, 2), (3, 88, 24, False, nn.ReLU, 1),
            (5, 96, 40, True, nn.Hardswish, 2), (5, 240, 40, True, nn.Hardswish, 1),
            (5, 240, 40, True, nn.Hardswish, 1), (5, 120, 48, True, nn.Hardswish, 1),
            (5, 144, 48, True, nn.Hardswish, 1), (5, 288, 96, True, nn.Hardswish, 2),
            (5, 576, 96, True, nn.Hardswish, 1), (5, 576, 96, True, nn.Hardswish, 1)]

    def __init__(self, classes=1000):
        super().__init__()
        layers, cin = [_conv_bn(3, 16, 3, 2, act=nn.Hardswish)], 16
        for k, exp, cout, se, act, stride in self.SPEC:
            layers.append(InvertedResidualV3(cin, k, exp, cout, se, act, stride))
            cin = cout
        layers.append(_conv_bn(cin, 576, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(inplace=True), nn.Linear(1024, classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


class Wav2Letter(nn.Module):
    """Wav2Letter on the raw waveform: a strided conv1d front end (250 taps, stride 160: 10 ms
    frames of 16 kHz audio), a stride-2 layer, seven 7-tap layers, a 32-tap layer to 2,000
    channels and two pointwise layers, ReLU after each; letter scores per frame out."""

    def __init__(self, classes=40):
        super().__init__()
        spec = [(1, 250, 250, 160), (250, 250, 48, 2), *[(250, 250, 7, 1)] * 7, (250, 2000, 32, 1),
                (2000, 2000, 1, 1), (2000, classes, 1, 1)]
        self.layers = nn.Sequential(*(nn.Sequential(nn.Conv1d(cin, cout, k, s, (k - s) // 2), nn.ReLU(inplace=True))
                                      for cin, cout, k, s in spec))

    def forward(self, x):
        return self.layers(x)


def _wav2letter() -> tuple:
    torch.manual_seed(0)
    return Wav2Letter().eval(), (torch.randn(1, 1, 16000),)  # one second at 16 kHz


def _vision(cls, size=224) -> Callable:
    def make():
        torch.manual_seed(0)
        return cls().eval(), (torch.randn(1, 3, size, size),)

    return make


FULL: dict[str, Callable] = {
    "shufflenet_v2_x1_0": _vision(ShuffleNetV2),
    "mobilenet_v3_small": _vision(MobileNetV3Small),
    "mobilenet_v2": hf("MobileNetV2Config", "MobileNetV2ForImageClassification", (1, 3, 224, 224), num_labels=1000),
    "convnext_tiny": hf("ConvNextConfig", "ConvNextForImageClassification", (1, 3, 224, 224), num_labels=1000),
    "vit_tiny_16": hf("ViTConfig", "ViTForImageClassification", (1, 3, 224, 224), hidden_size=192,
                      num_hidden_layers=12, num_attention_heads=3, intermediate_size=768, num_labels=1000),
    "wav2letter": _wav2letter,
    "mobilenet_v2_backbone": hf("MobileNetV2Config", "MobileNetV2Model", (1, 3, 224, 224)),
    "convnext_tiny_backbone": hf("ConvNextConfig", "ConvNextModel", (1, 3, 224, 224)),
    "mobilevit_small": hf("MobileViTConfig", "MobileViTModel", (1, 3, 256, 256)),
}
