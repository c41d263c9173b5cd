"""The one helper every planner test goes through: structure and numerics together."""
from __future__ import annotations

from collections import Counter

import torch

import layoutopt
from layoutopt.ir import ops
from layoutopt.verify.numerics import compare


def op_counts(program) -> Counter:
    return Counter(ops.op_name(n.target) for n in program.graph.nodes if n.op == "call_function")


def check_plan(model, inputs, *, target="ethos-u55", io_layout="contiguous", before=None, after=None,
               exact=False, atol=1e-5, skip_rules=()):
    """Optimize and assert: transposes before/after (when given), the plan at the solver's bound,
    real eager strides equal to the planned ones, a linted graph, and equal outputs."""
    result = layoutopt.optimize(model, inputs, target=target, io_layout=io_layout, skip_rules=skip_rules)
    rep = result.report
    if before is not None:
        assert rep.transposes_before == before, rep.to_dict()
    if after is not None:
        assert rep.transposes_after == after, rep.to_dict()
    assert rep.transpose_bytes_after == rep.lower_bound_bytes, rep.to_dict()
    assert rep.transpose_bytes_after <= rep.transpose_bytes_before
    assert rep.layout_mismatches == [], rep.layout_mismatches
    assert rep.plan_mismatches == [], rep.plan_mismatches
    result.program.graph.lint()
    for node in result.program.graph.nodes:
        if node.op == "call_function":
            assert "val" in node.meta, node.name
    check = compare(_exported(model, inputs), result.program, inputs)
    if exact:
        assert check.bit_exact, f"max abs diff {check.max_abs_diff}"
    else:
        assert check.max_abs_diff <= atol, f"max abs diff {check.max_abs_diff}"
    return result


def _exported(model, inputs):
    if isinstance(model, torch.export.ExportedProgram):
        return model
    return torch.export.export(model, tuple(inputs))
