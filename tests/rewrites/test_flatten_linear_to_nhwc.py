"""A CNN head's flatten -> linear reads NHWC bytes once the weight columns are permuted."""
import torch
import torch.nn.functional as F
from torch import nn

import layoutopt
from helpers import assert_rewrite, check_plan, op_counts
from layoutopt.rewrites import FlattenLinearToNHWC, rules_for
from layoutopt.targets import Target, get_target

RULE = FlattenLinearToNHWC(get_target("ethos-u55"))
PERMUTE, FLATTEN, LINEAR = "aten.permute.default", "aten.flatten.using_ints", "aten.linear.default"


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


def test_lenet_head_reads_the_features_in_nhwc_order():
    model = LeNet().eval()
    r = assert_rewrite(model, x28(), RULE, before={PERMUTE: 0, FLATTEN: 1, LINEAR: 1},
                       after={PERMUTE: 1, FLATTEN: 1, LINEAR: 1}, applied=1, exact=False)
    (permute,) = [n for n in r.program.graph.nodes if n.target == torch.ops.aten.permute.default]
    assert permute.args[1] == [0, 2, 3, 1] and permute.args[0].target == torch.ops.aten.max_pool2d.default
    # the weight's columns follow: column (h, w, c) is the old column (c, h, w)
    w = model.fc.weight.detach()
    assert torch.equal(r.program.state_dict["fc.weight"],
                       w.reshape(10, 16, 5, 5).permute(0, 2, 3, 1).reshape(10, 400))
    assert torch.equal(r.program.state_dict["fc.bias"], model.fc.bias.detach())


def test_in_an_edge_program_the_decomposed_linear_reads_nhwc_too():
    assert_rewrite(LeNet().eval(), x28(), RULE, dialect="edge",
                   before={"aten.permute_copy.default": 1, "aten.view_copy.default": 1, "aten.addmm.default": 1},
                   after={"aten.permute_copy.default": 2, "aten.view_copy.default": 1, "aten.addmm.default": 1},
                   applied=1, exact=False)


def test_lenet_head_needs_no_transpose_once_planned():
    # a one-channel input is the same bytes in either layout; without the rule the flatten of
    # the channels-last features is the one transpose left, with it there is none
    plain = layoutopt.optimize(LeNet().eval(), x28(), target="ethos-u55", rewrites=False)
    assert plain.report.transposes_after == 1
    assert plain.report.conversions_after[0]["bytes"] == 16 * 5 * 5
    r = check_plan(LeNet().eval(), x28(), after=0)
    assert r.report.rewrites == {"flatten_linear_to_nhwc": 1}
    assert op_counts(r.program)[PERMUTE] == 1  # a view of the NHWC bytes


def test_features_not_produced_channels_last_are_not_a_candidate():
    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            return self.fc(torch.relu(x).flatten(1))

    assert_rewrite(Mlp(), (torch.randn(1, 3, 4, 4),), RULE, before={FLATTEN: 1, LINEAR: 1}, applied=0)


def test_a_flatten_read_twice_is_not_a_candidate():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.a, self.b = nn.Linear(4 * 4 * 4, 2), nn.Linear(4 * 4 * 4, 2)

        def forward(self, x):
            f = self.conv(x).flatten(1)
            return self.a(f) + self.b(f)

    assert_rewrite(TwoHeads().eval(), (torch.randn(1, 3, 4, 4),), RULE, before={FLATTEN: 1, LINEAR: 2}, applied=0)


def test_rejects_a_shared_weight():
    class Shared(LeNet):
        def forward(self, x):
            return super().forward(x) + self.fc.weight.sum()

    assert_rewrite(Shared().eval(), x28(), RULE, before={FLATTEN: 1, LINEAR: 1},
                   reason="weight is shared with another op")


def test_rejects_a_weight_that_is_not_a_constant():
    class Runtime(LeNet):
        def forward(self, x, w):
            x = F.max_pool2d(F.relu(self.c2(F.max_pool2d(F.relu(self.c1(x)), 2))), 2)
            return F.linear(torch.flatten(x, 1), w)

    assert_rewrite(Runtime().eval(), (*x28(), torch.randn(10, 400)), RULE, before={FLATTEN: 1, LINEAR: 1},
                   reason="weight is not a constant")


def test_rejects_a_bias_that_is_not_a_constant():
    class Runtime(LeNet):
        def forward(self, x, b):
            x = F.max_pool2d(F.relu(self.c2(F.max_pool2d(F.relu(self.c1(x)), 2))), 2)
            return F.linear(torch.flatten(x, 1), self.fc.weight, b)

    assert_rewrite(Runtime().eval(), (*x28(), torch.randn(10)), RULE, before={FLATTEN: 1, LINEAR: 1},
                   reason="bias is not a constant")


def test_not_in_the_rules_where_convolutions_stay_nchw():
    nchw = Target("nchw", "convolutions and matmuls in any layout", frozenset(), frozenset(), None)
    assert "flatten_linear_to_nhwc" not in [rule.name for rule in rules_for(nchw)]
    assert "flatten_linear_to_nhwc" in [rule.name for rule in rules_for(get_target("ethos-u55"))]
