"""A channel shuffle on NCHW becomes one transpose of the channel axis's two factors, with
permutes that restate NCHW <-> NHWC around it; pure data movement, so bit-exact."""
import pytest
import torch
from torch import nn

import layoutopt
from helpers import check_plan, op_counts
from layoutopt.rewrites.channel_shuffle import shuffle_matrix
from layoutopt.zoo.models import channel_shuffle

RULE = "channel_shuffle_to_channels_last"
CONV_RULE = "channel_shuffle_to_conv"


class Shuffle(nn.Module):
    """A shuffle of a max-pool's output (channels-last on NHWC targets, and exact in any layout)."""

    def __init__(self, groups):
        super().__init__()
        self.groups, self.pool = groups, nn.MaxPool2d(2)

    def forward(self, x):
        return channel_shuffle(torch.relu(self.pool(x)), self.groups)


def reasons(result):
    return [d["reason"] for d in result.report.declined if d["reason"].startswith(RULE)]


@pytest.mark.parametrize("groups", [2, 4])
def test_shuffle_becomes_one_transpose_of_the_channel_factors(groups):
    r = check_plan(Shuffle(groups), (torch.randn(2, 8, 6, 10),), target="ethos-u55", before=3, after=3,
                   exact=True)
    counts = op_counts(r.program)
    assert r.report.rewrites[RULE] == 1
    assert counts["aten.view.default"] == 0 and counts["aten.contiguous.default"] == 0
    assert counts["aten.transpose.int"] == 1 and counts["aten.reshape.default"] == 2


@pytest.mark.parametrize("groups", [1, 8])
def test_trivial_shuffle_is_removed(groups):
    r = check_plan(Shuffle(groups), (torch.randn(1, 8, 4, 4),), exact=True)
    counts = op_counts(r.program)
    assert r.report.rewrites == {RULE: 1}
    assert counts["aten.transpose.int"] == 0 and counts["aten.view.default"] == 0


def test_shuffle_in_a_network_keeps_its_outputs():
    from layoutopt.zoo import build

    model, inputs = build("shufflenet_nano")
    r = check_plan(model, inputs, target="ethos-u55", before=25, after=3, atol=1e-5)
    # the last shuffle feeds only the pooled head: folded into its weights instead
    assert r.report.rewrites == {RULE: 2, "fold_channel_permutation": 1}


def test_declined_when_an_inner_tensor_has_another_reader():
    class Twice(nn.Module):
        def forward(self, x):
            v = x.view(1, 2, 4, 3, 3)
            return v.transpose(1, 2).contiguous().view(1, 8, 3, 3), v.sum()

    r = layoutopt.optimize(Twice(), (torch.randn(1, 8, 3, 3),), target="ethos-u55")
    assert reasons(r) == [f"{RULE}: a tensor inside the shuffle is also read by another op"]
    assert r.report.rewrites == {}
    assert op_counts(r.program)["aten.view.default"] == 2


def test_declined_when_the_input_is_not_channels_last():
    class Plain(nn.Module):
        def forward(self, x):
            return channel_shuffle(x * 2, 2)

    r = check_plan(Plain(), (torch.randn(1, 8, 3, 3),), before=1, after=1, exact=True)
    assert reasons(r) == [f"{RULE}: the input is not produced channels-last on ethos-u55"]
    assert r.report.rewrites == {}


def test_declined_when_the_views_are_not_a_channel_split():
    class WidthSplit(nn.Module):
        def forward(self, x):  # splits W into (2, 3), swaps C with H: not a channel shuffle
            return x.view(1, 4, 6, 3, 2).transpose(1, 2).contiguous().view(1, 4, 6, 6)

    r = layoutopt.optimize(WidthSplit(), (torch.randn(1, 4, 6, 6),), target="ethos-u55")
    assert reasons(r) == [f"{RULE}: the views are not a split of the channel axis into g*k and back"]
    assert r.report.rewrites == {}


@pytest.mark.parametrize("target,rule", [("ethos-u55", RULE), ("ethos-u85", CONV_RULE)])
def test_idempotent(target, rule):
    first = layoutopt.optimize(Shuffle(2), (torch.randn(1, 8, 4, 4),), target=target)
    second = layoutopt.optimize(first.program, (torch.randn(1, 8, 4, 4),), target=target)
    assert first.report.rewrites == {rule: 1} and rule not in second.report.rewrites
    assert op_counts(second.program) == op_counts(first.program)


@pytest.mark.parametrize("channels,groups", [(8, 2), (12, 3), (12, 4)])
def test_the_permutation_matrix_is_the_shuffle(channels, groups):
    x = torch.randn(2, channels, 3, 3)
    weight = shuffle_matrix(channels, groups)[:, :, None, None]
    assert torch.equal(torch.nn.functional.conv2d(x, weight), channel_shuffle(x, groups))


def test_on_ethos_u85_the_shuffle_becomes_a_permutation_conv():
    r = check_plan(Shuffle(4), (torch.randn(1, 8, 6, 10),), target="ethos-u85", before=3, after=2, exact=True)
    counts = op_counts(r.program)
    assert r.report.rewrites == {CONV_RULE: 1}
    assert counts["aten.conv2d.default"] == 1 and counts["aten.view.default"] == 0
    assert counts["aten.transpose.int"] == 0
    (added,) = [k for k in r.program.state_dict if k.endswith("_shuffle_weight")]
    assert torch.equal(r.program.state_dict[added], shuffle_matrix(8, 4)[:, :, None, None])


def test_xnnpack_keeps_the_shuffle_as_written():
    r = layoutopt.optimize(Shuffle(2), (torch.randn(1, 8, 4, 4),), target="xnnpack")
    assert r.report.rewrites == {}
