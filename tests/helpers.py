"""The helpers every test goes through: ``check_plan`` for the whole pipeline, ``assert_rewrite``
for one rule alone; each asserts structure and numerics together."""
from __future__ import annotations

import copy
import operator
from collections import Counter
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.export import ExportedProgram
from torch.fx import Node

import layoutopt
from layoutopt.ir import ops
from layoutopt.ir.propagate import refresh_meta
from layoutopt.rewrites import edge
from layoutopt.rewrites.base import GraphEdit, RewriteLog, run_rules
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


# -- one rule alone -------------------------------------------------------------------------

@dataclass
class Rewritten:
    """What ``assert_rewrite`` ran: the program as exported, the rewritten copy, the rule's log."""

    source: ExportedProgram
    program: ExportedProgram
    log: RewriteLog


def assert_rewrite(model, inputs, rule, *, before, after=None, applied=None, reason=None, exact=True, atol=1e-5,
                   dialect="aten") -> Rewritten:
    """Export ``model`` (an ExportedProgram is taken as it is), run ``rule`` alone to its fixed
    point on a copy, as ``layoutopt.rewrites.rewrite`` runs its rules, and assert:

    * op counts (``aten.conv2d.default`` style names): each op in ``before`` has that count in
      the exported program, each op in ``after`` that count in the rewritten one, and every op
      not in ``after`` the count it had: ``after`` states the histogram's whole change (none
      when omitted, as for a rule that must leave the graph alone);
    * what the rule did: with ``reason``, it declined with a reason containing that text,
      applied nothing, and the graph (its dataflow, op by op) and constants are unchanged; with
      ``applied=0``, it applied nothing, declined nothing, and changed nothing; otherwise it
      applied ``applied`` times (at least once when None);
    * equal outputs on ``inputs``: bit for bit when ``exact`` (data movement), else within
      ``atol``; eager's strides equal to those ``meta["val"]`` states;
    * a linted graph, ``meta["val"]`` on every call node with the shape and dtype a replay gives;
      in an edge program, only edge ops;
    * idempotence: run again, the rule applies nothing and changes nothing.

    ``dialect``: ``"aten"`` (``torch.export``), ``"core"`` (its core ATen decomposition) or
    ``"edge"`` (ExecuTorch's ``to_edge``)."""
    source = _program(model, inputs, dialect)
    counts_before = op_counts(source)
    program = copy.deepcopy(source)
    refresh_meta(program.graph_module)  # eager's strides, as the pipeline starts from
    flow_before = dataflow(program)

    log = run_alone(program, rule)
    counts_after = op_counts(program)
    summary = f"applied {dict(log.applied)}, rejects {[r.reason for r in log.rejects]}"
    changed = flow_before != dataflow(program)
    if reason is not None:
        reasons = [r.reason for r in log.rejects if r.rule == rule.name]
        assert any(reason in r for r in reasons), f"no reject containing {reason!r}: {summary}"
    if reason is not None or applied == 0:
        assert not log.applied, summary
        assert not changed, "the graph changed although the rule applied nothing"
        assert_same_constants(source, program)
        if reason is None:
            assert [r for r in log.rejects if r.rule == rule.name] == [], summary
    else:
        assert after is not None, "a rewrite that applies states the op counts after it"
        assert set(log.applied) == {rule.name}, summary
        if applied is None:
            assert log.applied[rule.name] >= 1, summary
        else:
            assert log.applied[rule.name] == applied, summary
    _assert_counts(counts_before, counts_after, before, after or {})

    program.graph.lint()
    if getattr(program, "dialect", "ATEN") == "EDGE":
        for node in program.graph.nodes:
            if node.op == "call_function" and node.target is not operator.getitem:
                assert ops.aten_overload(node.target) is not node.target, f"{node.name} is not an edge op"
    check = compare(source, program, inputs)
    assert check.layout_mismatches == [], check.layout_mismatches
    if exact:
        assert check.bit_exact, f"outputs differ: max abs diff {check.max_abs_diff}"
    else:
        assert check.max_abs_diff <= atol, f"outputs differ: max abs diff {check.max_abs_diff} > {atol}"

    settled = dataflow(program)
    again = run_alone(program, rule)
    assert not again.applied, f"not idempotent: a second run applied {dict(again.applied)}"
    assert dataflow(program) == settled, "not idempotent: a second run changed the graph"
    return Rewritten(source, program, log)


def run_alone(program: ExportedProgram, rule) -> RewriteLog:
    """``rule`` alone to its fixed point on ``program``, in place, as ``rewrites.rewrite`` runs
    rules: an edge program lifted to ATen for it and spelled back, the graph checked after,
    and ``meta["val"]`` refreshed downstream of what the rule changed."""
    edit = GraphEdit(program)
    lifted = edge.lift(edit) if edit.edge else {}
    log = run_rules(edit, [rule])
    if edit.edge:
        edge.spell(edit, lifted)
    edit.finish()
    # the rule recomputes the nodes it builds; record their shapes and dtypes before the refresh,
    # which recomputes every node from its inputs, so a stale ``meta["val"]`` shows
    calls = [n for n in program.graph.nodes if n.op == "call_function"]
    missing = [n.name for n in calls if n.meta.get("val") is None]
    assert not missing, f"no meta['val'] on {missing}"
    stated = {n.name: _shapes(n.meta["val"]) for n in calls}
    refresh_meta(program.graph_module)
    replayed = {n.name: _shapes(n.meta.get("val")) for n in program.graph.nodes if n.op == "call_function"}
    stale = {name: (stated[name], replayed[name]) for name in stated if stated[name] != replayed[name]}
    assert not stale, f"meta['val'] (shape, dtype) the rule left differs from a replay: {stale}"
    return log


def _program(model, inputs, dialect: str) -> ExportedProgram:
    if isinstance(model, ExportedProgram):
        return model
    ep = torch.export.export(model, tuple(inputs))
    if dialect == "aten":
        return ep
    if dialect == "core":
        return ep.run_decompositions()
    if dialect == "edge":
        pytest.importorskip("executorch", reason="edge programs come with the executorch extra")
        from executorch.exir import to_edge

        return to_edge(ep).exported_program()
    raise ValueError(f"dialect is 'aten', 'core' or 'edge', not {dialect!r}")


def _assert_counts(counts_before: Counter, counts_after: Counter, before: dict, after: dict) -> None:
    for side, counts, want in (("before", counts_before, before), ("after", counts_after, after)):
        got = {op: counts[op] for op in want}
        assert got == dict(want), f"op counts {side}: {got} != {dict(want)}; all: {dict(counts)}"
    others = {op for op in counts_before | counts_after if op not in after and counts_before[op] != counts_after[op]}
    assert not others, "ops not in `after` changed count: " + ", ".join(
        f"{op} {counts_before[op]} -> {counts_after[op]}" for op in sorted(others))


def _shapes(value):
    if isinstance(value, torch.Tensor):
        return tuple(value.shape), value.dtype
    if isinstance(value, (list, tuple)):
        return tuple(_shapes(v) for v in value)
    return value


_SUBGRAPHS: dict[tuple, int] = {}  # interned across programs: one id, one subgraph, in any program


def dataflow(program: ExportedProgram) -> Counter:
    """The graph as a multiset of nodes, each named by its op, its constant arguments and the
    nodes it reads (recursively), not by its name or place: equal for two graphs that compute the
    same thing the same way, whatever the names and order an edit (or an edge lift) gave them."""
    ids: dict[Node, int] = {}
    table = _SUBGRAPHS

    def freeze(arg):
        if isinstance(arg, Node):
            return ("node", ids[arg])
        if isinstance(arg, (list, tuple)):
            return tuple(freeze(a) for a in arg)
        if isinstance(arg, dict):
            return tuple(sorted((k, freeze(v)) for k, v in arg.items()))
        return repr(arg)

    for node in program.graph.nodes:
        if node.op == "placeholder":
            key = ("placeholder", node.name)
        elif node.op == "get_attr":
            key = ("get_attr", str(node.target))
        else:
            # the op's type too: an edge op and the ATen op it wraps have one name
            target = (type(node.target).__name__, ops.op_name(node.target) if node.op == "call_function"
                      else str(node.target))
            key = (node.op, target, freeze(node.args), freeze(dict(node.kwargs)))
        ids[node] = table.setdefault(key, len(table))
    return Counter(ids.values())


def assert_same_constants(a: ExportedProgram, b: ExportedProgram) -> None:
    """The same parameters, buffers and lifted constants, value for value."""
    ta, tb = {**a.state_dict, **a.constants}, {**b.state_dict, **b.constants}
    assert set(ta) == set(tb), f"constants {sorted(ta)} -> {sorted(tb)}"
    for name, t in ta.items():
        if isinstance(t, torch.Tensor):
            assert torch.equal(t, tb[name]) and t.shape == tb[name].shape, f"constant {name} changed"


class ConvFanOut(nn.Module):
    """x -> conv -> (relu, mean): one conv whose output two ops read."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(y), y.mean((2, 3))
