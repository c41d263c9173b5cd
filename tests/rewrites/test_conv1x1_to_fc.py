"""1x1 conv on a 1x1 input -> fully connected, alone: counts, numerics, one test per rejection."""
import pytest
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401
import torch.nn.functional as F
from torch import nn

import layoutopt
from helpers import assert_rewrite, check_plan, op_counts
from layoutopt.rewrites import Conv1x1ToFullyConnected

RULE = Conv1x1ToFullyConnected()
CONV2D, LINEAR, VIEW = "aten.conv2d.default", "aten.linear.default", "aten.view.default"
CONVOLUTION = "aten.convolution.default"


class SqueezeExcite(nn.Module):
    """MobileNetV3's squeeze-excite: pool to 1x1, two 1x1 convs, scale the features."""

    def __init__(self, c=16):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.reduce = nn.Conv2d(c, c // 4, 1)
        self.expand = nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        y = self.conv(x)
        s = F.adaptive_avg_pool2d(y, 1)
        s = F.hardsigmoid(self.expand(F.relu(self.reduce(s))))
        return y * s


def x4():
    return (torch.randn(1, 3, 8, 8),)


def test_squeeze_excite_convs_become_linears():
    r = assert_rewrite(SqueezeExcite().eval(), x4(), RULE, before={CONV2D: 3, LINEAR: 0},
                       after={CONV2D: 1, LINEAR: 2, VIEW: 4}, applied=2, exact=False)
    # the activations stay directly after the linears, the views after the activations
    for node in r.program.graph.nodes:
        if node.target in (torch.ops.aten.relu.default, torch.ops.aten.hardsigmoid.default):
            assert node.args[0].target == torch.ops.aten.linear.default
            assert [u.target for u in node.users] == [torch.ops.aten.view.default]
    assert tuple(r.program.state_dict["reduce.weight"].shape) == (4, 16)


def test_squeeze_excite_convs_become_linears_on_cortex_m_once_planned():
    r = check_plan(SqueezeExcite().eval(), x4(), target="cortex-m", after=2)
    assert r.report.rewrites == {"conv1x1_to_fc": 2}


@pytest.mark.parametrize("target", ["ethos-u55", "ethos-u85", "xnnpack", "cpu"])
def test_targets_without_the_preference_keep_the_convs(target):
    r = check_plan(SqueezeExcite().eval(), x4(), target=target)
    assert op_counts(r.program)[CONV2D] == 3 and "conv1x1_to_fc" not in r.report.rewrites


def test_core_aten_convolution_becomes_a_linear():
    assert_rewrite(pooled(nn.Conv2d(4, 6, 1)), (torch.randn(1, 4, 4, 4),), RULE, dialect="core",
                   before={CONVOLUTION: 1}, after={CONVOLUTION: 0, LINEAR: 1, VIEW: 2}, applied=1, exact=False)


def test_quantized_pointwise_conv_keeps_qdq_around_the_linear():
    qd = torch.ops.quantized_decomposed

    class Q(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randint(-8, 8, (8, 4, 1, 1)).to(torch.int8), requires_grad=False)
            self.register_buffer("s", torch.rand(8) / 10 + 0.01)
            self.register_buffer("z", torch.zeros(8, dtype=torch.int64))

        def forward(self, x):
            q = qd.quantize_per_tensor(x.mean((2, 3), keepdim=True), 0.05, 0, -128, 127, torch.int8)
            w = qd.dequantize_per_channel(self.w, self.s, self.z, 0, -127, 127, torch.int8)
            y = F.conv2d(qd.dequantize_per_tensor(q, 0.05, 0, -128, 127, torch.int8), w)
            return qd.dequantize_per_tensor(qd.quantize_per_tensor(y, 0.1, 0, -128, 127, torch.int8),
                                            0.1, 0, -128, 127, torch.int8)

    r = assert_rewrite(Q().eval(), (torch.randn(1, 4, 6, 6),), RULE, before={CONV2D: 1},
                       after={CONV2D: 0, LINEAR: 1, VIEW: 2}, applied=1)
    (linear,) = [n for n in r.program.graph.nodes if n.target == torch.ops.aten.linear.default]
    assert layoutopt.ir.ops.is_dequantize_per_tensor(linear.args[0].target)
    assert layoutopt.ir.ops.is_dequantize_per_channel(linear.args[1].target)
    assert layoutopt.ir.ops.is_quantize_per_tensor(next(iter(linear.users)).target)
    assert r.program.state_dict["w"].dtype == torch.int8 and tuple(r.program.state_dict["w"].shape) == (8, 4)


def pooled(conv):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(x.mean((2, 3), keepdim=True))

    return M().eval()


def test_rejects_padding():
    assert_rewrite(pooled(nn.Conv2d(4, 4, 1, padding=1)), (torch.randn(1, 4, 4, 4),), RULE, before={CONV2D: 1},
                   reason="padded convolution")


def test_rejects_groups():
    assert_rewrite(pooled(nn.Conv2d(4, 4, 1, groups=2)), (torch.randn(1, 4, 4, 4),), RULE, before={CONV2D: 1},
                   reason="grouped convolution")


def test_rejects_larger_kernels():
    assert_rewrite(pooled(nn.Conv2d(4, 4, 3, padding=1)), (torch.randn(1, 4, 4, 4),), RULE, before={CONV2D: 1},
                   reason="kernel larger than 1x1")


def test_rejects_a_transposed_convolution():
    assert_rewrite(pooled(nn.ConvTranspose2d(4, 4, 1)), (torch.randn(1, 4, 4, 4),), RULE, dialect="core",
                   before={CONVOLUTION: 1}, reason="transposed convolution")


def test_rejects_a_weight_that_is_not_a_constant():
    class M(nn.Module):
        def forward(self, x, w):
            return F.conv2d(x.mean((2, 3), keepdim=True), w)

    assert_rewrite(M(), (torch.randn(1, 4, 4, 4), torch.randn(4, 4, 1, 1)), RULE, before={CONV2D: 1},
                   reason="weight is not a constant")


def test_rejects_a_shared_weight():
    conv = nn.Conv2d(4, 4, 1)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            return self.conv(s) + self.conv(s * 2)

    assert_rewrite(M().eval(), (torch.randn(1, 4, 4, 4),), RULE, before={CONV2D: 2},
                   reason="weight is shared with another op")


def test_rejects_a_bias_that_is_not_a_constant():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4, 1, 1))

        def forward(self, x, b):
            return F.conv2d(x.mean((2, 3), keepdim=True), self.w, b)

    assert_rewrite(M(), (torch.randn(1, 4, 4, 4), torch.randn(4)), RULE, before={CONV2D: 1},
                   reason="bias is not a constant")


def test_convolutions_on_larger_inputs_are_not_candidates():
    assert_rewrite(nn.Conv2d(4, 4, 1).eval(), (torch.randn(1, 4, 4, 4),), RULE, before={CONV2D: 1}, applied=0)
