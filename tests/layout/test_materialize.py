"""materialize writes a plan into the graph: exactly the conversions the chosen modes ask for,
one per (tensor, layout) shared by its readers, and a copy for each output the contract wants
in another layout; nothing else changes."""
import copy
from collections import Counter

import pytest
import torch

from helpers import ConvFanOut, op_counts
from layoutopt.errors import InternalError
from layoutopt.ir.propagate import refresh_meta
from layoutopt.layout.cost import IOLayout
from layoutopt.layout.materialize import materialize
from layoutopt.layout.problem import Mode, build_problem
from layoutopt.targets import get_target
from layoutopt.verify.numerics import compare

CLONE = "aten.clone.default"
NCHW, NHWC = 0, 1  # index of the mode that reads NCHW / NHWC, as build_problem lists them


def planned(choice):
    """The exported program, a private copy with ``choice`` (op -> mode index) materialized, and
    what materialize returned."""
    inputs = (torch.randn(1, 3, 2, 2),)
    source = torch.export.export(ConvFanOut().eval(), inputs)
    ep = copy.deepcopy(source)
    refresh_meta(ep.graph_module)
    problem = build_problem(ep, get_target("ethos-u55"), IOLayout.CONTIGUOUS)
    assert [[m.original for m in problem.modes[n]] for n in ("conv2d", "relu", "mean")] == [[True, False]] * 3
    mismatches = materialize(ep, problem, {name: problem.modes[name][k] for name, k in choice.items()})
    ep.graph.lint()
    check = compare(source, ep, inputs)  # a channels-last conv may sum in another order
    assert check.max_abs_diff <= 1e-5 and check.layout_mismatches == []
    return source, ep, mismatches


def clones(ep):
    """Each conversion as (what it copies, memory format, who reads it)."""
    return [(n.args[0].name, n.kwargs["memory_format"], sorted(u.name for u in n.users))
            for n in ep.graph.nodes if n.target == torch.ops.aten.clone.default]


def test_the_exported_modes_need_no_conversion():
    source, ep, mismatches = planned({"conv2d": NCHW, "relu": NCHW, "mean": NCHW})
    assert mismatches == [] and clones(ep) == [] and op_counts(ep) == op_counts(source)


def test_an_nhwc_conv_gets_its_input_converted_and_its_output_converted_back_at_the_output():
    source, ep, mismatches = planned({"conv2d": NHWC, "relu": NHWC, "mean": NHWC})
    assert mismatches == []
    assert clones(ep) == [("x", torch.channels_last, ["conv2d"]), ("relu", torch.contiguous_format, ["output"])]
    assert op_counts(ep) == op_counts(source) + Counter({CLONE: 2})
    conv = next(n for n in ep.graph.nodes if n.name == "conv2d")
    assert conv.meta["val"].is_contiguous(memory_format=torch.channels_last)


def test_a_conversion_is_shared_by_every_reader_that_asks_for_it():
    source, ep, mismatches = planned({"conv2d": NHWC, "relu": NCHW, "mean": NCHW})
    assert mismatches == []
    (into, back) = clones(ep)
    assert into == ("x", torch.channels_last, ["conv2d"])
    assert back == ("conv2d", torch.contiguous_format, ["mean", "relu"])  # one copy, two readers
    assert op_counts(ep) == op_counts(source) + Counter({CLONE: 2})


def test_a_reader_in_the_producers_layout_reads_it_directly():
    source, ep, mismatches = planned({"conv2d": NHWC, "relu": NHWC, "mean": NCHW})
    assert mismatches == []
    assert clones(ep) == [("x", torch.channels_last, ["conv2d"]), ("conv2d", torch.contiguous_format, ["mean"]),
                          ("relu", torch.contiguous_format, ["output"])]


def test_a_plan_asking_for_a_layout_no_copy_makes_is_refused():
    ep = torch.export.export(ConvFanOut().eval(), (torch.randn(1, 3, 2, 2),))
    refresh_meta(ep.graph_module)
    problem = build_problem(ep, get_target("ethos-u55"), IOLayout.CONTIGUOUS)
    chosen = {name: modes[0] for name, modes in problem.modes.items()}
    chosen["relu"] = Mode(needs=((("conv2d", -1), (16, 16, 16, 16)),), gives=((-1, (16, 4, 2, 1)),), cost=0)
    with pytest.raises(InternalError, match=r"plan needs \('conv2d', -1\) in label \(16, 16, 16, 16\)"):
        materialize(ep, problem, chosen)
