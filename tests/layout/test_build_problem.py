"""build_problem on a graph small enough to state whole: its values, the labels (exact strides)
each can take and the copies that make them, each op's modes (what it needs of its operands,
what it gives, what it costs), and the outputs' contract."""
import pytest
import torch

from helpers import ConvFanOut
from layoutopt.ir.propagate import refresh_meta
from layoutopt.layout.cost import IOLayout
from layoutopt.layout.problem import Mode, build_problem
from layoutopt.layout.solve import solve
from layoutopt.targets import get_target

U55 = get_target("ethos-u55")  # channels-last convolutions, one byte an element
NCHW_X, NHWC_X = (12, 4, 2, 1), (12, 1, 6, 3)  # strides of x[1, 3, 2, 2]
NCHW_Y, NHWC_Y = (16, 4, 2, 1), (16, 1, 8, 4)  # strides of a [1, 4, 2, 2] tensor
CONTIGUOUS, CHANNELS_LAST = (0, 1, 2, 3), (0, 2, 3, 1)


def problem(io_layout=IOLayout.CONTIGUOUS):
    ep = torch.export.export(ConvFanOut().eval(), (torch.randn(1, 3, 2, 2),))
    refresh_meta(ep.graph_module)  # eager's strides, as the pipeline plans from
    return build_problem(ep, U55, io_layout)


def test_values_labels_and_copies():
    p = problem()
    # the weight and bias are constants: not values the planner lays out
    assert {v: (i.shape, i.nbytes) for v, i in p.values.items()} == {
        ("x", -1): ((1, 3, 2, 2), 12), ("conv2d", -1): ((1, 4, 2, 2), 16), ("relu", -1): ((1, 4, 2, 2), 16),
        ("mean", -1): ((1, 4), 4)}
    assert list(p.values["x", -1].reps) == [NCHW_X, NHWC_X]
    assert p.values["x", -1].convertible == {NCHW_X: CONTIGUOUS, NHWC_X: CHANNELS_LAST}
    for name in ("conv2d", "relu"):
        assert list(p.values[name, -1].reps) == [NCHW_Y, NHWC_Y]
        assert p.values[name, -1].convertible == {NCHW_Y: CONTIGUOUS, NHWC_Y: CHANNELS_LAST}
    assert list(p.values["mean", -1].reps) == [(4, 1)] and p.values["mean", -1].convertible == {}
    # a user input is fixed by the I/O contract; the rest are the plan's to choose
    assert p.values["x", -1].fixed == NCHW_X
    assert [v for v, i in p.values.items() if i.fixed is not None] == [("x", -1)]


def test_modes_are_the_edges_with_their_costs():
    p = problem()
    assert p.node_order == ["conv2d", "relu", "mean"]
    assert p.modes["conv2d"] == [
        # an NCHW conv on an NHWC kernel converts its input (12 bytes) and its output (16)
        Mode(needs=((("x", -1), NCHW_X),), gives=((-1, NCHW_Y),), cost=28, original=True),
        Mode(needs=((("x", -1), NHWC_X),), gives=((-1, NHWC_Y),), cost=0)]
    for name in ("relu", "mean"):  # both read conv2d in either layout, free
        modes = p.modes[name]
        assert [(m.needs, m.cost, m.original) for m in modes] == [
            (((("conv2d", -1), NCHW_Y),), 0, True), (((("conv2d", -1), NHWC_Y),), 0, False)]
    assert [m.gives for m in p.modes["relu"]] == [((-1, NCHW_Y),), ((-1, NHWC_Y),)]  # relu follows its input
    assert [m.gives for m in p.modes["mean"]] == [((-1, (4, 1)),)] * 2
    assert p.declined == [] and p.truncated == [] and p.replayed == []


@pytest.mark.parametrize("io_layout,fixed,output,cost", [
    (IOLayout.CONTIGUOUS, NCHW_X, NCHW_Y, 28),
    (IOLayout.CHANNELS_LAST, NHWC_X, NHWC_Y, 0)])
def test_the_io_contract_fixes_inputs_and_asks_outputs(io_layout, fixed, output, cost):
    p = problem(io_layout)
    assert p.values["x", -1].fixed == fixed
    assert p.outputs == [(("relu", -1), output), (("mean", -1), (4, 1))]
    # contiguous I/O: an NCHW conv (28) ties with copying x in and relu out (12 + 16); the tie
    # goes to the graph as exported. Channels-last I/O: nothing to convert.
    solution = solve(p)
    assert solution.objective_bytes == solution.lower_bound_bytes == cost
    assert solution.chosen["conv2d"].gives == ((-1, output),)
