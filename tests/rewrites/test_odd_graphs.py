"""Rules and planner on odd graphs: int64 tensors, zero-size dims, fan-out from a rewritten op."""
import torch
from torch import nn

import layoutopt
from helpers import check_plan, op_counts


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 4, 3, padding=1)

    def forward(self, x, ids, empty):
        y = torch.relu(self.conv(x))
        # y fans out: a permute view, a reduction and the output itself
        return y, y.permute(0, 2, 1) * 2, y.sum(1), ids.permute(0, 2, 1) + 1, empty.permute(0, 2, 3, 1) + 1


def test_odd_graph_is_planned_and_rewritten_without_incident():
    inputs = (torch.randn(1, 4, 8), torch.arange(24).reshape(1, 4, 6), torch.randn(1, 4, 0, 3))
    r = check_plan(Odd().eval(), inputs, target="ethos-u55")
    assert r.report.rewrites == {"conv1d_to_conv2d": 1}
    assert op_counts(r.program)["aten.conv2d.default"] == 1


def test_multiple_consumers_of_a_flatten_keep_it():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.a = nn.Linear(4 * 4 * 4, 2)
            self.b = nn.Linear(4 * 4 * 4, 2)

        def forward(self, x):
            f = self.conv(x).flatten(1)
            return self.a(f) + self.b(f)

    r = layoutopt.optimize(TwoHeads().eval(), (torch.randn(1, 3, 4, 4),), target="ethos-u55")
    assert "flatten_linear_to_nhwc" not in r.report.rewrites
    assert r.report.bit_exact is not None and r.report.max_abs_diff < 1e-5


def test_a_rule_that_cannot_analyse_a_node_declines_it(monkeypatch):
    from layoutopt.rewrites.fuse_permute_chains import ComposePermutes

    def broken(self, node, edit):
        raise ValueError("no")

    monkeypatch.setattr(ComposePermutes, "match", broken)

    class M(nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 1).permute(0, 2, 1) + 1

    r = layoutopt.optimize(M(), (torch.randn(1, 3, 4),))
    assert any(d["reason"] == "compose_permutes: could not analyse the node (ValueError: no)"
               for d in r.report.declined)
    assert r.report.bit_exact


def test_permute_of_a_split_piece_is_composed():
    class M(nn.Module):
        def forward(self, x):
            a, b = x.split(2, dim=1)
            return a.permute(0, 2, 1).transpose(1, 2) * b
    r = check_plan(M(), (torch.randn(1, 4, 5),), exact=True)
    assert r.report.rewrites == {"compose_permutes": 1}
