"""Per op family: exact transposes before/after, plans at the bound, equal outputs."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import check_plan, op_counts
from layoutopt.zoo.models import ConvNeXtBlock


class ConvChain(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def x4(c=3, h=8, w=8):
    return (torch.randn(1, c, h, w),)


def test_conv_chain_needs_only_the_input_and_output_conversions():
    # before: each conv converts its input and its output (4); after: input in, output back out
    r = check_plan(ConvChain().eval(), x4(), before=4, after=2)
    assert op_counts(r.program)["aten.clone.default"] == 2


def test_conv_chain_with_channels_last_io_has_no_conversion():
    r = check_plan(ConvChain().eval(), x4(), io_layout="channels_last", after=0)
    assert op_counts(r.program)["aten.clone.default"] == 0


class Classifier(nn.Module):
    """Conv, batch norm, residual fan-out, pooling to 1x1, flatten, linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.bn(self.c1(x)))
        y = self.c2(y) + y
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


def test_cnn_classifier_pays_one_input_conversion():
    r = check_plan(Classifier().eval(), x4(), before=5, after=1)
    assert r.report.conversions_after[0]["bytes"] == 3 * 8 * 8  # int8 on ethos-u: one byte an element


def test_cnn_classifier_with_channels_last_io_pays_nothing():
    check_plan(Classifier().eval(), x4(), io_layout="channels_last", after=0)


class PoolUpsample(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = F.max_pool2d(self.c(x), 2)
        y = F.avg_pool2d(y, 2, stride=1, padding=1)
        return F.interpolate(y, scale_factor=2.0, mode="nearest")


def test_pooling_and_upsampling_stay_channels_last():
    # before: conv in/out, max pool in/out, avg pool in/out, upsample in/out
    check_plan(PoolUpsample().eval(), x4(4), before=8, after=2)


class Elementwise(nn.Module):
    """Broadcast bias, per-channel scale from a squeeze-excite style branch, clamp, sigmoid."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(4, 8, 1)
        self.se = nn.Conv2d(8, 8, 1)
        self.bias = nn.Parameter(torch.randn(1, 8, 1, 1))

    def forward(self, x):
        y = self.c(x) + self.bias
        s = torch.sigmoid(self.se(y.mean((2, 3), keepdim=True)))
        return self.c(x) * 0 + torch.clamp(y * s, -1, 1)


def test_elementwise_and_broadcasts_follow_their_operands():
    r = check_plan(Elementwise().eval(), x4(4), after=2)
    kinds = sorted(c["node"] for c in r.report.conversions_after)
    assert len(kinds) == 2


class JoinsAndReductions(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(4, 8, 1)
        self.d = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        y = self.c(x)
        a, b = y.split(4, dim=1)
        z = torch.cat([F.pad(a, (0, 0, 0, 0)), b, y], dim=1)
        z = self.d(z)
        return z.softmax(dim=1), z.sum(dim=(2, 3))


def test_split_concat_pad_and_reductions_need_no_transposes_inside():
    # the input comes in once; the channel softmax must hand NCHW back: one transpose, wherever
    r = check_plan(JoinsAndReductions().eval(), x4(4), before=4, after=2)
    assert r.report.declined == []


def test_permute_layernorm_linear_block_has_no_internal_transposes():
    # the input is converted once for the conv; the residual add reads the same copy
    r = check_plan(ConvNeXtBlock(8).eval(), x4(8), after=2)
    assert [c["bytes"] for c in r.report.conversions_after] == [8 * 8 * 8, 8 * 8 * 8]


def test_permute_that_only_restates_nhwc_is_free():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(4, 4, 1)
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.c(x).permute(0, 2, 3, 1))

    check_plan(M().eval(), x4(4), before=3, after=1)


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class Shuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 8, 1)
        self.b = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.b(channel_shuffle(self.a(x), 2)), 1)


def test_channel_shuffle_costs_exactly_one_gather():
    # the shuffle reorders channels: one copy is inherent; the rest stays channels-last (the
    # plan's business: the rule folding the shuffle into the next conv is left out here)
    check_plan(Shuffle().eval(), x4(4), after=2, skip_rules=("fold_channel_permutation", "carry_channel_order"))


class Conv3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv3d(2, 4, 3, padding=1)
        self.b = nn.Conv3d(4, 4, 1)

    def forward(self, x):
        return self.b(F.relu(self.a(x))).mean((2, 3, 4))


def test_rank5_convolutions_are_reported_not_hidden():
    # eager CPU conv3d returns NCDHW whatever its input, so the plan cannot state a
    # channels-last conv3d: the forced conversions stay, and the report says where
    r = check_plan(Conv3d().eval(), (torch.randn(1, 2, 4, 6, 6),), before=4, after=4)
    assert {c["node"] for c in r.report.conversions_after} == {"conv3d", "conv3d_1"}


class Pool3d(nn.Module):
    def forward(self, x):
        return F.avg_pool3d(torch.relu(x), 2) * 2


def test_rank5_elementwise_keeps_channels_last_3d_and_pooling_is_reported():
    # relu and mul keep NDHWC; eager avg_pool3d returns NCDHW, so its output is charged and
    # one copy restores the channels-last-3d output contract
    r = check_plan(Pool3d(), (torch.randn(1, 4, 4, 6, 6),), io_layout="channels_last", before=4, after=2)
    assert [c["node"] for c in r.report.conversions_after][0] == "avg_pool3d"


def test_unknown_op_is_declined_by_name_and_left_in_its_layout():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return torch.sort(self.c(x), dim=1).values

    r = check_plan(M().eval(), x4(), exact=False)
    (d,) = r.report.declined
    assert d["op"] == "aten.sort.default" and "not in the layout table" in d["reason"]
    sort = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.sort.default)
    assert sort.args[0].meta["val"].is_contiguous()


@pytest.mark.parametrize("target", ["ethos-u55", "ethos-u85", "cortex-m", "xnnpack", "cpu"])
def test_every_target_plans_a_cnn_to_one_conversion(target):
    check_plan(Classifier().eval(), x4(), target=target, after=1)


def test_xnnpack_costs_float_bytes():
    r = check_plan(Classifier().eval(), x4(), target="xnnpack", after=1)
    assert r.report.transpose_bytes_after == 3 * 8 * 8 * 4


def test_elementwise_op_on_an_oddly_strided_view_is_planned_with_eager_strides():
    # the shuffle's last view of a channels-last copy has a batch stride no dense layout has;
    # eager's mul keeps it (and the next conv then runs NCHW), a fake kernel would make it dense
    class OddView(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            n, c, h, w = x.shape
            y = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
            return self.conv(y * 0.5), self.conv(torch.relu(x))

    check_plan(OddView().eval(), (torch.randn(1, 8, 5, 6),), skip_rules=("fold_channel_permutation",))
