"""``layoutopt zoo``: every bundled model optimized in turn, with a progress bar per model and
stage, one table and one JSON file of the figures; optionally the ExecuTorch flow of the
target, stock and with layoutopt, side by side."""
from __future__ import annotations

import json
import logging
import tempfile
import time

from ..errors import InputError, LayoutoptError
from . import build, names

STAGES = ("export", "measure", "rewrite", "plan", "solve", "verify")
MIB = 1024 * 1024
#: the ExecuTorch figures the zoo table shows per backend
HEADLINE = {"ethos-u": ("TOSA TRANSPOSE", "Vela cycles total"),
            "cortex-m": ("CMSIS-NN conv/linear kernels", "cortex_m transposes"),
            "xnnpack": ("delegated partitions", "CPU ops")}


def _row(name: str, model, inputs, target: str, progress) -> dict:
    import layoutopt

    start = time.perf_counter()
    result = layoutopt.optimize(model, inputs, target=target, progress=progress)
    r = result.report
    return {"model": name, "nodes": r.nodes, "transposes_before": r.transposes_before,
            "transposes_after": r.transposes_after, "mib_before": r.transpose_bytes_before / MIB,
            "mib_after": r.transpose_bytes_after / MIB,
            "lower_bound_mib": None if r.lower_bound_bytes is None else r.lower_bound_bytes / MIB,
            "rewrites": r.rewrites, "seconds": time.perf_counter() - start, "max_abs_diff": r.max_abs_diff}


def _compare(row: dict, model, inputs, target: str, out_dir: str) -> None:
    from ..executorch import FLOW_OF_TARGET, compile_flow
    from ..executorch.figures import figures

    flow = FLOW_OF_TARGET.get(target)
    if flow is None:
        raise InputError(f"target '{target}' has no ExecuTorch flow; choose one of: {', '.join(FLOW_OF_TARGET)}")
    for optimize in (False, True):
        result = compile_flow(flow, model, inputs, optimize, f"{out_dir}/{row['model']}/{optimize}")
        shown = figures(result)
        for key in HEADLINE[result["backend"]]:
            row.setdefault("executorch", {}).setdefault(key, []).append(shown[key])


def run_zoo(models: list[str] | None, target: str, json_path: str | None, compare: str | None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    import layoutopt

    layoutopt.get_target(target)
    chosen = models or names()
    unknown = [m for m in chosen if m not in names()]
    if unknown:
        raise InputError(f"unknown model(s) {', '.join(unknown)}; choose from: {', '.join(names())}")
    if compare:
        logging.disable(logging.WARNING)
    console = Console(width=160)
    rows = []
    stages = STAGES + (("stock flow", "layoutopt flow") if compare else ())
    with tempfile.TemporaryDirectory() as tmp, Progress(
            TextColumn("{task.fields[model]:24s}"), BarColumn(), TextColumn("{task.description:14s}"),
            TimeElapsedColumn(), console=console, transient=False) as bar:
        for name in chosen:
            task = bar.add_task("export", total=len(stages), model=name)

            def step(stage: str, task=task) -> None:
                bar.update(task, description=stage, completed=stages.index(stage))

            try:
                model, inputs = build(name)
                row = _row(name, model, inputs, target, step)
                if compare:
                    step("stock flow")
                    _compare(row, model, inputs, target, tmp)
            except LayoutoptError as exc:
                row = {"model": name, "error": str(exc)}
            bar.update(task, description="done" if "error" not in row else "error", completed=len(stages))
            rows.append(row)
    table = Table(title=f"layoutopt zoo, target {target}")
    columns = ["model", "nodes", "transposes", "MiB", "lower bound MiB", "rewrites", "seconds", "max abs diff"]
    extra = list(rows[0].get("executorch", {})) if rows and compare else []
    for c in columns + [f"{k} (stock -> layoutopt)" for k in extra]:
        table.add_column(c, justify="left" if c in ("model", "rewrites") else "right")
    for r in rows:
        if "error" in r:
            table.add_row(r["model"], f"error: {r['error']}")
            continue
        table.add_row(
            r["model"], str(r["nodes"]), f"{r['transposes_before']} -> {r['transposes_after']}",
            f"{r['mib_before']:.3f} -> {r['mib_after']:.3f}",
            "-" if r["lower_bound_mib"] is None else f"{r['lower_bound_mib']:.3f}",
            ", ".join(f"{k} {v}" for k, v in r["rewrites"].items()) or "-", f"{r['seconds']:.1f}",
            "bit-exact" if r["max_abs_diff"] == 0 else f"{r['max_abs_diff']:.2g}",
            *(f"{a:,} -> {b:,}" for a, b in (r.get("executorch", {}).get(k, ("-", "-")) for k in extra)))
    console.print(table)
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"target": target, "rows": rows}, f, indent=2)
        console.print(f"wrote {json_path}")
    return 0 if all("error" not in r for r in rows) else 1
