"""A view splitting a cat's axis into (inputs, size each) moves into the cat; only data moves.
It runs for cortex-m where the backend lays tensors out (no ATen plan follows)."""
import torch
from torch import nn

import layoutopt
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


def rewritten(model, target="cortex-m"):
    x = torch.randn(1, 8, 5, 6)
    r = layoutopt.optimize(model.eval(), (x,), target=target, plan=False)
    assert torch.equal(r.program.module()(x), model(x))
    r.program.graph.lint()
    return r


def test_the_shuffled_cat_becomes_a_cat_of_views():
    r = rewritten(ShuffledCat())
    assert r.report.rewrites[RULE] == 1
    assert op_counts(r.program)["aten.cat.default"] == 1
    cat = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.cat.default)
    assert [tuple(a.meta["val"].shape) for a in cat.args[0]] == [(1, 1, 4, 5, 6)] * 2


def test_declined_for_unequal_inputs():
    r = rewritten(ShuffledCat((2, 6)))
    assert RULE not in r.report.rewrites
    assert any(d["reason"].startswith(RULE) and "unequal sizes" in d["reason"] for d in r.report.to_dict()["declined"])


def test_not_where_the_aten_plan_follows():
    # the plan's strided layouts cannot make the interleaving cat free: the shuffle stays one
    # transpose of the channel factors there
    r = check_plan(ShuffledCat(), (torch.randn(1, 8, 5, 6),), target="cortex-m", exact=True)
    assert RULE not in r.report.rewrites


def test_other_targets_keep_the_cat():
    assert RULE not in rewritten(ShuffledCat(), target="ethos-u55").report.rewrites


def test_idempotent():
    once = rewritten(ShuffledCat())
    twice = layoutopt.optimize(once.program, target="cortex-m", plan=False)
    assert RULE not in twice.report.rewrites
