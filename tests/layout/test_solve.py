"""The solver on problems built by hand, whose optimum is known: it picks one mode per op and
the copies between them, each copy shared by all the ops that read it."""
import pytest

from layoutopt.layout.problem import Mode, Problem, ValueInfo
from layoutopt.layout.solve import solve

SHAPE = (1, 2, 3, 3)
NCHW, NHWC = (18, 9, 3, 1), (18, 1, 6, 2)  # strides of SHAPE
CONTIGUOUS, CHANNELS_LAST = (0, 1, 2, 3), (0, 2, 3, 1)
X = ("x", -1)
NBYTES = 18


def value(name, nbytes=NBYTES, fixed=None):
    return ValueInfo((name, -1), SHAPE, nbytes, convertible={NCHW: CONTIGUOUS, NHWC: CHANNELS_LAST}, fixed=fixed)


def reader(operand, nchw_cost, nhwc_cost=0):
    """An op that reads ``operand`` in NCHW (as exported) at ``nchw_cost`` or NHWC at ``nhwc_cost``,
    and gives NCHW either way."""
    return [Mode(needs=((operand, NCHW),), gives=((-1, NCHW),), cost=nchw_cost, original=True),
            Mode(needs=((operand, NHWC),), gives=((-1, NCHW),), cost=nhwc_cost)]


def fan_out(costs, nhwc_costs=None):
    """An NCHW input ``x`` read by one op per entry of ``costs`` (its cost when read NCHW; read
    NHWC, its entry in ``nhwc_costs``, 0 by default)."""
    names = [f"op{i}" for i in range(len(costs))]
    values = {X: value("x", fixed=NCHW), **{(n, -1): value(n) for n in names}}
    modes = {n: reader(X, c, h) for n, c, h in zip(names, costs, nhwc_costs or [0] * len(costs))}
    return Problem(values, modes, outputs=[((n, -1), NCHW) for n in names], declined=[], node_order=names)


def nhwc_readers(solution):
    return sorted(name for name, mode in solution.chosen.items() if mode.needs[0][1] == NHWC)


def test_a_copy_is_made_when_it_costs_less_than_the_op_it_saves():
    s = solve(fan_out([30]))
    assert nhwc_readers(s) == ["op0"] and s.objective_bytes == s.lower_bound_bytes == NBYTES


def test_no_copy_when_the_op_costs_less():
    s = solve(fan_out([10]))
    assert nhwc_readers(s) == [] and s.objective_bytes == s.lower_bound_bytes == 10


def test_a_tie_keeps_the_graph_as_exported():
    s = solve(fan_out([NBYTES]))
    assert nhwc_readers(s) == [] and s.objective_bytes == NBYTES
    assert all(mode.original for mode in s.chosen.values())


@pytest.mark.parametrize("readers,optimum,greedy", [(1, 10, 10), (2, 18, 20), (3, 18, 30), (5, 18, 50)])
def test_a_copy_shared_by_a_fan_out_beats_deciding_reader_by_reader(readers, optimum, greedy):
    # each reader alone would rather pay 10 than a copy of 18; one copy serves them all
    costs = [10] * readers
    assert greedy == sum(min(c, NBYTES) for c in costs)  # each op choosing for itself
    s = solve(fan_out(costs))
    assert s.objective_bytes == s.lower_bound_bytes == optimum and s.solver_status == "optimal"
    assert nhwc_readers(s) == ([] if optimum == greedy else [f"op{i}" for i in range(readers)])


def test_a_reader_that_loses_by_it_does_not_read_the_copy():
    # a copy (18) pays for op0 (20) alone, op2 (15) reads it too; op1 runs slower NHWC (8 > 5)
    s = solve(fan_out([20, 5, 15], [0, 8, 0]))
    assert nhwc_readers(s) == ["op0", "op2"] and s.objective_bytes == s.lower_bound_bytes == 18 + 5


def test_an_output_in_the_wrong_layout_is_copied_once_for_the_contract_and_a_reader():
    # op gives NHWC only; the contract wants it NCHW, and so does a reader (60 NCHW, 100 NHWC)
    values = {X: value("x", fixed=NCHW), ("op", -1): value("op", 40), ("use", -1): value("use")}
    modes = {"op": [Mode(needs=((X, NCHW),), gives=((-1, NHWC),), cost=0, original=True)],
             "use": reader(("op", -1), 60, 100)}
    s = solve(Problem(values, modes, outputs=[(("op", -1), NCHW), (("use", -1), NCHW)], declined=[],
                      node_order=["op", "use"]))
    assert s.objective_bytes == s.lower_bound_bytes == 40 + 60  # one copy of op (40) serves both
    assert s.chosen["use"].needs == ((("op", -1), NCHW),)


def test_modes_are_chosen_along_a_chain():
    # a -> b: a NHWC costs nothing but hands b NHWC, which b pays 7 for in NCHW terms
    values = {X: value("x", 2, fixed=NCHW), ("a", -1): value("a", 30), ("b", -1): value("b", 30)}
    modes = {"a": [Mode(needs=((X, NCHW),), gives=((-1, NCHW),), cost=12, original=True),
                   Mode(needs=((X, NHWC),), gives=((-1, NHWC),), cost=0)],
             "b": [Mode(needs=((("a", -1), NCHW),), gives=((-1, NCHW),), cost=0, original=True),
                   Mode(needs=((("a", -1), NHWC),), gives=((-1, NCHW),), cost=7)]}
    s = solve(Problem(values, modes, outputs=[(("b", -1), NCHW)], declined=[], node_order=["a", "b"]))
    # copy x (2) + a in NHWC (0) + b reading NHWC (7) = 9 beats a in NCHW (12) and a copy of a (30)
    assert s.objective_bytes == s.lower_bound_bytes == 9
    assert s.chosen["a"] is modes["a"][1] and s.chosen["b"] is modes["b"][1]


def test_an_empty_problem():
    s = solve(Problem({}, {}, outputs=[], declined=[], node_order=[]))
    assert (s.chosen, s.objective_bytes, s.lower_bound_bytes, s.solver_status) == ({}, 0, 0, "empty")


def own_or_shared(overhead=0, max_conversions=None):
    """``x`` (30 bytes) read by two ops, each of which either converts its own part (a mode
    that is one conversion of 12 bytes), reads a shared copy of ``x`` (30 bytes) in NHWC, or
    runs a slow kernel on NCHW (40) without converting anything."""
    values = {X: value("x", 30, fixed=NCHW), **{(n, -1): value(n) for n in ("r0", "r1")}}
    modes = {n: [Mode(needs=((X, NCHW),), gives=((-1, NCHW),), cost=12, original=True, conversions=1),
                 Mode(needs=((X, NHWC),), gives=((-1, NCHW),), cost=0),
                 Mode(needs=((X, NCHW),), gives=((-1, NCHW),), cost=40)] for n in ("r0", "r1")}
    return Problem(values, modes, outputs=[((n, -1), NCHW) for n in ("r0", "r1")], declined=[],
                   node_order=["r0", "r1"], conversion_overhead=overhead, max_conversions=max_conversions)


def test_a_fixed_cost_per_conversion_prefers_one_shared_copy_to_several_small_ones():
    s = solve(own_or_shared())
    assert (s.objective_bytes, s.lower_bound_bytes, s.conversions) == (24, 24, 2)  # 12 + 12 < 30
    assert nhwc_readers(s) == []
    s = solve(own_or_shared(overhead=10))
    # (12 + 10) * 2 > 30 + 10: the objective and its bound count the overhead
    assert (s.objective_bytes, s.lower_bound_bytes, s.conversions) == (40, 40, 1)
    assert nhwc_readers(s) == ["r0", "r1"]


@pytest.mark.parametrize("cap,objective", [(2, 24), (1, 30), (0, 80)])
def test_a_cap_on_conversions_gives_the_cheapest_plan_within_it(cap, objective):
    s = solve(own_or_shared(max_conversions=cap))
    assert (s.objective_bytes, s.lower_bound_bytes) == (objective, objective)
    assert s.conversions <= cap and s.solver_status == "optimal"
