"""Channel permutations that only weighted sums read are folded into their weights."""
import pytest
import torch
from torch import nn

import layoutopt
from helpers import assert_rewrite, check_plan
from layoutopt.rewrites import FoldChannelPermutation
from layoutopt.rewrites.fold_channel_permutation import channel_gather
from layoutopt.zoo import build
from test_channel_shuffle import Shuffle

RULE = FoldChannelPermutation()


def shuffle(x, g=2):
    n, c, h, w = x.shape
    return x.view(n, g, c // g, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleThen(nn.Module):
    """A channel shuffle read by ``readers``: convs, a pooled linear head, or something else."""

    def __init__(self, readers=("conv",), groups=1):
        super().__init__()
        self.readers = readers
        self.conv = nn.Conv2d(8, 6, 3, padding=1, groups=groups)
        self.conv2 = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = shuffle(torch.relu(x))
        outs = []
        for r in self.readers:
            if r == "conv":
                outs.append(self.conv(torch.relu(y)))
            elif r == "conv2":
                outs.append(self.conv2(y * 0.5))
            elif r == "head":
                outs.append(self.fc(y.mean((2, 3))))
            elif r == "split":
                outs.append(y.chunk(2, dim=1)[0] + 1)
        return tuple(outs) if len(outs) > 1 else outs[0]


def x4():
    return (torch.randn(1, 8, 5, 6),)


SHUFFLE = {"aten.view.default": 2, "aten.transpose.int": 1, "aten.contiguous.default": 1}
GONE = {op: 0 for op in SHUFFLE}


@pytest.mark.parametrize("readers", [("conv",), ("head",), ("conv", "conv2", "head")])
def test_shuffle_read_only_by_weighted_sums_disappears(readers):
    r = assert_rewrite(ShuffleThen(readers).eval(), x4(), RULE, before=SHUFFLE, after=GONE, applied=1,
                       exact=False)
    # y[:, i] = x[:, pi[i]] with pi = [0, 4, 1, 5, 2, 6, 3, 7]: each reader's weight gathers its
    # input channels by pi's inverse; the others are untouched
    inverse = torch.tensor([0, 2, 4, 6, 1, 3, 5, 7])
    for reader, name in (("conv", "conv.weight"), ("conv2", "conv2.weight"), ("head", "fc.weight")):
        want = r.source.state_dict[name]
        if reader in readers:
            want = want.index_select(1, inverse)
        assert torch.equal(r.program.state_dict[name], want), name


def test_declined_when_a_split_reads_the_permuted_channels():
    r = assert_rewrite(ShuffleThen(("conv", "split")).eval(), x4(), RULE, before=SHUFFLE,
                       reason="reads the permuted channels and cannot absorb them")
    (reject,) = r.log.rejects
    assert reject.reason.startswith("aten.chunk.default ") and reject.node == "view_1"


def test_declined_for_a_grouped_convolution():
    assert_rewrite(ShuffleThen(("conv",), groups=2).eval(), x4(), RULE, before=SHUFFLE,
                   reason="aten.conv2d.default reads the permuted channels and cannot absorb them")


def test_declined_when_the_permuted_channels_are_an_output():
    class AlsoOut(ShuffleThen):
        def forward(self, x):
            y = shuffle(x)
            return self.conv(torch.relu(y)), y

    assert_rewrite(AlsoOut().eval(), x4(), RULE, before=SHUFFLE,
                   reason="a graph output reads the permuted channels and cannot absorb them")


def test_declined_for_a_weight_that_is_not_a_constant():
    class Runtime(nn.Module):
        def forward(self, x, w):
            return torch.nn.functional.conv2d(shuffle(x), w)

    assert_rewrite(Runtime(), (*x4(), torch.randn(4, 8, 1, 1)), RULE, before=SHUFFLE,
                   reason="the weight of conv2d is not a constant")


def test_declined_for_a_shared_weight():
    class Shared(ShuffleThen):
        def forward(self, x):
            return self.conv(shuffle(x)), self.conv(x)

    assert_rewrite(Shared().eval(), x4(), RULE, before=SHUFFLE, reason="the weight of conv2d is shared with another op")


def test_declined_when_a_tensor_inside_the_permutation_is_read_again():
    class Inner(ShuffleThen):
        def forward(self, x):
            n, c, h, w = x.shape
            t = x.view(n, 2, c // 2, h, w).transpose(1, 2)
            return self.conv(t.contiguous().view(n, c, h, w)), t.sum()

    assert_rewrite(Inner().eval(), x4(), RULE, before=SHUFFLE,
                   reason="a tensor inside the permutation is also read by another op")


def test_a_shuffle_whose_only_reader_is_the_output_is_not_a_candidate():
    assert_rewrite(Shuffle(2).eval(), x4(), RULE, before=SHUFFLE, applied=0)


def test_planned_shuffle_read_only_by_weighted_sums_costs_nothing():
    model = ShuffleThen(("conv", "conv2", "head")).eval()
    # with channels-last inputs no conversion is needed, so the shuffle is the one copy left
    carry = "carry_channel_order"  # which folds the same gathers where it runs
    r = check_plan(model, x4(), target="ethos-u55", io_layout="channels_last", after=0, skip_rules=(carry,))
    kept = layoutopt.optimize(model, x4(), target="ethos-u55", io_layout="channels_last",
                              skip_rules=[RULE.name, carry])
    assert r.report.rewrites == {RULE.name: 1}
    assert kept.report.transposes_after == 1


def test_gather_is_proved_by_index_replay():
    ep = torch.export.export(ShuffleThen().eval(), x4())
    nodes = [n for n in ep.graph.nodes if n.op == "call_function"]
    first = next(i for i, n in enumerate(nodes) if n.target == torch.ops.aten.view.default)
    chain = nodes[first:first + 4]
    assert channel_gather(chain, (1, 8, 5, 6)) == [0, 4, 1, 5, 2, 6, 3, 7]
    assert channel_gather(chain[:2], (1, 8, 5, 6)) is None  # not back to the input's shape


def test_shufflenet_last_shuffle_folds_into_the_head_on_every_target():
    model, inputs = build("shufflenet_nano")
    for target in ("ethos-u55", "xnnpack"):
        r = layoutopt.optimize(model, inputs, target=target, skip_rules=("carry_channel_order",) * (target != "xnnpack"))
        assert r.report.rewrites[RULE.name] == 1
        assert r.report.max_abs_diff <= 1e-5
