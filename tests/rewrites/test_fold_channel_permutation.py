"""Channel permutations that only weighted sums read are folded into their weights."""
import pytest
import torch
from torch import nn

import layoutopt
from helpers import check_plan, op_counts
from layoutopt.rewrites.fold_channel_permutation import channel_gather
from layoutopt.zoo import build
from test_channel_shuffle import Shuffle

RULE = "fold_channel_permutation"


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


@pytest.mark.parametrize("readers", [("conv",), ("head",), ("conv", "conv2", "head")])
def test_shuffle_read_only_by_weighted_sums_disappears(readers):
    model = ShuffleThen(readers).eval()
    # with channels-last inputs no conversion is needed, so the shuffle is the one copy left
    r = check_plan(model, x4(), target="ethos-u55", io_layout="channels_last", after=0)
    kept = layoutopt.optimize(model, x4(), target="ethos-u55", io_layout="channels_last", skip_rules=[RULE])
    assert r.report.rewrites == {RULE: 1}
    assert kept.report.transposes_after == 1
    counts = op_counts(r.program)
    assert counts["aten.transpose.int"] + counts["aten.permute.default"] + counts["aten.view.default"] == 0


def test_declined_when_a_reader_cannot_absorb_it():
    r = layoutopt.optimize(ShuffleThen(("conv", "split")).eval(), x4(), target="ethos-u55")
    assert RULE not in r.report.rewrites
    assert any(d["reason"].startswith(f"{RULE}: aten.") and d["reason"].endswith(
        "reads the permuted channels and cannot absorb them") for d in r.report.declined), r.report.declined


def test_declined_for_a_grouped_convolution():
    r = layoutopt.optimize(ShuffleThen(("conv",), groups=2).eval(), x4(), target="ethos-u55")
    assert RULE not in r.report.rewrites
    assert any(d["reason"] == f"{RULE}: aten.conv2d.default reads the permuted channels and cannot absorb them"
               for d in r.report.declined), r.report.declined


def test_declined_for_a_shared_weight():
    class Shared(ShuffleThen):
        def forward(self, x):
            return self.conv(shuffle(x)), self.conv(x)

    r = layoutopt.optimize(Shared().eval(), x4(), target="ethos-u55")
    assert RULE not in r.report.rewrites
    assert any(d["reason"] == f"{RULE}: the weight of conv2d is shared with another op" for d in r.report.declined)


def test_a_shuffle_whose_only_reader_is_the_output_is_not_a_candidate():
    r = layoutopt.optimize(Shuffle(2).eval(), x4(), target="xnnpack")
    assert RULE not in r.report.rewrites and not any(RULE in d["reason"] for d in r.report.declined)


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
        r = layoutopt.optimize(model, inputs, target=target)
        assert r.report.rewrites[RULE] == 1
        assert r.report.max_abs_diff <= 1e-5


def test_idempotent():
    once = layoutopt.optimize(ShuffleThen(("conv", "head")).eval(), x4(), target="ethos-u55")
    twice = layoutopt.optimize(once.program, target="ethos-u55")
    assert twice.report.rewrites == {} and op_counts(twice.program) == op_counts(once.program)
