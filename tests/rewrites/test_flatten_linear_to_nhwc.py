"""A CNN head's flatten -> linear reads NHWC bytes once the weight columns are permuted."""
import torch
import torch.nn.functional as F
from torch import nn

import layoutopt
from helpers import check_plan, op_counts


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.fc = nn.Linear(16 * 5 * 5, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(torch.flatten(x, 1))


def x28():
    return (torch.randn(1, 1, 28, 28),)


def test_lenet_head_needs_no_transpose():
    # a one-channel input is the same bytes in either layout; without the rule the flatten of
    # the channels-last features is the one transpose left, with it there is none
    plain = layoutopt.optimize(LeNet().eval(), x28(), target="ethos-u55", rewrites=False)
    assert plain.report.transposes_after == 1
    assert plain.report.conversions_after[0]["bytes"] == 16 * 5 * 5
    r = check_plan(LeNet().eval(), x28(), after=0)
    assert r.report.rewrites == {"flatten_linear_to_nhwc": 1}
    assert op_counts(r.program)["aten.permute.default"] == 1  # a view of the NHWC bytes


def test_not_applied_where_convolutions_stay_nchw():
    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            return self.fc(torch.relu(x).flatten(1))

    r = layoutopt.optimize(Mlp(), (torch.randn(1, 3, 4, 4),))
    assert r.report.rewrites == {} and r.report.declined == []


def test_rejects_a_shared_weight():
    class Shared(LeNet):
        def forward(self, x):
            return super().forward(x) + self.fc.weight.sum()

    r = layoutopt.optimize(Shared().eval(), x28())
    assert any(d["reason"] == "flatten_linear_to_nhwc: weight is shared with another op" for d in r.report.declined)
    assert r.report.rewrites == {}


def test_idempotent():
    once = layoutopt.optimize(LeNet().eval(), x28())
    twice = layoutopt.optimize(once.program)
    assert twice.report.rewrites == {} and op_counts(twice.program) == op_counts(once.program)
