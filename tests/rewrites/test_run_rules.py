"""run_rules, the driver: rules applied in their order, round after round, to a fixed point;
the rejects reported are those standing there; a graph that does not settle, a node a rule
cannot analyse and a rewrite that fails are each reported."""
import pytest
import torch
from torch import nn

from helpers import op_counts
from layoutopt.errors import InternalError
from layoutopt.rewrites import ComposePermutes, PermuteThroughElementwise, PermuteThroughJoin
from layoutopt.rewrites.base import GraphEdit, Reject, run_rules

NHWC, NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
PERMUTE = "aten.permute.default"


class RoundTrip(nn.Module):
    def forward(self, x):
        return torch.relu(x.permute(NHWC)).permute(NCHW)


def x4():
    return torch.randn(1, 3, 4, 5)


def run(model, inputs, rules, **kwargs):
    ep = torch.export.export(model, inputs)
    edit = GraphEdit(ep)
    log = run_rules(edit, rules, **kwargs)
    edit.finish()
    return ep, log


@pytest.mark.parametrize("rules,rounds", [
    # the round trip becomes an identity permute, which compose_permutes removes: in the same
    # round when it runs after, in the next round when it runs first; one more round finds nothing
    ((PermuteThroughElementwise, ComposePermutes), 2),
    ((ComposePermutes, PermuteThroughElementwise), 3)])
def test_rules_run_round_after_round_to_a_fixed_point(rules, rounds):
    ep, log = run(RoundTrip(), (x4(),), [rule() for rule in rules], max_rounds=rounds)
    assert log.applied == {"permute_through_elementwise": 1, "compose_permutes": 1} and log.rejects == []
    assert op_counts(ep)[PERMUTE] == 0
    with pytest.raises(InternalError, match=f"rewrites did not settle in {rounds - 1} rounds"):
        run(RoundTrip(), (x4(),), [rule() for rule in rules], max_rounds=rounds - 1)


def test_no_match_is_one_round_and_an_empty_log():
    ep, log = run(nn.ReLU(), (x4(),), [ComposePermutes()], max_rounds=1)
    assert not log.applied and log.rejects == []


class SharedInput(nn.Module):
    """``a`` read by the add and by ``other``; a second, clean join beside it."""

    def __init__(self, other):
        super().__init__()
        self.other = other

    def forward(self, x, y):
        a = x.permute(NHWC)
        joined = (a + y.permute(NHWC)).permute(NCHW)
        clean = (x.permute(NHWC) * y.permute(NHWC)).permute(NCHW)
        return joined, clean, (a.permute(NCHW) if self.other == "permute" else a.sum())


def test_a_reject_that_a_later_rewrite_lifts_is_not_reported():
    # round 1: the add is declined (a has two readers), then compose_permutes cancels
    # a.permute(NCHW) and a is left with one; round 2 moves the permutes past the add
    ep, log = run(SharedInput("permute"), (x4(), x4()), [PermuteThroughJoin(), ComposePermutes()])
    assert log.rejects == []
    assert log.applied == {"permute_through_join": 2, "compose_permutes": 3}
    assert op_counts(ep)[PERMUTE] == 0


def test_a_reject_standing_at_the_fixed_point_is_reported_once():
    # the clean join is rewritten in round 1, so round 2 runs too: the add is declined in both
    ep, log = run(SharedInput("sum"), (x4(), x4()), [PermuteThroughJoin(), ComposePermutes()])
    assert log.applied == {"permute_through_join": 1, "compose_permutes": 1}
    assert log.rejects == [Reject("permute_through_join", "add", "aten.add.Tensor",
                                  "a permuted input is also read by another op")]


def test_a_node_a_rule_cannot_analyse_is_declined_and_left_alone(monkeypatch):
    def broken(self, *args, **kwargs):
        raise ValueError("no")

    monkeypatch.setattr(ComposePermutes, "match", broken)
    ep, log = run(RoundTrip(), (x4(),), [ComposePermutes()])
    assert not log.applied and op_counts(ep)[PERMUTE] == 2
    assert [(r.node, r.reason) for r in log.rejects] == [
        ("permute", "could not analyse the node (ValueError: no)"),
        ("permute_1", "could not analyse the node (ValueError: no)")]


def test_a_rewrite_that_fails_is_an_internal_error_naming_the_rule_and_node(monkeypatch):
    def broken(self, *args, **kwargs):
        raise ValueError("half done")

    monkeypatch.setattr(PermuteThroughElementwise, "rewrite", broken)
    with pytest.raises(InternalError, match="permute_through_elementwise failed on node 'permute_1': "
                                            "ValueError: half done"):
        run(RoundTrip(), (x4(),), [PermuteThroughElementwise()])
