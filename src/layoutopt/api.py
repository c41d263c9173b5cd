"""``optimize``: the one entry point; the CLI is a shell over it."""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.export import ExportedProgram

from .errors import ExportError, InputError, InternalError, LayoutoptError
from .ir.access import static_shape, tensor_outputs, user_input_nodes
from .ir.propagate import refresh_meta
from .layout.cost import IOLayout, Measurement, measure
from .layout.materialize import materialize
from .layout.problem import build_problem, user_input_names, user_output_nodes
from .layout.solve import solve
from .rewrites import RewriteLog, rewrite
from .report import Report
from .report.graph_view import view_of
from .targets import Target, get_target
from .verify.numerics import compare


class _StageClock:
    """Seconds spent in each stage of ``optimize`` (a stage entered twice adds up)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - begin

    def total(self) -> float:
        return time.perf_counter() - self.start


@dataclass
class Result:
    program: ExportedProgram
    report: Report


def as_inputs(example_inputs: Any) -> tuple:
    """Example inputs as the tuple of positional arguments (one tensor may be given bare)."""
    return tuple(example_inputs) if isinstance(example_inputs, (list, tuple)) else (example_inputs,)


def export_module(model: torch.nn.Module, example_inputs: Sequence[Any]) -> ExportedProgram:
    """``torch.export`` with failures turned into one readable line."""
    if example_inputs is None:
        raise InputError("an nn.Module needs example_inputs to be exported")
    args = as_inputs(example_inputs)
    try:
        return torch.export.export(model, args)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"torch.export failed on {type(model).__name__}: {first[:300]}") from exc


def check_static(ep: ExportedProgram) -> None:
    for node in ep.graph.nodes:
        for _, value in tensor_outputs(node):
            static_shape(node, value)


def check_inputs(ep: ExportedProgram, inputs: tuple) -> None:
    """Example inputs must match the program's user inputs in count, shape and dtype."""
    nodes = user_input_nodes(ep)
    if len(inputs) != len(nodes):
        raise InputError(f"the program takes {len(nodes)} input(s), {len(inputs)} were given")
    for i, (node, given) in enumerate(zip(nodes, inputs)):
        name = node.name
        want = node.meta.get("val")
        if not isinstance(want, torch.Tensor):
            continue
        if not isinstance(given, torch.Tensor):
            raise InputError(f"input {i} ('{name}') must be a tensor, got {type(given).__name__}")
        if tuple(given.shape) != tuple(want.shape) or given.dtype != want.dtype:
            raise InputError(f"input {i} ('{name}') is {tuple(given.shape)} {given.dtype}; the program "
                             f"expects {tuple(want.shape)} {want.dtype}")


def measure_program(ep: ExportedProgram, target: Target, io_layout: IOLayout) -> Measurement:
    return measure(ep.graph.nodes, user_input_names(ep), user_output_nodes(ep), target, io_layout)


def measure_transposes(program: ExportedProgram, target: "str | Target" = "xnnpack",
                       io_layout: "str | IOLayout" = "contiguous") -> Measurement:
    """The transposes ``program`` costs on ``target`` as it stands (the program is not changed)."""
    check_static(program)
    copied = copy.deepcopy(program)
    refresh_meta(copied.graph_module)
    return measure_program(copied, get_target(target), IOLayout.parse(io_layout))


def source_program(model: Any, example_inputs: Sequence[Any] | None,
                   edge: bool = True) -> tuple[ExportedProgram, tuple | None]:
    """The program ``model`` stands for (exported if a module; an ExecuTorch edge program's
    own if ``edge``), checked for static shapes, and its example inputs checked against it."""
    if edge and type(model).__name__ == "EdgeProgramManager" and hasattr(model, "exported_program"):
        source = model.exported_program()
    elif isinstance(model, ExportedProgram):
        source = model
    elif isinstance(model, torch.nn.Module):
        source = export_module(model, example_inputs)
    else:
        kinds = "an nn.Module, a torch.export.ExportedProgram" + (" or an ExecuTorch EdgeProgramManager"
                                                                 if edge else "")
        raise InputError(f"expected {kinds}, got {type(model).__name__}")
    check_static(source)
    inputs = None
    if example_inputs is not None:
        inputs = as_inputs(example_inputs)
        check_inputs(source, inputs)
    return source, inputs


def optimize(model: "torch.nn.Module | ExportedProgram", example_inputs: Sequence[Any] | None = None, *,
             target: "str | Target" = "xnnpack", io_layout: "str | IOLayout" = "contiguous",
             verify: bool = True, seed: int = 0, rewrites: bool = True, plan: bool = True,
             skip_rules: Sequence[str] = (), progress: "Callable[[str], None] | None" = None) -> Result:
    """Lay out every tensor of ``model`` so that an NHWC ``target`` moves the fewest bytes.

    ``model`` is an ``nn.Module`` (exported with ``example_inputs``), an ``ExportedProgram``, or
    an ExecuTorch ``EdgeProgramManager`` (rewritten and planned in the edge dialect, with
    ``_clone_dim_order`` conversions; ``result.program`` is then its edge ``ExportedProgram``);
    it is never modified.
    User inputs and outputs keep ``io_layout``. With ``verify`` the result is run against the
    original on seeded random inputs (or ``example_inputs``).
    With ``rewrites`` the op-form rules run before planning (``layoutopt.rewrites``), less
    those named in ``skip_rules``. Without ``plan`` no layout is assigned: for a backend that
    decides layouts itself from the ops it sees, only the rewrites matter. ``progress`` is
    called with the name of each stage as it starts.
    """
    stage = progress or (lambda name: None)
    clock = _StageClock()
    tgt = get_target(target)
    io = IOLayout.parse(io_layout)
    with clock("export"):  # the checks alone when given a program
        source, inputs = source_program(model, example_inputs)
    with clock("prepare"):
        program = copy.deepcopy(source)
        refresh_meta(program.graph_module)  # the strides eager gives, which export's meta may not

    stage("measure")
    with clock("measure"):
        before = measure_program(program, tgt, io)
        graph_before = view_of(program, before.charges)
    stage("rewrite")
    with clock("rewrite"):
        log = rewrite(program, tgt, skip_rules, planned=plan) if rewrites else RewriteLog()
    stage("plan")
    with clock("problem"):
        problem = build_problem(program, tgt, io)
    if plan:
        stage("solve")
        with clock("solve"):
            solution = solve(problem)
        with clock("materialize"):
            plan_mismatches = materialize(program, problem, solution.chosen)
    else:
        solution, plan_mismatches = None, []
    with clock("measure"):
        after = measure_program(program, tgt, io)

    verification = None
    if verify:
        stage("verify")
        with clock("verify"):
            try:
                verification = compare(source, program, inputs, seed)
            except LayoutoptError:
                raise
            except Exception as exc:  # never hand back a program that fails its own check
                raise InternalError(f"verification failed: {type(exc).__name__}: {exc}") from exc
    report = Report(
        target=tgt.name,
        io_layout=io.value,
        nodes=sum(1 for n in program.graph.nodes if n.op == "call_function"),
        transposes_before=before.transposes,
        transposes_after=after.transposes,
        transpose_bytes_before=before.bytes,
        transpose_bytes_after=after.bytes,
        lower_bound_bytes=None if solution is None else solution.lower_bound_bytes,
        solver_status="not planned" if solution is None else solution.solver_status,
        max_abs_diff=None if verification is None else verification.max_abs_diff,
        bit_exact=None if verification is None else verification.bit_exact,
        seconds=clock.total(),
        stage_seconds=clock.seconds,
        declined=[{"op": d.op, "node": d.node, "reason": d.reason} for d in problem.declined]
        + [{"op": r.op, "node": r.node, "reason": f"{r.rule}: {r.reason}"} for r in log.rejects],
        rewrites=dict(sorted(log.applied.items())),
        truncated=[{"cap": t.cap, "node": t.node, "detail": t.detail} for t in problem.truncated],
        conversions_after=[{"node": c.node, "kind": c.kind, "bytes": c.bytes, "detail": c.detail}
                           for c in after.charges],
        layout_mismatches=[] if verification is None else verification.layout_mismatches,
        plan_mismatches=plan_mismatches,
        graph_before=graph_before,
    )
    with clock("measure"):
        report.graph_after = view_of(program, after.charges)
    report.seconds = clock.total()
    return Result(program, report)
