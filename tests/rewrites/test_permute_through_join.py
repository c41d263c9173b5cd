"""Permutes shared by the inputs of an elementwise op or a concatenation move after it and meet
the next permute, bit for bit."""
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

from helpers import assert_rewrite, check_plan, op_counts, run_alone
from layoutopt.rewrites import PermuteThroughJoin

RULE = PermuteThroughJoin()
PERMUTE = "aten.permute.default"
NHWC, NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def permutes(program):
    return op_counts(program)[PERMUTE] + op_counts(program)["aten.transpose.int"]


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


def test_add_of_two_permuted_branches_gets_one_permute_after_it():
    r = assert_rewrite(Join("add"), xy(), RULE, before={PERMUTE: 3}, after={PERMUTE: 2}, applied=1)
    add = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.add.Tensor)
    assert [a.op for a in add.args] == ["placeholder", "placeholder"]
    assert [u.args[1] for u in add.users] == [list(NHWC)]  # meets the NCHW permute: compose_permutes


def test_concat_moves_its_dim_with_the_permute():
    r = assert_rewrite(Join("cat"), xy(), RULE, before={PERMUTE: 3}, after={PERMUTE: 2}, applied=1)
    cat = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.cat.default)
    assert cat.args[1] == 1  # dim 3 of the NHWC inputs is their channel dim


def test_three_operand_where():
    # where's condition is permuted too: all three operands lose their permute, one is added
    assert_rewrite(Join("where", back=None), xy(), RULE, before={PERMUTE: 3}, after={PERMUTE: 1}, applied=1)


def test_constant_operand_is_laid_out_at_compile_time():
    r = assert_rewrite(Join("scale"), xy(), RULE, before={PERMUTE: 2}, after={PERMUTE: 2}, applied=1)
    mul = next(n for n in r.program.graph.nodes if n.target == torch.ops.aten.mul.Tensor)
    assert tuple(mul.args[1].meta["val"].shape) == (1, 4, 1, 1)
    assert torch.equal(r.program.state_dict["scale"].flatten(), r.source.state_dict["scale"])


def test_one_permuted_input_without_a_permute_after_is_not_a_candidate():
    assert_rewrite(Join("scale", back=None), xy(), RULE, before={PERMUTE: 1}, applied=0)


def test_an_input_in_its_own_layout_is_not_a_candidate():
    class Mixed(nn.Module):
        def forward(self, x, y):
            return (x.permute(NHWC) + y).permute(NCHW)

    assert_rewrite(Mixed(), (torch.randn(2, 4, 3, 5), torch.randn(2, 3, 5, 4)), RULE, before={PERMUTE: 2},
                   applied=0)


def test_declined_when_the_inputs_are_permuted_differently():
    r = assert_rewrite(Join("add", perms=(NHWC, (0, 3, 2, 1)), back=None), (torch.randn(2, 4, 5, 5),) * 2, RULE,
                       before={PERMUTE: 2}, reason="its inputs are permuted differently")
    assert [(x.node, x.op) for x in r.log.rejects] == [("add", "aten.add.Tensor")]


def test_declined_when_a_permuted_input_is_read_again():
    class Shared(nn.Module):
        def forward(self, x, y):
            a = x.permute(NHWC)
            return (a + y.permute(NHWC)).permute(NCHW), a.sum()

    assert_rewrite(Shared(), xy(), RULE, before={PERMUTE: 3}, reason="a permuted input is also read by another op")


def test_declined_when_the_constant_is_read_again():
    class SharedConstant(Join):
        def forward(self, x, y):
            return (x.permute(NHWC) * self.scale).permute(NCHW), self.scale * 2

    assert_rewrite(SharedConstant("scale"), xy(), RULE, before={PERMUTE: 2},
                   reason="a constant input is also read by another op")


def test_declined_when_the_concatenation_grows_the_size_1_dims_its_permutes_move():
    case = Random((1, 0, 2, 3, 4), "cat", 0, (0, 1, 2, 4, 3))
    assert_rewrite(case, (torch.randn(2, 1, 1, 1, 1), torch.randn(2, 1, 1, 1, 1)), RULE, before={PERMUTE: 3},
                   reason="its input permutes only move size-1 dims, which the concatenation makes larger: after it "
                          "the permute would move bytes")


def test_declined_when_the_concatenation_gathers_for_free_what_merged_permutes_would_move():
    # the input permutes and the permute after the cat each move no bytes; merged they would
    case = Random((0, 2, 1, 3), "cat", 0, (0, 1, 3, 2))
    assert_rewrite(case, (torch.randn(1, 2, 2, 1), torch.randn(1, 2, 2, 1)), RULE, before={PERMUTE: 3},
                   reason="the concatenation gathers its permuted inputs for free and the permute after it moves "
                          "no bytes; merged, they would")


def test_planned_joins_need_no_permute():
    for kind in ("add", "cat", "scale"):
        r = check_plan(Join(kind), xy(), target="xnnpack", after=0, exact=True)
        assert r.report.rewrites == {RULE.name: 1, "compose_permutes": 1} and permutes(r.program) == 0


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


CAT_REASONS = ("its input permutes only move size-1 dims", "the concatenation gathers its permuted inputs for free")


@given(joins())
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_alone_any_shared_permute_moves_past_the_join_or_is_declined_for_a_cat(case):
    rank, p, shape, other, kind, dim, back = case
    model = Random(p, kind, dim, back)
    inputs = (torch.randn(shape), torch.randn(shape if kind == "cat" else other))
    before = {PERMUTE: 2 + (back is not None)}
    if kind == "cat" and back is None:  # the cat gathers its inputs for free, nothing to meet
        assert_rewrite(model, inputs, RULE, before=before, applied=0)
        return
    declined = run_alone(torch.export.export(model, inputs), RULE).rejects
    if declined:
        assert kind == "cat" and len(declined) == 1 and declined[0].reason.startswith(CAT_REASONS), declined
        assert_rewrite(model, inputs, RULE, before=before, reason=declined[0].reason)
    else:
        assert_rewrite(model, inputs, RULE, before=before, after={PERMUTE: before[PERMUTE] - 1}, applied=1)
