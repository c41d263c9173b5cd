"""Permute chains composed or cancelled, constant permutes folded: each rule alone, and
property-tested against a model of the rule."""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import layoutopt
from helpers import assert_rewrite, check_plan, op_counts
from layoutopt.rewrites import ComposePermutes, FoldConstantPermute

PERMUTE, TRANSPOSE, T = "aten.permute.default", "aten.transpose.int", "aten.t.default"
PERMUTES = (PERMUTE, TRANSPOSE, T)


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


class Table(nn.Module):
    """A parameter read through a permute (and, when ``shared``, read again as it is)."""

    def __init__(self, shared=False):
        super().__init__()
        self.shared = shared
        self.table = nn.Parameter(torch.randn(3, 4, 5))

    def forward(self, x):
        y = x + self.table.permute(2, 0, 1)
        return y + self.table.sum() if self.shared else y


def x345():
    return (torch.randn(1, 3, 4, 5),)


# -- compose_permutes: no rejection reason; not a candidate unless two permutes meet or one is the identity

def test_inverse_pair_cancels():
    assert_rewrite(Chain([("p", (0, 2, 3, 1)), ("p", (0, 3, 1, 2))]), x345(), ComposePermutes(),
                   before={PERMUTE: 2}, after={PERMUTE: 0}, applied=1)


def test_permute_of_a_transpose_is_one_permute():
    r = assert_rewrite(Chain([("p", (0, 2, 3, 1)), ("t", (1, 2))]), x345(), ComposePermutes(),
                       before={PERMUTE: 1, TRANSPOSE: 1}, after={PERMUTE: 1, TRANSPOSE: 0}, applied=1)
    (permute,) = [n for n in r.program.graph.nodes if n.target == torch.ops.aten.permute.default]
    assert permute.args[1] == [0, 3, 2, 1]  # NHWC, then H and W swapped: (N, W, H, C)


def test_three_permutes_become_one():
    chain = Chain([("p", (0, 2, 3, 1)), ("t", (1, 2)), ("p", (0, 2, 1, 3))])
    assert_rewrite(chain, x345(), ComposePermutes(), before={PERMUTE: 2, TRANSPOSE: 1},
                   after={PERMUTE: 1, TRANSPOSE: 0}, applied=2)


def test_identity_permute_is_removed():
    assert_rewrite(Chain([("p", (0, 1, 2, 3))]), x345(), ComposePermutes(), before={PERMUTE: 1},
                   after={PERMUTE: 0}, applied=1)


def test_one_permute_is_not_a_candidate():
    assert_rewrite(Chain([("p", (0, 2, 3, 1))]), x345(), ComposePermutes(), before={PERMUTE: 1}, applied=0)


def test_a_permute_of_a_split_piece_is_composed():
    class M(nn.Module):
        def forward(self, x):
            a, b = x.split(2, dim=1)
            return a.permute(0, 2, 1).transpose(1, 2) * b

    assert_rewrite(M(), (torch.randn(1, 4, 5),), ComposePermutes(), before={PERMUTE: 1, TRANSPOSE: 1},
                   after={PERMUTE: 0, TRANSPOSE: 0}, applied=1)


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


def composed(steps, rank):
    """The ops ``compose_permutes`` leaves of ``steps``, in graph order: identities go, each
    permute meeting a pending one becomes their composition (or nothing, when that is the
    identity); a lone permute keeps the op it was written with."""
    identity, pending = tuple(range(rank)), None  # (dims, op) of the permute the next one meets
    for kind, a in steps:
        dims = tuple(a) if kind == "p" else tuple(a[1] if d == a[0] else a[0] if d == a[1] else d for d in identity)
        if dims == identity:
            continue
        if pending is None:
            pending = (dims, PERMUTE if kind == "p" else TRANSPOSE)
        else:
            both = tuple(pending[0][d] for d in dims)  # permute by the pending dims, then by these
            pending = None if both == identity else (both, PERMUTE)
    return {PERMUTE: 0, TRANSPOSE: 0, **({pending[1]: 1} if pending else {})}


@given(chains())
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_permute_chain_becomes_what_the_law_says_bit_exactly(chain):
    shape, steps = chain
    before = {PERMUTE: sum(k == "p" for k, _ in steps), TRANSPOSE: sum(k == "t" for k, _ in steps)}
    after = composed(steps, len(shape))
    changed = after != before
    assert_rewrite(Chain(steps), (torch.randn(shape),), ComposePermutes(), before=before,
                   after=after if changed else None, applied=None if changed else 0)


@given(chains())
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_permute_chain_is_planned_with_at_most_one_permute(chain):
    shape, steps = chain
    r = check_plan(Chain(steps), (torch.randn(shape),), target="xnnpack", exact=True)
    assert permutes(r.program) <= 1


# -- fold_constant_permute

def test_constant_permute_is_folded_at_compile_time():
    r = assert_rewrite(Table(), (torch.randn(5, 3, 4),), FoldConstantPermute(), before={PERMUTE: 1},
                       after={PERMUTE: 0}, applied=1)
    (table,) = r.program.state_dict.values()
    assert tuple(table.shape) == (5, 3, 4) and table.is_contiguous()
    assert torch.equal(table, r.source.state_dict["table"].permute(2, 0, 1))


def test_fold_constant_permute_rejects_a_shared_constant():
    assert_rewrite(Table(shared=True), (torch.randn(5, 3, 4),), FoldConstantPermute(), before={PERMUTE: 1},
                   reason="constant is shared with another op")


def test_a_permute_of_an_activation_is_not_folded():
    assert_rewrite(Chain([("t", (0, 1))]), (torch.randn(4, 4),), FoldConstantPermute(), before={TRANSPOSE: 1},
                   applied=0)


def test_a_transposed_weight_is_folded():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 6))

        def forward(self, x):
            return x @ self.w.t()

    # the values are moved exactly, but the matmul now reads a dense weight instead of a
    # transposed view, and BLAS may sum in another order
    assert_rewrite(M(), (torch.randn(2, 6),), FoldConstantPermute(), before={T: 1}, after={T: 0}, applied=1,
                   exact=False)


# -- both, as the pipeline runs them

def test_planned_inverse_pair_cancels():
    r = check_plan(Chain([("p", (0, 2, 3, 1)), ("p", (0, 3, 1, 2))]), x345(), exact=True)
    assert permutes(r.program) == 0 and r.report.rewrites == {"compose_permutes": 1}


def test_pipeline_idempotent():
    once = layoutopt.optimize(Chain([("p", (0, 2, 3, 1)), ("t", (1, 2))]), x345())
    twice = layoutopt.optimize(once.program)
    assert twice.report.rewrites == {} and op_counts(twice.program) == op_counts(once.program)
