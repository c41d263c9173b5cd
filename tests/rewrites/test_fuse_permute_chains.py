"""Permute chains composed or cancelled, constant permutes folded; property-tested."""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import layoutopt
from helpers import check_plan, op_counts

PERMUTES = ("aten.permute.default", "aten.transpose.int", "aten.t.default")


def permutes(program):
    counts = op_counts(program)
    return sum(counts[p] for p in PERMUTES)


class Chain(nn.Module):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def forward(self, x):
        for kind, a in self.steps:
            x = x.permute(a) if kind == "p" else x.transpose(*a)
        return x * 2


@st.composite
def chains(draw):
    rank = draw(st.integers(2, 5))
    steps = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            steps.append(("p", tuple(draw(st.permutations(range(rank))))))
        else:
            steps.append(("t", tuple(draw(st.lists(st.integers(0, rank - 1), min_size=2, max_size=2, unique=True)))))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    return shape, steps


@given(chains())
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_permute_chain_becomes_at_most_one_permute_bit_exactly(chain):
    shape, steps = chain
    r = check_plan(Chain(steps), (torch.randn(shape),), target="xnnpack", exact=True)
    assert permutes(r.program) <= 1


def test_inverse_pair_cancels():
    r = check_plan(Chain([("p", (0, 2, 3, 1)), ("p", (0, 3, 1, 2))]), (torch.randn(1, 3, 4, 5),), exact=True)
    assert permutes(r.program) == 0 and r.report.rewrites == {"compose_permutes": 1}


def test_constant_permute_is_folded_at_compile_time():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.randn(3, 4, 5))

        def forward(self, x):
            return x + self.table.permute(2, 0, 1)

    r = check_plan(M(), (torch.randn(5, 3, 4),), exact=True)
    assert permutes(r.program) == 0 and r.report.rewrites == {"fold_constant_permute": 1}


def test_shared_constant_is_not_folded():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return x + self.table.t() + self.table

    r = layoutopt.optimize(M(), (torch.randn(4, 4),))
    assert any(d["reason"] == "fold_constant_permute: constant is shared with another op" for d in r.report.declined)
    assert permutes(r.program) == 1


def test_idempotent():
    once = layoutopt.optimize(Chain([("p", (0, 2, 3, 1)), ("t", (1, 2))]), (torch.randn(1, 3, 4, 5),))
    twice = layoutopt.optimize(once.program)
    assert twice.report.rewrites == {} and op_counts(twice.program) == op_counts(once.program)
