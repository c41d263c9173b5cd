"""assert_rewrite itself: each of its claims fails when it is false, so a rule test that passes
says something."""
import pytest
import torch
from torch import nn

from helpers import assert_rewrite, dataflow
from layoutopt.rewrites import ComposePermutes, FoldConstantPermute
from layoutopt.rewrites.base import GraphEdit

PERMUTE, MUL = "aten.permute.default", "aten.mul.Tensor"


class RoundTrip(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 1).permute(0, 2, 1) * 2


class Table(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return x + self.table.t() + self.table


def x3():
    return (torch.randn(1, 3, 4),)


def test_the_passing_case():
    r = assert_rewrite(RoundTrip(), x3(), ComposePermutes(), before={PERMUTE: 2}, after={PERMUTE: 0}, applied=1)
    assert r.log.applied == {"compose_permutes": 1} and r.source is not r.program


@pytest.mark.parametrize("kwargs,message", [
    (dict(before={PERMUTE: 1}, after={PERMUTE: 0}), "op counts before"),
    (dict(before={PERMUTE: 2}, after={PERMUTE: 1}), "op counts after"),
    (dict(before={PERMUTE: 2}, after={MUL: 1}), r"ops not in `after` changed count: aten.permute.default 2 -> 0"),
    (dict(before={PERMUTE: 2}, after={PERMUTE: 0}, applied=2), "applied"),
    (dict(before={PERMUTE: 2}), "states the op counts after it"),
    (dict(before={PERMUTE: 2}, applied=0), "applied"),
    (dict(before={PERMUTE: 2}, reason="constant"), "no reject containing 'constant'"),
])
def test_a_false_claim_about_a_rewrite_fails(kwargs, message):
    with pytest.raises(AssertionError, match=message):
        assert_rewrite(RoundTrip(), x3(), ComposePermutes(), **kwargs)


def test_a_false_claim_about_a_rejection_fails():
    inputs = (torch.randn(4, 4),)
    assert_rewrite(Table(), inputs, FoldConstantPermute(), before={"aten.t.default": 1}, reason="shared")
    with pytest.raises(AssertionError, match="no reject containing 'not a constant'"):
        assert_rewrite(Table(), inputs, FoldConstantPermute(), before={"aten.t.default": 1}, reason="not a constant")
    with pytest.raises(AssertionError, match="applied"):  # it declined: not "not a candidate"
        assert_rewrite(Table(), inputs, FoldConstantPermute(), before={"aten.t.default": 1}, applied=0)


def test_the_dataflow_sees_an_argument_or_an_edge_change_but_not_names():
    def program(dims, twice=False):
        class M(nn.Module):
            def forward(self, x):
                y = x.permute(dims)
                return y * 2 + (y if twice else x.permute(dims))

        return torch.export.export(M(), x3())

    assert dataflow(program((0, 2, 1))) == dataflow(program((0, 2, 1)))
    assert dataflow(program((0, 2, 1))) != dataflow(program((1, 0, 2)))
    assert dataflow(program((0, 2, 1))) != dataflow(program((0, 2, 1), twice=True))  # one permute, read twice


def corrupted(monkeypatch, corrupt):
    """compose_permutes, with ``corrupt`` applied to the mul after each of its rewrites."""
    original = ComposePermutes.rewrite

    def rewrite(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        edit = next(a for a in (*args, *kwargs.values()) if isinstance(a, GraphEdit))
        corrupt(next(n for n in edit.graph.nodes if n.target == torch.ops.aten.mul.Tensor))
        return result

    monkeypatch.setattr(ComposePermutes, "rewrite", rewrite)


def test_a_rewrite_that_leaves_a_wrong_meta_fails(monkeypatch):
    corrupted(monkeypatch, lambda mul: mul.meta.update(val=torch.empty(7)))
    with pytest.raises(AssertionError, match=r"meta\['val'\] \(shape, dtype\) the rule left differs"):
        assert_rewrite(RoundTrip(), x3(), ComposePermutes(), before={PERMUTE: 2}, after={PERMUTE: 0})


def test_a_rewrite_that_leaves_no_meta_fails(monkeypatch):
    corrupted(monkeypatch, lambda mul: mul.meta.pop("val"))
    with pytest.raises(AssertionError, match=r"no meta\['val'\] on \['mul'\]"):
        assert_rewrite(RoundTrip(), x3(), ComposePermutes(), before={PERMUTE: 2}, after={PERMUTE: 0})


def test_a_rewrite_that_changes_the_values_fails(monkeypatch):
    corrupted(monkeypatch, lambda mul: setattr(mul, "args", (mul.args[0], 3)))
    with pytest.raises(AssertionError, match="outputs differ: max abs diff"):
        assert_rewrite(RoundTrip(), x3(), ComposePermutes(), before={PERMUTE: 2}, after={PERMUTE: 0})
