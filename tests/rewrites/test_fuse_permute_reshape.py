"""permute -> reshape -> permute becomes one permute and a reshape (or a reshape alone) when
index replay proves the two move every element alike; pure data movement, so bit-exact."""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from helpers import assert_rewrite, check_plan, op_counts
from layoutopt.ir.perm import Perm
from layoutopt.rewrites import FusePermuteReshapePermute
from layoutopt.rewrites.fuse_permute_reshape import single_permute_form
from layoutopt.targets import Target, get_target

RULE = "fuse_permute_reshape_permute"
PERMUTE, RESHAPE, CONTIGUOUS = "aten.permute.default", "aten.reshape.default", "aten.contiguous.default"
PERMUTES = (PERMUTE, "aten.transpose.int")


def permutes(program):
    return sum(op_counts(program)[p] for p in PERMUTES)


class Chain(nn.Module):
    def __init__(self, p, shape, q, contiguous=False):
        super().__init__()
        self.p, self.shape, self.q, self.contiguous = p, shape, q, contiguous

    def forward(self, x):
        y = x.permute(self.p)
        y = y.contiguous() if self.contiguous else y
        return y.reshape(self.shape).permute(self.q) * 2


U55, XNNPACK = get_target("ethos-u55"), get_target("xnnpack")


def test_split_and_move_back_is_a_reshape_alone():
    # NHWC -> NCHW, split C into (2, 3), move the pieces back last: only the reshape remains
    model = Chain((0, 3, 1, 2), (1, 2, 3, 4, 5), (0, 3, 4, 1, 2), contiguous=True)
    assert_rewrite(model, (torch.randn(1, 4, 5, 6),), FusePermuteReshapePermute(XNNPACK),
                   before={PERMUTE: 2, CONTIGUOUS: 1, RESHAPE: 1}, after={PERMUTE: 0, CONTIGUOUS: 0, RESHAPE: 1},
                   applied=1)


def test_two_transposes_around_a_merge_become_one_reshape():
    # (N, H, W, C) -> (N, C, H, W) -> (N, C, H*W) -> (N, H*W, C) is one merge of H and W
    model = Chain((0, 3, 1, 2), (2, 6, 20), (0, 2, 1))
    assert_rewrite(model, (torch.randn(2, 4, 5, 6),), FusePermuteReshapePermute(XNNPACK),
                   before={PERMUTE: 2, RESHAPE: 1}, after={PERMUTE: 0, RESHAPE: 1}, applied=1)


def test_a_chain_with_one_permute_left_keeps_it_first():
    # (A, B, C) -> (B, A, C) -> (B, A*C) -> (A*C, B): one permute of x, then the merge
    model = Chain((1, 0, 2), (3, 8), (1, 0))
    r = assert_rewrite(model, (torch.randn(2, 3, 4),), FusePermuteReshapePermute(XNNPACK),
                       before={PERMUTE: 2, RESHAPE: 1}, after={PERMUTE: 1, RESHAPE: 1}, applied=1)
    (permute,) = [n for n in r.program.graph.nodes if n.target == torch.ops.aten.permute.default]
    assert permute.args[0].op == "placeholder" and permute.args[1] == [0, 2, 1]


def test_a_chain_that_restates_nothing_disappears():
    assert_rewrite(Chain((1, 0), (3, 4), (1, 0)), (torch.randn(4, 3),), FusePermuteReshapePermute(XNNPACK),
                   before={PERMUTE: 2, RESHAPE: 1}, after={PERMUTE: 0, RESHAPE: 1}, applied=1)


def test_declined_without_a_single_permute_form():
    model = Chain((1, 0), (3, 8), (1, 0))  # a transpose, a re-split, a transpose: not one permute
    assert_rewrite(model, (torch.randn(4, 6),), FusePermuteReshapePermute(XNNPACK), before={PERMUTE: 2, RESHAPE: 1},
                   reason="no single permute moves the elements as the chain does")


def test_nhwc_restatements_are_left_to_nhwc_targets():
    model = Chain((0, 2, 3, 1), (1, 20, 4), (0, 2, 1))
    inputs = (torch.randn(1, 4, 4, 5),)
    assert_rewrite(model, inputs, FusePermuteReshapePermute(U55), before={PERMUTE: 2, RESHAPE: 1},
                   reason="its NCHW <-> NHWC permute is free on ethos-u55")
    assert_rewrite(model, inputs, FusePermuteReshapePermute(XNNPACK), before={PERMUTE: 2, RESHAPE: 1},
                   reason="its NCHW <-> NHWC permute is free on xnnpack")


def test_fused_where_convolutions_stay_nchw():
    nchw = Target("nchw", "convolutions and matmuls in any layout", frozenset(), frozenset(), None)
    model = Chain((0, 2, 3, 1), (1, 20, 4), (0, 2, 1))
    assert_rewrite(model, (torch.randn(1, 4, 4, 5),), FusePermuteReshapePermute(nchw),
                   before={PERMUTE: 2, RESHAPE: 1}, after={PERMUTE: 0, RESHAPE: 1}, applied=1)


def test_declined_when_an_inner_tensor_has_another_reader():
    class Shared(nn.Module):
        def forward(self, x):
            y = x.permute(0, 2, 1)
            return y.reshape(2, 6, 4).permute(0, 2, 1), y.sum()

    assert_rewrite(Shared(), (torch.randn(2, 4, 6),), FusePermuteReshapePermute(XNNPACK),
                   before={PERMUTE: 2, RESHAPE: 1},
                   reason="a tensor inside the chain is also read by another op")


def test_planned_split_and_move_back_needs_no_transpose():
    model = Chain((0, 3, 1, 2), (1, 2, 3, 4, 5), (0, 3, 4, 1, 2), contiguous=True)
    r = check_plan(model, (torch.randn(1, 4, 5, 6),), target="xnnpack", before=2, after=0, exact=True)
    assert r.report.rewrites == {RULE: 1} and permutes(r.program) == 0


@st.composite
def chains(draw):
    rank = draw(st.integers(2, 4))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    p = tuple(draw(st.permutations(range(rank))))
    permuted = [shape[d] for d in p]
    # merge two neighbouring dims of the permuted shape, or split one into its factors
    if rank >= 2 and draw(st.booleans()):
        i = draw(st.integers(0, rank - 2))
        mid = permuted[:i] + [permuted[i] * permuted[i + 1]] + permuted[i + 2:]
    else:
        mid = permuted + [1]
    q = tuple(draw(st.permutations(range(len(mid)))))
    return shape, p, tuple(mid), q


@given(chains())
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_found_form_is_exact_on_random_data(chain):
    shape, p, mid, q = chain
    x = torch.randn(shape)
    want = x.permute(p).reshape(mid).permute(q)
    form = single_permute_form(shape, Perm(p), mid, Perm(q))
    if form is None:
        return
    order, r, s = form
    if order == "permute_first":
        got = x.permute(r.dims).reshape(s)
    else:
        got = x.reshape(s) if r is None else x.reshape(s).permute(r.dims)
    assert torch.equal(got, want)


class ChainBesideItsSource(nn.Module):
    """The graph fuzzing found: the chain's result is read twice, its source once more; the
    chain's reshape copies, and so would the fused form's, into another order."""

    def forward(self, x):
        y = x.permute(0, 2, 1, 3).reshape(8, 4, 6).permute(1, 0, 2)
        out = torch.relu(y).permute(1, 0, 2)
        torch.relu(x), torch.relu(y)  # read and dropped, as the fuzzed graph did
        return out


CORTEX_M = get_target("cortex-m")


def test_a_planned_target_keeps_a_chain_whose_fused_form_costs_as_much_in_another_order():
    inputs = (torch.randn(2, 4, 4, 6),)
    assert_rewrite(ChainBesideItsSource(), inputs, FusePermuteReshapePermute(CORTEX_M, planned=True),
                   before={PERMUTE: 3, RESHAPE: 1, "aten.relu.default": 3},
                   reason="the single-permute form moves no fewer bytes and lays the result out in another order")
    # unplanned, where a backend executes each permute, one permute fewer is the gain
    assert_rewrite(ChainBesideItsSource(), inputs, FusePermuteReshapePermute(XNNPACK),
                   before={PERMUTE: 3, RESHAPE: 1}, after={PERMUTE: 2, RESHAPE: 1}, applied=1)
    # fused, the plan moved 384 bytes where the exported graph moves 192 (one int8 copy)
    r = check_plan(ChainBesideItsSource(), inputs, target="cortex-m", exact=True)
    assert r.report.transpose_bytes_after == r.report.transpose_bytes_before == 2 * 4 * 4 * 6
    assert RULE not in r.report.rewrites


def test_a_planned_target_fuses_a_chain_whose_fused_form_costs_no_more_in_the_same_order():
    rule = FusePermuteReshapePermute(CORTEX_M, planned=True)
    assert_rewrite(Chain((1, 0), (3, 4), (1, 0)), (torch.randn(4, 3),), rule,
                   before={PERMUTE: 2, RESHAPE: 1}, after={PERMUTE: 0, RESHAPE: 1}, applied=1)
