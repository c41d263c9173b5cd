"""Channel-axis linear through permutes/reshapes -> 1x1 conv; one test per rejection."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import layoutopt
from helpers import check_plan, op_counts

RULE = "pointwise_linear_to_conv"


class Pointwise(nn.Module):
    """``form`` picks how the model reaches the channel axis."""

    def __init__(self, form="permute", c=8, o=12, bias=True):
        super().__init__()
        self.form = form
        self.fc = nn.Linear(c, o, bias=bias)
        self.extra = nn.Parameter(torch.randn(o))

    def forward(self, x):
        n, c, h, w = x.shape
        if self.form == "permute":
            return self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.form == "tokens":  # transformer-style [N, HW, C]
            t = x.flatten(2).transpose(1, 2)
            return self.fc(t).transpose(1, 2).reshape(n, -1, h, w)
        if self.form == "bias_add":
            return (self.fc(x.permute(0, 2, 3, 1)) + self.extra).permute(0, 3, 1, 2)
        raise AssertionError(self.form)


def x4(c=8, h=5, w=6):
    return (torch.randn(1, c, h, w),)


@pytest.mark.parametrize("form", ["permute", "tokens", "bias_add"])
def test_channel_linear_becomes_a_pointwise_conv(form):
    r = check_plan(Pointwise(form).eval(), x4(), target="ethos-u55", after=2)
    counts = op_counts(r.program)
    assert counts["aten.linear.default"] == 0 and counts["aten.conv2d.default"] == 1
    assert counts["aten.permute.default"] + counts["aten.transpose.int"] == 0
    assert r.report.rewrites[RULE] == 1


def test_linear_without_bias():
    r = check_plan(Pointwise(bias=False).eval(), x4(), target="ethos-u55")
    assert r.report.rewrites == {RULE: 1}


def _declined(model, inputs, reason):
    r = layoutopt.optimize(model, inputs, target="ethos-u55")
    assert op_counts(r.program)["aten.linear.default"] == 1, op_counts(r.program)
    assert any(d["reason"] == f"{RULE}: {reason}" for d in r.report.declined), r.report.declined
    assert RULE not in r.report.rewrites


def test_rejects_ambiguous_channel_axis():
    _declined(Pointwise().eval(), x4(c=8, h=8, w=5), "several axes have the size of the channel axis")


def test_rejects_a_second_reader_on_the_chain():
    class M(Pointwise):
        def forward(self, x):
            t = x.permute(0, 2, 3, 1)
            return self.fc(t).permute(0, 3, 1, 2), t.sum()

    _declined(M().eval(), x4(), "a layout op on the input chain has another reader")


def test_rejects_a_layout_op_outside_the_allow_list():
    class M(Pointwise):
        def forward(self, x):
            n, c, h, w = x.shape
            t = x.permute(0, 2, 3, 1).contiguous().view(n, h * w, c)
            return self.fc(t).view(n, h, w, -1).permute(0, 3, 1, 2)

    _declined(M().eval(), x4(), "layout op aten.contiguous.default is not allow-listed")


def test_rejects_a_residual_add():
    class M(Pointwise):
        def forward(self, x):
            residual = x.mean(1, keepdim=True).permute(0, 2, 3, 1)
            return (self.fc(x.permute(0, 2, 3, 1)) + residual).permute(0, 3, 1, 2)

    _declined(M().eval(), x4(), "the add after the linear is a residual, not a bias")


def test_rejects_a_weight_that_is_not_a_constant():
    class M(nn.Module):
        def forward(self, x, w):
            return F.linear(x.permute(0, 2, 3, 1), w).permute(0, 3, 1, 2)

    _declined(M(), (x4()[0], torch.randn(12, 8)), "weight is not a constant")


def test_rejects_a_shared_weight():
    class M(Pointwise):
        def forward(self, x):
            return self.fc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) + self.fc.weight.sum()

    _declined(M().eval(), x4(), "weight is shared with another op")


def test_convnext_block_keeps_its_layer_norm_and_has_no_internal_transposes():
    from layoutopt.zoo.models import ConvNeXtBlock

    r = check_plan(ConvNeXtBlock(8).eval(), x4(), target="ethos-u55", after=2)
    assert op_counts(r.program)["aten.layer_norm.default"] == 1


def test_idempotent():
    once = layoutopt.optimize(Pointwise("tokens").eval(), x4())
    twice = layoutopt.optimize(once.program)
    assert twice.report.rewrites == {} and op_counts(twice.program) == op_counts(once.program)
