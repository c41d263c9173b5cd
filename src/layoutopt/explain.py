"""Why one tensor got its layout, and what the graph would cost with it laid out otherwise.

The planned program is planned again with the node held, in turn, to each layout its op can
produce; the difference to the chosen plan is what that layout would cost (the rest of the
graph re-planned around it, so the figure is the best the alternative can do).
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import TYPE_CHECKING

from .errors import InputError
from .ir import ops
from .ir.access import fake_value
from .layout.cost import IOLayout
from .layout.problem import build_problem
from .layout.solve import solve
from .report.graph_view import layout_class
from .targets import get_target

if TYPE_CHECKING:
    from .api import Result


def _why(target, family, op: str, problem, name: str) -> str:
    if family in target.channels_last:
        return f"{target.name} runs {family.value} ops with channels-last kernels"
    if family in target.dense_last:
        return f"{target.name} needs the last dim innermost for {family.value} ops"
    if family is None and name in problem.replayed:
        return (f"{op} is not in the layout table, but replay shows its output follows its input's "
                "layout: it is planned as elementwise")
    if family is None:
        declined = next((d.reason for d in problem.declined if d.node == name), None)
        return declined or "the op is not in the layout table, so its operands stay as exported"
    return (f"{op} works in any layout on {target.name}: it follows its neighbours, "
            "which is the cheapest plan")


def explain(result: "Result", name: str) -> str:
    program = result.program
    nodes = {n.name: n for n in program.graph.nodes if n.op in ("call_function", "placeholder")}
    if name not in nodes:
        close = difflib.get_close_matches(name, list(nodes), n=5)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise InputError(f"no node '{name}' in the optimized program{hint}")
    node = nodes[name]
    target = get_target(result.report.target)
    value = fake_value(node)
    family = ops.family(node.target) if node.op == "call_function" else None
    op = "user input" if node.op == "placeholder" else ops.op_name(node.target)
    lines = [f"{name}: {op}" + (f", output {tuple(value.shape)}" if hasattr(value, "shape") else ""),
             f"  layout: {layout_class(value)}" + (f" (strides {tuple(value.stride())})"
                                                   if hasattr(value, "stride") else "")]
    if node.op == "placeholder":
        lines.append(f"  why: user inputs keep the I/O contract ({result.report.io_layout})")
        return "\n".join(lines) + "\n"
    problem = build_problem(program, target, IOLayout.parse(result.report.io_layout))
    lines.append(f"  why: {_why(target, family, op, problem, name)}")
    modes = problem.modes.get(name)
    if not modes:
        lines.append("  alternatives: none (the planner does not choose this op's layout)")
        return "\n".join(lines) + "\n"
    by_layout: dict[str, list] = {}
    for mode in modes:
        gives = dict(mode.gives)
        if -1 not in gives and not gives:
            continue
        label = next(iter(gives.values()))
        by_layout.setdefault(_class_of(value, label), []).append(mode)
    best = solve(problem).objective_bytes
    lines.append("  cost of the whole graph with this output held to each layout (rest re-planned):")
    for layout, held in sorted(by_layout.items()):
        cost = solve(dataclasses.replace(problem, modes={**problem.modes, name: held})).objective_bytes
        mark = "chosen" if layout == layout_class(value) else f"+{cost - best:,} bytes"
        lines.append(f"    {layout:14s} {cost:>12,} bytes  ({mark})")
    return "\n".join(lines) + "\n"


def _class_of(value, strides) -> str:
    import torch

    return layout_class(torch.empty_strided(tuple(value.shape), strides, device="meta"))
