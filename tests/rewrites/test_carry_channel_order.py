"""Channel shuffles carried as stored channel orders through splits and concatenations into the
weights that read them (``carry_channel_order``)."""
import pytest
import torch
from torch import nn

from helpers import assert_rewrite, check_plan
from layoutopt.rewrites import CarryChannelOrder, rules_for
from layoutopt.targets import get_target
from layoutopt.zoo import build
from layoutopt.zoo.models import ShuffleUnit, channel_shuffle

RULE = CarryChannelOrder()


class Stem(nn.Module):
    def __init__(self, block, dim=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU())
        self.block = block

    def forward(self, x):
        return self.block(self.stem(x))


class DownUnit(nn.Module):
    """ShuffleNetV2's stride-2 unit: both halves computed (a depthwise shortcut), concatenated,
    shuffled."""

    def __init__(self, cin, cout):
        super().__init__()
        half = cout // 2
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cin, 3, 2, 1, groups=cin), nn.BatchNorm2d(cin),
                                      nn.Conv2d(cin, half, 1), nn.BatchNorm2d(half), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(cin, half, 1), nn.ReLU(), nn.Conv2d(half, half, 3, 2, 1, groups=half),
                                    nn.Conv2d(half, half, 1), nn.ReLU())

    def forward(self, x):
        return channel_shuffle(torch.cat((self.shortcut(x), self.branch(x)), 1), 2)


class Head(nn.Module):
    def __init__(self, dim, classes=5):
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


def image():
    torch.manual_seed(0)
    return (torch.randn(1, 3, 12, 12),)


def _eval(model):
    torch.manual_seed(0)
    model = model.eval()
    for m in model.modules():  # statistics that differ per channel, so a wrong order shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model


SHUFFLE_OPS = {"aten.view.default": 2, "aten.transpose.int": 1, "aten.contiguous.default": 1}


def test_three_units_lose_every_shuffle_and_their_splits():
    model = _eval(Stem(nn.Sequential(ShuffleUnit(16), ShuffleUnit(16), ShuffleUnit(16), nn.Conv2d(16, 8, 1))))
    # each unit: chunk -> (pass, branch) -> cat -> shuffle; carried, the chunks of shuffled
    # channels become slices of the stored orders (the first unit's chunk reads the stem) and
    # the concatenations copy channel runs
    assert_rewrite(model, image(), RULE, applied=1, exact=False,
                   before={"aten.view.default": 6, "aten.transpose.int": 3, "aten.contiguous.default": 3,
                           "aten.chunk.default": 3, "aten.cat.default": 3},
                   after={"aten.view.default": 0, "aten.transpose.int": 0, "aten.contiguous.default": 0,
                          "aten.chunk.default": 1, "getitem": 2, "aten.cat.default": 3, "aten.slice.Tensor": 8})


def test_stride_two_units_carry_through_the_depthwise_shortcut():
    model = _eval(Stem(nn.Sequential(DownUnit(16, 32), ShuffleUnit(32), DownUnit(32, 32), Head(32))))
    # two regions: the second stride-2 unit reads its input whole in both branches (weights
    # absorb it), and its own shuffle is carried to the head's linear
    assert_rewrite(model, image(), RULE, applied=2, exact=False,
                   before={"aten.transpose.int": 3, "aten.chunk.default": 1, "aten.cat.default": 3},
                   after={"aten.view.default": 0, "aten.transpose.int": 0, "aten.contiguous.default": 0,
                          "aten.chunk.default": 0, "getitem": 0, "aten.cat.default": 3, "aten.slice.Tensor": 3})


def test_a_shuffle_read_by_the_graph_output_stays():
    model = _eval(Stem(nn.Sequential(ShuffleUnit(16), ShuffleUnit(16))))
    assert_rewrite(model, image(), RULE, before={"aten.view.default": 4, "aten.transpose.int": 2},
                   reason="read by the graph output")


def test_a_reshape_across_the_channels_declines():
    class Flat(nn.Module):
        def forward(self, x):
            return channel_shuffle(x, 2).flatten(1)

    assert_rewrite(_eval(Stem(Flat())), image(), RULE, before=SHUFFLE_OPS, reason="reshaped across the channel axis")


def test_a_grouped_convolution_declines():
    model = _eval(Stem(nn.Sequential(ShuffleUnit(16), nn.Conv2d(16, 8, 1, groups=2))))
    assert_rewrite(model, image(), RULE, before=SHUFFLE_OPS, reason="read by a grouped or transposed")


def test_only_channel_wise_ops_and_no_weighted_sum_is_not_carried():
    class Pooled(nn.Module):
        def forward(self, x):
            return channel_shuffle(x, 2).amax((2, 3)).sum()

    assert_rewrite(_eval(Stem(Pooled())), image(), RULE, before=SHUFFLE_OPS, reason="reduced over the channel axis")


@pytest.mark.parametrize("target", ["cortex-m", "cpu", "ethos-u55"])
def test_shufflenet_nano_plans_to_its_input_transpose(target):
    model, inputs = build("shufflenet_nano")
    r = check_plan(model, inputs, target=target, before=25 if target != "cpu" else None, after=1, atol=1e-5)
    assert r.report.rewrites == {"carry_channel_order": 1}
    assert r.report.declined == []


def test_where_it_runs():
    names = {(t, planned): [rule.name for rule in rules_for(get_target(t), planned)]
             for t, planned in (("cortex-m", True), ("cortex-m", False), ("xnnpack", True), ("ethos-u85", False))}
    assert "carry_channel_order" in names["cortex-m", True]
    # the backend lays tensors out (Cortex-M's explicit layout interleaves while it copies; the
    # Arm backend carries orders itself) or runs the shuffle as written
    assert all("carry_channel_order" not in names[key] for key in names if key != ("cortex-m", True))
