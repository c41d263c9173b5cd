"""A channel shuffle on NCHW becomes one transpose of the channel axis's two factors, with
permutes that restate NCHW <-> NHWC around it, or, on a target with a fast MAC array (the conv
form), a 1x1 conv with a permutation weight; both exact."""
import dataclasses

import pytest
import torch
from torch import nn

import layoutopt
from helpers import assert_rewrite, check_plan
from layoutopt.rewrites import ChannelShuffleToChannelsLast, ChannelShuffleToConv
from layoutopt.rewrites.channel_shuffle import shuffle_matrix
from layoutopt.targets import get_target
from layoutopt.zoo.models import channel_shuffle

U55 = get_target("ethos-u55")
# Ethos-U85 with the conv form (its ExecuTorch flow carries shuffles as channel orders instead)
U85 = dataclasses.replace(get_target("ethos-u85"), channel_shuffle="conv")
VIEW, TRANSPOSE, CONTIGUOUS = "aten.view.default", "aten.transpose.int", "aten.contiguous.default"
PERMUTE, RESHAPE, CONV2D = "aten.permute.default", "aten.reshape.default", "aten.conv2d.default"
SHUFFLE = {VIEW: 2, TRANSPOSE: 1, CONTIGUOUS: 1}
GONE = {VIEW: 0, TRANSPOSE: 0, CONTIGUOUS: 0}
BOTH = pytest.mark.parametrize("rule", [ChannelShuffleToChannelsLast(U55), ChannelShuffleToConv(U85)],
                               ids=lambda r: r.name)


class Shuffle(nn.Module):
    """A shuffle of a max-pool's output (channels-last on NHWC targets, and exact in any layout)."""

    def __init__(self, groups):
        super().__init__()
        self.groups, self.pool = groups, nn.MaxPool2d(2)

    def forward(self, x):
        return channel_shuffle(torch.relu(self.pool(x)), self.groups)


def x4():
    return (torch.randn(1, 8, 4, 6),)


@pytest.mark.parametrize("groups", [2, 4])
def test_shuffle_becomes_one_transpose_of_the_channel_factors(groups):
    r = assert_rewrite(Shuffle(groups), (torch.randn(2, 8, 6, 10),), ChannelShuffleToChannelsLast(U55),
                       before=SHUFFLE, after={**GONE, TRANSPOSE: 1, PERMUTE: 2, RESHAPE: 2}, applied=1)
    (transpose,) = [n for n in r.program.graph.nodes if n.target == torch.ops.aten.transpose.int]
    assert tuple(transpose.args[0].meta["val"].shape) == (2 * 3 * 5, groups, 8 // groups)  # [N*H*W, g, k]


@pytest.mark.parametrize("groups", [1, 8])
@BOTH
def test_trivial_shuffle_is_removed(rule, groups):
    # the transpose swaps a size-1 dim: already contiguous, so export drops the contiguous()
    assert_rewrite(Shuffle(groups), x4(), rule, before={**SHUFFLE, CONTIGUOUS: 0}, after=GONE, applied=1)


def test_on_ethos_u85_the_shuffle_becomes_a_permutation_conv():
    r = assert_rewrite(Shuffle(4), x4(), ChannelShuffleToConv(U85), before=SHUFFLE, after={**GONE, CONV2D: 1},
                       applied=1)
    (added,) = set(r.program.state_dict) - set(r.source.state_dict)
    assert added.endswith("_shuffle_weight")
    assert torch.equal(r.program.state_dict[added], shuffle_matrix(8, 4)[:, :, None, None])


def test_in_an_edge_program_the_permutation_conv_is_a_convolution():
    assert_rewrite(Shuffle(2), x4(), ChannelShuffleToConv(U85), dialect="edge",
                   before={"aten.view_copy.default": 2, "aten.permute_copy.default": 1,
                           "dim_order_ops._clone_dim_order.default": 1},
                   after={"aten.view_copy.default": 0, "aten.permute_copy.default": 0,
                          "dim_order_ops._clone_dim_order.default": 0, "aten.convolution.default": 1}, applied=1)


def test_channels_last_form_is_declined_in_an_edge_program():
    assert_rewrite(Shuffle(2), x4(), ChannelShuffleToChannelsLast(U55), dialect="edge",
                   before={"aten.view_copy.default": 2, "aten.permute_copy.default": 1},
                   reason="in an edge program the permute back to NCHW is a copy (permute_copy), not a view of "
                          "channels-last data")


@BOTH
def test_declined_when_an_inner_tensor_has_another_reader(rule):
    class Twice(nn.Module):
        def forward(self, x):
            v = torch.relu(x).view(1, 2, 4, 3, 3)
            return v.transpose(1, 2).contiguous().view(1, 8, 3, 3), v.sum()

    assert_rewrite(Twice(), (torch.randn(1, 8, 3, 3),), rule, before=SHUFFLE,
                   reason="a tensor inside the shuffle is also read by another op")


@BOTH
def test_declined_when_the_input_is_not_channels_last(rule):
    class Plain(nn.Module):
        def forward(self, x):
            return channel_shuffle(x * 2, 2)

    assert_rewrite(Plain(), (torch.randn(1, 8, 3, 3),), rule, before=SHUFFLE,
                   reason=f"the input is not produced channels-last on {rule.target.name}")


@BOTH
def test_declined_when_the_views_are_not_a_channel_split(rule):
    class WidthSplit(nn.Module):
        def forward(self, x):  # splits W into (2, 3), swaps C with H: not a channel shuffle
            return x.view(1, 4, 6, 3, 2).transpose(1, 2).contiguous().view(1, 4, 6, 6)

    assert_rewrite(WidthSplit(), (torch.randn(1, 4, 6, 6),), rule, before=SHUFFLE,
                   reason="the views are not a split of the channel axis into g*k and back")


def test_a_transpose_of_other_dims_is_not_a_candidate():
    class Spatial(nn.Module):
        def forward(self, x):
            return torch.relu(x).view(1, 8, 2, 2, 3).transpose(2, 3).contiguous().view(1, 8, 4, 3)

    assert_rewrite(Spatial(), (torch.randn(1, 8, 4, 3),), ChannelShuffleToChannelsLast(U55), before=SHUFFLE,
                   applied=0)


@pytest.mark.parametrize("channels,groups", [(8, 2), (12, 3), (12, 4)])
def test_the_permutation_matrix_is_the_shuffle(channels, groups):
    x = torch.randn(2, channels, 3, 3)
    weight = shuffle_matrix(channels, groups)[:, :, None, None]
    assert torch.equal(torch.nn.functional.conv2d(x, weight), channel_shuffle(x, groups))


def test_shuffle_in_a_network_keeps_its_outputs():
    from layoutopt.zoo import build

    model, inputs = build("shufflenet_nano")
    r = check_plan(model, inputs, target="ethos-u55", before=25, after=3, atol=1e-5,
                   skip_rules=("carry_channel_order",))
    # the last shuffle feeds only the pooled head: folded into its weights instead
    assert r.report.rewrites == {"channel_shuffle_to_channels_last": 2, "fold_channel_permutation": 1}


def test_planned_on_ethos_u85_the_permutation_conv_saves_a_transpose():
    r = check_plan(Shuffle(4), (torch.randn(1, 8, 6, 10),), target=U85, before=3, after=2, exact=True)
    assert r.report.rewrites == {"channel_shuffle_to_conv": 1}


def test_xnnpack_keeps_the_shuffle_as_written():
    r = layoutopt.optimize(Shuffle(2), x4(), target="xnnpack")
    assert r.report.rewrites == {}
