"""Channel shuffles carried as stored channel orders through splits and concatenations into the
weights that read them (``carry_channel_order``)."""
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
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


class Shuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return channel_shuffle(x, self.groups)


class Slices(nn.Module):
    """Uneven channel slices, each through its own op, concatenated back."""

    def __init__(self, dim):
        super().__init__()
        self.cut = dim // 4
        self.conv = nn.Conv2d(dim - self.cut, dim - self.cut, 1)

    def forward(self, x):
        return torch.cat((torch.relu(x[:, :self.cut]), self.conv(x[:, self.cut:])), 1)


def _layer(kind, dim):
    return {"unit": lambda: ShuffleUnit(dim), "down": lambda: DownUnit(dim, dim), "shuffle4": lambda: Shuffle(4),
            "bn": lambda: nn.Sequential(nn.BatchNorm2d(dim), nn.ReLU6()),
            "dw": lambda: nn.Conv2d(dim, dim, 3, padding=1, groups=dim), "slices": lambda: Slices(dim),
            "pool": lambda: nn.MaxPool2d(3, 1, 1)}[kind]()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dim=st.sampled_from([8, 16, 24]), kinds=st.lists(
    st.sampled_from(["unit", "unit", "down", "shuffle4", "bn", "dw", "slices", "pool"]), min_size=1, max_size=5),
       end=st.sampled_from(["conv", "head", "output"]), target=st.sampled_from(["cortex-m", "cpu"]))
@example(dim=8, kinds=["down"] * 4, end="conv", target="cortex-m")  # a 1x1 output needs no conversion back
def test_random_shuffle_networks_keep_their_outputs(dim, kinds, end, target):
    """ShuffleNet-like stacks of units, shuffles, channel-wise ops and slices, ending in a conv,
    a pooled linear head or the graph output: planned with the carrier, their outputs stay
    those of eager, and every shuffle a weighted sum ends is gone."""
    ends = {"conv": lambda: nn.Conv2d(dim, 6, 1), "head": lambda: Head(dim), "output": lambda: nn.Identity()}
    model = _eval(Stem(nn.Sequential(*[_layer(k, dim) for k in kinds], ends[end]()), dim))
    r = check_plan(model, (torch.randn(1, 3, 16, 16),), target=target, atol=1e-4)
    shuffles = sum(k in ("unit", "down", "shuffle4") for k in kinds)
    if end != "output" and shuffles:
        assert r.report.rewrites.get("carry_channel_order", 0) >= 1, r.report.rewrites
        # the input's conversion, and the conv's output back to NCHW unless it is 1x1
        spatial = 16 >> min(kinds.count("down"), 4)
        assert r.report.transposes_after == (1 if end == "head" or spatial == 1 else 2), r.report.to_dict()
