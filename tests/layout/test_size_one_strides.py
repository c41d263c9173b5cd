"""A 1x1 feature map has one layout but several stride tuples, and eager kernels read the
strides of its size-1 dims: the pooling branch of a segmentation head (pool to 1x1, 1x1 conv,
batch norm, upsample, concatenated with the full-size branch), as in DeepLabV3's ASPP and
UperNet's pyramid pooling."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import layoutopt


class PoolingBranch(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.pool_conv = nn.Conv2d(c, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.head = nn.Conv2d(2 * c, 4, 1)

    def forward(self, x):
        f = self.conv(x)
        p = torch.relu(self.bn(self.pool_conv(F.adaptive_avg_pool2d(f, 1))))
        p = F.interpolate(p, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([f, p], dim=1))


def _channels_last_bytes(model, inputs, target):
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    ep = torch.export.export(cl, (inputs[0].contiguous(memory_format=torch.channels_last),))
    return layoutopt.measure_transposes(ep, target).bytes


@pytest.mark.parametrize("target", ["cortex-m", "cpu"])  # cortex-m makes the 1x1 conv a linear
def test_pooling_branch_plans_what_eager_runs_and_beats_channels_last(target):
    torch.manual_seed(0)
    model, inputs = PoolingBranch().eval(), (torch.randn(1, 3, 8, 8),)
    r = layoutopt.optimize(model, inputs, target=target).report
    assert r.plan_mismatches == [] and r.layout_mismatches == []
    assert r.transposes_after == 2 and r.transpose_bytes_after == r.lower_bound_bytes  # input and output
    assert r.transpose_bytes_after <= _channels_last_bytes(model, inputs, target)
    assert r.max_abs_diff < 1e-5


@pytest.mark.parametrize("op", [torch.ops.aten.batch_norm.default, torch.ops.aten.native_batch_norm.default])
def test_batch_norm_of_a_1x1_map_is_replayed_with_eager_strides(op):
    from torch._subclasses.fake_tensor import FakeTensorMode

    from layoutopt.ir.propagate import run_fake

    x = torch.randn(1, 4, 1, 1).contiguous(memory_format=torch.channels_last)
    stats = (torch.ones(4), torch.zeros(4), torch.zeros(4), torch.ones(4))
    tail = (False, 0.1, 1e-5, False) if op is torch.ops.aten.batch_norm.default else (False, 0.1, 1e-5)
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fake = run_fake(mode, op, (mode.from_tensor(x), *stats, *tail), {})
    eager = op(x, *stats, *tail)
    first = (lambda v: v[0] if isinstance(v, tuple) else v)
    assert first(fake).stride() == first(eager).stride() == (4, 1, 1, 1)
