"""1x1 conv on a 1x1 input -> fully connected: counts, numerics, one test per rejection."""
import pytest
import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401
import torch.nn.functional as F
from torch import nn

import layoutopt
from helpers import check_plan, op_counts

CONV2D, LINEAR = "aten.conv2d.default", "aten.linear.default"


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


def test_squeeze_excite_convs_become_linears_on_cortex_m():
    r = check_plan(SqueezeExcite().eval(), x4(), target="cortex-m", after=2)
    counts = op_counts(r.program)
    assert counts[CONV2D] == 1 and counts[LINEAR] == 2
    assert r.report.rewrites == {"conv1x1_to_fc": 2}
    # the activations stay directly after the linears
    for node in r.program.graph.nodes:
        if node.target in (torch.ops.aten.relu.default, torch.ops.aten.hardsigmoid.default):
            assert node.args[0].target == torch.ops.aten.linear.default


@pytest.mark.parametrize("target", ["ethos-u55", "ethos-u85", "xnnpack", "cpu"])
def test_targets_without_the_preference_keep_the_convs(target):
    r = check_plan(SqueezeExcite().eval(), x4(), target=target)
    assert op_counts(r.program)[CONV2D] == 3 and "conv1x1_to_fc" not in r.report.rewrites


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

    r = check_plan(Q().eval(), (torch.randn(1, 4, 6, 6),), target="cortex-m", exact=True)
    linear = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.linear.default)
    assert layoutopt.ir.ops.is_dequantize_per_tensor(linear.args[0].target)
    assert layoutopt.ir.ops.is_dequantize_per_channel(linear.args[1].target)
    assert layoutopt.ir.ops.is_quantize_per_tensor(next(iter(linear.users)).target)


def _rejected(model, inputs, reason):
    r = layoutopt.optimize(model, inputs, target="cortex-m")
    assert op_counts(r.program)[LINEAR] == 0
    assert any(d["reason"] == f"conv1x1_to_fc: {reason}" for d in r.report.declined), r.report.declined
    assert "conv1x1_to_fc" not in r.report.rewrites


def pooled(conv):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(x.mean((2, 3), keepdim=True))

    return M().eval()


def test_rejects_padding():
    _rejected(pooled(nn.Conv2d(4, 4, 1, padding=1)), (torch.randn(1, 4, 4, 4),), "padded convolution")


def test_rejects_groups():
    _rejected(pooled(nn.Conv2d(4, 4, 1, groups=2)), (torch.randn(1, 4, 4, 4),), "grouped convolution")


def test_rejects_larger_kernels():
    _rejected(pooled(nn.Conv2d(4, 4, 3, padding=1)), (torch.randn(1, 4, 4, 4),), "kernel larger than 1x1")


def test_rejects_a_weight_that_is_not_a_constant():
    class M(nn.Module):
        def forward(self, x, w):
            return F.conv2d(x.mean((2, 3), keepdim=True), w)

    _rejected(M(), (torch.randn(1, 4, 4, 4), torch.randn(4, 4, 1, 1)), "weight is not a constant")


def test_rejects_a_shared_weight():
    conv = nn.Conv2d(4, 4, 1)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            return self.conv(s) + self.conv(s * 2)

    _rejected(M().eval(), (torch.randn(1, 4, 4, 4),), "weight is shared with another op")


def test_rejects_a_bias_that_is_not_a_constant():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4, 1, 1))

        def forward(self, x, b):
            return F.conv2d(x.mean((2, 3), keepdim=True), self.w, b)

    _rejected(M(), (torch.randn(1, 4, 4, 4), torch.randn(4)), "bias is not a constant")


def test_convolutions_on_larger_inputs_are_not_candidates():
    r = layoutopt.optimize(nn.Conv2d(4, 4, 1).eval(), (torch.randn(1, 4, 4, 4),), target="cortex-m")
    assert r.report.declined == [] and op_counts(r.program)[CONV2D] == 1


def test_idempotent():
    once = layoutopt.optimize(SqueezeExcite().eval(), x4(), target="cortex-m")
    twice = layoutopt.optimize(once.program, target="cortex-m")
    assert twice.report.rewrites == {} and op_counts(twice.program) == op_counts(once.program)
