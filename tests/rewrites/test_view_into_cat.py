"""A view splitting a cat's axis into (inputs, size each) moves into the cat; only data moves."""
import torch
from torch import nn

from helpers import check_plan, op_counts
from layoutopt.zoo.models import channel_shuffle

RULE = "view_into_cat"


class ShuffledCat(nn.Module):
    def __init__(self, sizes=(4, 4)):
        super().__init__()
        self.sizes = sizes

    def forward(self, x):
        a, b = torch.relu(x[:, :self.sizes[0]]), torch.sigmoid(x[:, self.sizes[0]:])
        return channel_shuffle(torch.cat((a, b), dim=1), 2)


def test_the_shuffled_cat_becomes_a_cat_of_views():
    r = check_plan(ShuffledCat(), (torch.randn(1, 8, 5, 6),), target="cortex-m", exact=True)
    counts = op_counts(r.program)
    assert r.report.rewrites[RULE] == 1
    assert counts["aten.cat.default"] == 1
    cat = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.cat.default)
    assert [tuple(a.meta["val"].shape) for a in cat.args[0]] == [(1, 1, 4, 5, 6)] * 2


def test_declined_for_unequal_inputs():
    r = check_plan(ShuffledCat((2, 6)), (torch.randn(1, 8, 5, 6),), target="cortex-m", exact=True)
    assert RULE not in r.report.rewrites


def test_other_targets_keep_the_cat():
    r = check_plan(ShuffledCat(), (torch.randn(1, 8, 5, 6),), target="ethos-u55", exact=True)
    assert RULE not in r.report.rewrites


def test_idempotent():
    import layoutopt

    once = layoutopt.optimize(ShuffledCat().eval(), (torch.randn(1, 8, 5, 6),), target="cortex-m", plan=False)
    twice = layoutopt.optimize(once.program, target="cortex-m", plan=False)
    assert RULE not in twice.report.rewrites
