"""Permutes shared by the inputs of an elementwise op or a concatenation move after it and meet
the next permute, bit for bit."""
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

import layoutopt
from helpers import check_plan, op_counts

RULE = "permute_through_join"
NHWC, NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def permutes(program):
    return op_counts(program)["aten.permute.default"] + op_counts(program)["aten.transpose.int"]


class Join(nn.Module):
    """Two inputs laid out NHWC by permutes, joined, and permuted back."""

    def __init__(self, kind, perms=(NHWC, NHWC), back=NCHW):
        super().__init__()
        self.kind, self.perms, self.back = kind, perms, back
        self.scale = nn.Parameter(torch.randn(4))

    def forward(self, x, y):
        if self.kind in ("add", "cat", "where"):
            a, b = x.permute(self.perms[0]), y.permute(self.perms[1])
        if self.kind == "add":
            z = a + b
        elif self.kind == "cat":
            z = torch.cat([a, b], dim=3)
        elif self.kind == "where":
            z = torch.where((x > y).permute(self.perms[0]), a, b)
        elif self.kind == "scale":  # one permuted input, a constant broadcast over the last dim
            z = x.permute(self.perms[0]) * self.scale
        else:
            raise AssertionError(self.kind)
        return z.permute(self.back) if self.back else z


def xy(c=4):
    return torch.randn(2, c, 3, 5), torch.randn(2, c, 3, 5)


def test_add_of_two_permuted_branches_needs_no_permute():
    r = check_plan(Join("add"), xy(), target="xnnpack", after=0, exact=True)
    assert r.report.rewrites == {RULE: 1, "compose_permutes": 1}
    assert permutes(r.program) == 0 and op_counts(r.program)["aten.add.Tensor"] == 1


def test_concat_moves_its_dim_with_the_permute():
    r = check_plan(Join("cat"), xy(), target="xnnpack", after=0, exact=True)
    assert r.report.rewrites == {RULE: 1, "compose_permutes": 1} and permutes(r.program) == 0
    cat = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.cat.default)
    assert cat.args[1] == 1  # dim 3 of the NHWC inputs is their channel dim


def test_three_operand_where_and_a_leftover_permute():
    r = check_plan(Join("where", back=None), xy(), target="xnnpack", exact=True)
    assert r.report.rewrites == {RULE: 1} and permutes(r.program) == 1


def test_constant_operand_is_laid_out_at_compile_time():
    r = check_plan(Join("scale"), xy(), target="xnnpack", exact=True)
    assert r.report.rewrites == {RULE: 1, "compose_permutes": 1} and permutes(r.program) == 0
    mul = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.mul.Tensor)
    assert tuple(mul.args[1].meta["val"].shape) == (1, 4, 1, 1)


def test_one_permuted_input_without_a_permute_after_is_left_alone():
    r = layoutopt.optimize(Join("scale", back=None), xy(), target="xnnpack")
    assert RULE not in r.report.rewrites and permutes(r.program) == 1


def test_declined_when_the_inputs_are_permuted_differently():
    r = layoutopt.optimize(Join("add", perms=(NHWC, (0, 3, 2, 1)), back=None), (torch.randn(2, 4, 5, 5),) * 2,
                           target="xnnpack")
    assert RULE not in r.report.rewrites
    assert {"op": "aten.add.Tensor", "node": "add", "reason": f"{RULE}: its inputs are permuted differently"} \
        in r.report.declined


def test_declined_when_a_permuted_input_is_read_again():
    class Shared(nn.Module):
        def forward(self, x, y):
            a = x.permute(NHWC)
            return (a + y.permute(NHWC)).permute(NCHW), a.sum()

    r = layoutopt.optimize(Shared(), xy(), target="xnnpack")
    assert RULE not in r.report.rewrites
    assert any(d["reason"] == f"{RULE}: a permuted input is also read by another op" for d in r.report.declined)


def test_declined_when_the_constant_is_read_again():
    class SharedConstant(Join):
        def forward(self, x, y):
            return (x.permute(NHWC) * self.scale).permute(NCHW), self.scale * 2

    r = layoutopt.optimize(SharedConstant("scale"), xy(), target="xnnpack")
    assert RULE not in r.report.rewrites
    assert any(d["reason"] == f"{RULE}: a constant input is also read by another op" for d in r.report.declined)


@st.composite
def joins(draw):
    rank = draw(st.integers(2, 5))
    p = tuple(draw(st.permutations(range(rank))))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    other = tuple(s if draw(st.booleans()) else 1 for s in shape)  # broadcast in any dims
    kind = draw(st.sampled_from(["add", "mul", "cat", "maximum"]))
    dim = draw(st.integers(0, rank - 1))
    back = tuple(draw(st.permutations(range(rank)))) if draw(st.booleans()) else None
    return rank, p, shape, other, kind, dim, back


class Random(nn.Module):
    def __init__(self, p, kind, dim, back):
        super().__init__()
        self.p, self.kind, self.dim, self.back = p, kind, dim, back

    def forward(self, x, y):
        a, b = x.permute(self.p), y.permute(self.p)
        if self.kind == "cat":
            z = torch.cat([a, b], self.dim)
        else:
            z = {"add": torch.add, "mul": torch.mul, "maximum": torch.maximum}[self.kind](a, b)
        return z.permute(self.back) if self.back else z


@given(joins())
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@example((3, (2, 1, 0), (1, 2, 1), (1, 1, 1), "cat", 0, None))  # a concat's output read as it is
@example((2, (1, 0), (1, 1), (1, 1), "cat", 0, (0, 1)))  # ... after an identity permute
@example((5, (1, 0, 2, 3, 4), (2, 1, 1, 1, 1), (1, 1, 1, 1, 1), "cat", 0, (0, 1, 2, 4, 3)))  # size-1 dims grown
@example((4, (0, 2, 1, 3), (1, 2, 2, 1), (1, 1, 1, 1), "cat", 0, (0, 1, 3, 2)))  # a free permute made costly
def test_any_shared_permute_moves_past_the_join_bit_exactly(case):
    rank, p, shape, other, kind, dim, back = case
    inputs = (torch.randn(shape), torch.randn(shape if kind == "cat" else other))
    r = check_plan(Random(p, kind, dim, back), inputs, target="xnnpack", exact=True)
    meets_a_permute = back is not None and back != tuple(range(rank))  # an identity permute is removed
    if any("its input permutes only move size-1 dims" in d["reason"] or "gathers its permuted inputs for free"
           in d["reason"] for d in r.report.declined):
        return  # declined: the permutes stay where they are free (the plan's bound is checked above)
    assert permutes(r.program) <= (1 if meets_a_permute or kind != "cat" else 2)


def test_declined_when_the_concatenation_grows_the_size_1_dims_its_permutes_move():
    case = Random((1, 0, 2, 3, 4), "cat", 0, (0, 1, 2, 4, 3))
    r = check_plan(case, (torch.randn(2, 1, 1, 1, 1), torch.randn(2, 1, 1, 1, 1)), target="xnnpack",
                   before=0, after=0, exact=True)
    assert RULE not in r.report.rewrites
    assert [d["reason"] for d in r.report.declined if d["node"] == "cat"] == [
        f"{RULE}: its input permutes only move size-1 dims, which the concatenation makes larger: after it the permute "
        "would move bytes"]


def test_idempotent():
    once = layoutopt.optimize(Join("where", back=None), xy(), target="xnnpack")
    twice = layoutopt.optimize(once.program, target="xnnpack")
    assert twice.report.rewrites == {} and op_counts(twice.program) == op_counts(once.program)
