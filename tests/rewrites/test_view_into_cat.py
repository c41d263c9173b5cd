"""A view splitting a cat's axis into (inputs, size each) moves into the cat; only data moves.
It runs for cortex-m where the backend lays tensors out (no ATen plan follows)."""
import torch
from torch import nn

import layoutopt
from helpers import assert_rewrite, check_plan
from layoutopt.rewrites import ViewIntoCat
from layoutopt.zoo.models import channel_shuffle

RULE = ViewIntoCat()
VIEW, CAT = "aten.view.default", "aten.cat.default"


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


def x4():
    return (torch.randn(1, 8, 5, 6),)


def test_the_shuffled_cat_becomes_a_cat_of_views():
    r = assert_rewrite(ShuffledCat(), x4(), RULE, before={VIEW: 2, CAT: 1}, after={VIEW: 3, CAT: 1}, applied=1)
    (cat,) = [n for n in r.program.graph.nodes if n.target == torch.ops.aten.cat.default]
    assert [tuple(a.meta["val"].shape) for a in cat.args[0]] == [(1, 1, 4, 5, 6)] * 2 and cat.args[1] == 1


def test_declined_for_unequal_inputs():
    assert_rewrite(ShuffledCat((2, 6)), x4(), RULE, before={VIEW: 2, CAT: 1},
                   reason="the inputs of the cat have unequal sizes [2, 6] along dim 1")


def test_declined_when_the_cat_is_read_again():
    class Twice(ShuffledCat):
        def forward(self, x):
            y = torch.cat((torch.relu(x[:, :4]), torch.sigmoid(x[:, 4:])), dim=1)
            return channel_shuffle(y, 2), y.sum()

    assert_rewrite(Twice(), x4(), RULE, before={VIEW: 2, CAT: 1}, reason="the cat is also read by another op")


def test_a_view_that_is_not_a_split_by_input_is_not_a_candidate():
    class FourWays(ShuffledCat):  # two inputs, a split into four groups
        def forward(self, x):
            y = torch.cat((torch.relu(x[:, :4]), torch.sigmoid(x[:, 4:])), dim=1)
            return channel_shuffle(y, 4)

    assert_rewrite(FourWays(), x4(), RULE, before={VIEW: 2, CAT: 1}, applied=0)


def test_not_in_an_edge_program():
    assert_rewrite(ShuffledCat(), x4(), RULE, dialect="edge", before={"aten.view_copy.default": 2, CAT: 1},
                   applied=0)


def test_runs_for_cortex_m_where_the_backend_lays_tensors_out():
    assert rewritten(ShuffledCat()).report.rewrites[RULE.name] == 1


def test_not_where_the_aten_plan_follows():
    # the plan's strided layouts cannot make the interleaving cat free: the shuffle stays one
    # transpose of the channel factors there
    r = check_plan(ShuffledCat(), x4(), target="cortex-m", exact=True)
    assert RULE.name not in r.report.rewrites


def test_other_targets_keep_the_cat():
    assert RULE.name not in rewritten(ShuffledCat(), target="ethos-u55").report.rewrites
