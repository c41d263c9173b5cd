"""Sweep every public vision and audio architecture this machine can export, on cortex-m and cpu.

    python bench/sweep.py [--models a,b] [--targets cortex-m,cpu] [--json bench/out/sweep.json]

Per model and target, side by side in one run: nodes; transposes / bytes as exported, with
PyTorch's own ``channels_last()`` (module and input converted; the input's conversion charged
by the NCHW contract), with layoutopt (NCHW I/O) and its lower bound, and with channels-last
I/O; declined ops; max abs diff; plan and layout mismatches; ``torch.export`` seconds and
``optimize`` seconds without verification (cold replay cache), each the median of
``--timings`` runs with a garbage collection before each (a long sweep otherwise charges one
model for the collection of the ones before it), and the stages' seconds of the median run.
Models that fail to build or export are listed with the reason. A second table times a block repeated n and 4n times. The models are in
``sweep_models.py``; torchvision and timm are reported as unavailable when they do not import.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import logging
import math
import os
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
from sweep_models import REPEATS, SWEEP  # noqa: E402

import layoutopt  # noqa: E402
from layoutopt.ir import ops  # noqa: E402
from layoutopt.ir.propagate import forget_replays, replay_cache  # noqa: E402

MIB = 1024 * 1024
TOLERANCE = 1e-4  # float32 outputs of random-init models; larger is a numeric mismatch
STAGES = ("export", "prepare", "measure", "rewrite", "problem", "solve", "materialize", "verify")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def unavailable() -> list[str]:
    """Model libraries the sweep would take that do not import here, with the reason."""
    lines = []
    for lib in ("torchvision", "timm"):
        try:
            __import__(lib)
        except Exception as exc:  # noqa: BLE001 - a CUDA build raises RuntimeError, a missing one ImportError
            lines.append(f"{lib} does not import ({first_line(exc)}): its models are not in this sweep")
    return lines


def declined_is_elementwise(op: str) -> bool:
    """A declined op that should never be declined: ATen-tagged pointwise, or in-place."""
    parts = op.split(".")  # "aten.add.Tensor"
    if len(parts) < 2 or parts[0] != "aten":
        return False
    name, overload = parts[1], parts[2] if len(parts) > 2 else "default"
    if name.endswith("_") and not name.startswith("_"):
        return True
    found = getattr(getattr(torch.ops.aten, name, None), overload, None)
    return found is not None and torch.Tag.pointwise in found.tags


def channels_last(model, inputs, targets):
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cl_inputs = tuple(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs)
    ep = torch.export.export(cl_model, cl_inputs)
    return {t: layoutopt.measure_transposes(ep, t) for t in targets}


def median_run(run, timings):
    """``run()``'s median seconds over ``timings`` calls, each after a garbage collection,
    and the result of the median call. ``run`` returns ``(seconds, result)``."""
    results = []
    for _ in range(timings):
        gc.collect()
        results.append(run())
    results.sort(key=lambda sr: sr[0])
    return statistics.median(s for s, _ in results), results[(len(results) - 1) // 2][1]


def cold_optimize(ep, inputs, target, timings):
    """``optimize(verify=False)``'s median seconds from a cold replay cache, and that run's report."""
    def run():
        forget_replays(ep.graph_module)
        report = layoutopt.optimize(ep, inputs, target=target, verify=False).report
        return report.seconds, report
    return median_run(run, timings)


def plan_row(name, kind, ep, inputs, target, export_s, base, timings):
    forget_replays(ep.graph_module)
    r = layoutopt.optimize(ep, inputs, target=target).report
    cl_io = layoutopt.optimize(ep, inputs, target=target, io_layout="channels_last", verify=False).report
    optimize_s, timed = cold_optimize(ep, inputs, target, timings)
    stages = {s: timed.stage_seconds.get(s, 0.0) for s in STAGES}
    return {
        "model": name, "kind": kind, "target": target, "nodes": r.nodes,
        "exported_transposes": r.transposes_before, "exported_bytes": r.transpose_bytes_before,
        "channels_last_transposes": None if base is None else base.transposes,
        "channels_last_bytes": None if base is None else base.bytes,
        "layoutopt_transposes": r.transposes_after, "layoutopt_bytes": r.transpose_bytes_after,
        "lower_bound_bytes": r.lower_bound_bytes, "optimality_gap": r.optimality_gap,
        "cl_io_transposes": cl_io.transposes_after, "cl_io_bytes": cl_io.transpose_bytes_after,
        "declined": r.declined, "declined_ops": sorted({d["op"] for d in r.declined}),
        "rewrites": r.rewrites, "truncated": len(r.truncated),
        "max_abs_diff": r.max_abs_diff, "bit_exact": r.bit_exact,
        "plan_mismatches": r.plan_mismatches + cl_io.plan_mismatches, "layout_mismatches": r.layout_mismatches,
        "export_seconds": export_s, "optimize_seconds": optimize_s, "ratio": optimize_s / export_s,
        "stage_seconds": stages,
    }


def warm_up():
    """Export and optimize a toy model once, so that the first model's seconds do not carry
    the process's one-time costs (imports, first dispatch of each op)."""
    model, inputs = SWEEP["mobilenet_v2_nano"][1]()
    layoutopt.optimize(torch.export.export(model, inputs), inputs, target="cpu")


def timed_export(model, inputs):
    start = time.perf_counter()
    ep = torch.export.export(model, inputs)
    return time.perf_counter() - start, ep


def run_model(name, targets, timings):
    kind, builder = SWEEP[name]
    try:
        torch.manual_seed(0)
        model, inputs = builder()
        model = model.eval()
    except Exception as exc:  # noqa: BLE001 - every failure is a row, never a crash
        return [], {"model": name, "kind": kind, "stage": "build", "reason": first_line(exc)}
    try:
        export_s, ep = median_run(lambda: timed_export(model, inputs), timings)
    except Exception as exc:  # noqa: BLE001
        return [], {"model": name, "kind": kind, "stage": "export", "reason": first_line(exc)}
    try:
        base = channels_last(model, inputs, targets)
    except Exception:  # noqa: BLE001 - the baseline is optional; the row says it is missing
        base = {}
    rows = []
    for target in targets:
        try:
            rows.append(plan_row(name, kind, ep, inputs, target, export_s, base.get(target), timings))
        except Exception as exc:  # noqa: BLE001
            return rows, {"model": name, "kind": kind, "stage": f"optimize ({target})", "reason": first_line(exc)}
    return rows, None


def repeat_rows(target, timings):
    rows = []
    for name, make in REPEATS.items():
        seconds, nodes = [], []
        for n in (1, 4):
            torch.manual_seed(0)
            model, inputs = make(n)()
            ep = torch.export.export(model.eval(), inputs)
            optimize_s, r = cold_optimize(ep, inputs, target, timings)
            seconds.append(optimize_s)
            nodes.append(r.nodes)
        rows.append({"model": name, "target": target, "nodes": nodes, "seconds": seconds,
                     "time_ratio": seconds[1] / seconds[0], "node_ratio": nodes[1] / nodes[0]})
    return rows


def summary(rows, failures, repeats):
    def bad(pred):
        return sorted({f"{r['model']} ({r['target']})" for r in rows if pred(r)})

    mismatch = bad(lambda r: r["max_abs_diff"] is None or math.isnan(r["max_abs_diff"])
                   or r["max_abs_diff"] > TOLERANCE)
    return {
        "models_planned": len({r["model"] for r in rows}), "models_failed": len(failures),
        "cnn_not_1_transpose": bad(lambda r: r["kind"] == "cnn" and r["layoutopt_transposes"] != 1),
        "cnn_not_0_with_cl_io": bad(lambda r: r["kind"] == "cnn" and r["cl_io_transposes"] != 0),
        "more_bytes_than_channels_last": bad(lambda r: r["channels_last_bytes"] is not None
                                             and r["layoutopt_bytes"] > r["channels_last_bytes"]),
        # the planner's barriers (ops outside its table), not the rules' turned-down candidates
        "elementwise_declined": sorted({f"{d['op']} in {r['model']}" for r in rows for d in r["declined"]
                                        if d["reason"].startswith("op not in the layout table")
                                        and declined_is_elementwise(d["op"])}),
        "planner_declined": sorted({d["op"] for r in rows for d in r["declined"]
                                    if d["reason"].startswith("op not in the layout table")}),
        "numeric_mismatches": mismatch,
        "plan_mismatches": bad(lambda r: r["plan_mismatches"]),
        "layout_mismatches": bad(lambda r: r["layout_mismatches"]),
        "slower_than_1_5x_export": bad(lambda r: r["ratio"] > 1.5),
        "repeats_over_4_5x": [f"{r['model']} {r['time_ratio']:.2f}x" for r in repeats if r["time_ratio"] > 4.5],
    }


def tables(rows, failures, repeats, notes, summ):
    from rich.table import Table

    def cell(n, b):
        return "-" if n is None else f"{n} / {b / MIB:.3f}"

    t = Table(title="layoutopt sweep: transposes / MiB moved (NCHW I/O unless noted)")
    cols = ["model", "kind", "target", "nodes", "exported", "channels_last()", "layoutopt", "bound MiB",
            "NHWC I/O", "declined", "max abs diff", "export s", "optimize s", "ratio", "problem/solve/mat. s"]
    for col in cols:
        t.add_column(col, justify="left" if col in ("model", "kind", "declined") else "right")
    for r in rows:
        s = r["stage_seconds"]
        t.add_row(r["model"], r["kind"], r["target"], str(r["nodes"]),
                  cell(r["exported_transposes"], r["exported_bytes"]),
                  cell(r["channels_last_transposes"], r["channels_last_bytes"]),
                  cell(r["layoutopt_transposes"], r["layoutopt_bytes"]), f"{r['lower_bound_bytes'] / MIB:.3f}",
                  cell(r["cl_io_transposes"], r["cl_io_bytes"]),
                  ", ".join(o.split("::")[-1] for o in r["declined_ops"]) or "-",
                  "bit-exact" if r["bit_exact"] else f"{r['max_abs_diff']:.2g}",
                  f"{r['export_seconds']:.2f}", f"{r['optimize_seconds']:.2f}", f"{r['ratio']:.2f}",
                  f"{s['problem']:.2f}/{s['solve']:.2f}/{s['materialize']:.2f}")
    out = [t]
    if failures:
        f = Table(title="models that did not export")
        for col in ("model", "kind", "stage", "reason"):
            f.add_column(col)
        for r in failures:
            f.add_row(r["model"], r["kind"], r["stage"], r["reason"])
        out.append(f)
    if repeats:
        rt = Table(title="a block repeated n and 4n times: optimize seconds (no verify)")
        for col in ("model", "target", "nodes", "seconds", "nodes x", "time x"):
            rt.add_column(col, justify="left" if col == "model" else "right")
        for r in repeats:
            rt.add_row(r["model"], r["target"], f"{r['nodes'][0]} -> {r['nodes'][1]}",
                       f"{r['seconds'][0]:.2f} -> {r['seconds'][1]:.2f}", f"{r['node_ratio']:.2f}",
                       f"{r['time_ratio']:.2f}")
        out.append(rt)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(SWEEP), help="comma-separated, from: " + ", ".join(SWEEP))
    p.add_argument("--targets", default="cortex-m,cpu")
    p.add_argument("--no-repeats", action="store_true", help="skip the repeated-block timing")
    p.add_argument("--timings", type=int, default=3, help="timed runs per export and optimize (median)")
    p.add_argument("--no-replay-cache", action="store_true", help="replay every op probe (for comparison)")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "out", "sweep.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from rich.console import Console

    console = Console(width=240)
    notes = unavailable()
    for line in notes:
        console.print(line)
    targets = args.targets.split(",")
    if args.no_replay_cache:
        replay_cache(False).__enter__()
    warm_up()
    rows, failures = [], []
    names = args.models.split(",")
    for i, name in enumerate(names, 1):
        got, failure = run_model(name, targets, args.timings)
        rows += got
        if failure:
            failures.append(failure)
        done = "; ".join(f"{r['target']} {r['exported_transposes']} -> {r['layoutopt_transposes']}, "
                         f"{r['ratio']:.2f}x export" for r in got)
        console.print(f"[{i}/{len(names)}] {name}: {done}{'; failed: ' + failure['reason'] if failure else ''}")
    repeats = [] if args.no_repeats else repeat_rows(targets[0], args.timings)
    summ = summary(rows, failures, repeats)
    for table in tables(rows, failures, repeats, notes, summ):
        console.print(table)
    for key, value in summ.items():
        console.print(f"{key}: {value if not isinstance(value, list) else (', '.join(value) or 'none')}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"unavailable": notes, "summary": summ, "rows": rows, "failures": failures, "repeats": repeats},
                  f, indent=2, default=str)
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
