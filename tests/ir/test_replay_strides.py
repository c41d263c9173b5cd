"""Values recomputed from their inputs state eager's strides, grad or no grad: a fake result
whose size-1 dims are strided as no dense layout strides them is restrided as eager gives it."""
import copy

import torch
from torch import nn

from layoutopt.ir.propagate import refresh_meta
from layoutopt.verify.numerics import run_program


class GroupNormPool(nn.Module):
    """PoolFormer's token mixer: a group norm, then an average pool that reads the size-1
    batch dim's stride to choose its memory format."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(1, 8)

    def forward(self, x):
        y = self.norm(self.conv(x))
        return nn.functional.avg_pool2d(y, 3, 1, 1, count_include_pad=False) - y


def test_a_channels_last_group_norm_and_pool_keep_eagers_strides():
    model = GroupNormPool().eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    program = copy.deepcopy(torch.export.export(model, (x,)))
    refresh_meta(program.graph_module)
    strides = {n.name: n.meta["val"].stride() for n in program.graph.nodes if n.op == "call_function"}
    channels_last = torch.empty(1, 8, 8, 8).contiguous(memory_format=torch.channels_last).stride()
    assert strides["group_norm"] == strides["avg_pool2d"] == channels_last
    _, mismatches = run_program(program, (x,))
    assert mismatches == []
