"""Benchmark the planner: transposes and bytes before and after, against two baselines.

    python bench/planner.py [--models a,b] [--target ethos-u55] [--json bench/out/planner.json]

Per model, side by side in one run:
  exported      the graph as torch.export gives it
  channels_last PyTorch's own propagation: model.to(memory_format=torch.channels_last) with a
                channels-last input (the user converts the input: charged by the NCHW contract)
  layoutopt     optimize() with NCHW I/O, its solver's lower bound, and with channels-last I/O
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import write_json  # noqa: E402
from models import ALL  # noqa: E402

import layoutopt  # noqa: E402

MIB = 1024 * 1024


def channels_last_baseline(model, inputs, target):
    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cl_inputs = tuple(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs)
    ep = torch.export.export(cl_model, cl_inputs)
    return layoutopt.measure_transposes(ep, target)


def run(name, target):
    model, inputs = ALL[name]()
    start = time.perf_counter()
    ep = torch.export.export(model, inputs)
    export_s = time.perf_counter() - start
    base = channels_last_baseline(model, inputs, target)
    result = layoutopt.optimize(ep, inputs, target=target)
    cl_io = layoutopt.optimize(ep, inputs, target=target, io_layout="channels_last", verify=False)
    r = result.report
    return {
        "model": name, "nodes": r.nodes, "target": target,
        "exported_transposes": r.transposes_before, "exported_bytes": r.transpose_bytes_before,
        "channels_last_transposes": base.transposes, "channels_last_bytes": base.bytes,
        "layoutopt_transposes": r.transposes_after, "layoutopt_bytes": r.transpose_bytes_after,
        "lower_bound_bytes": r.lower_bound_bytes, "optimality_gap": r.optimality_gap,
        "layoutopt_cl_io_transposes": cl_io.report.transposes_after,
        "layoutopt_cl_io_bytes": cl_io.report.transpose_bytes_after,
        "max_abs_diff": r.max_abs_diff, "bit_exact": r.bit_exact,
        "declined": sorted({d["op"] for d in r.declined}),
        "rewrites": r.rewrites,
        "export_seconds": export_s, "optimize_seconds": r.seconds,
    }


def table(rows):
    from rich.table import Table

    t = Table(title=f"layoutopt planner, target {rows[0]['target'] if rows else ''}: transposes / MiB moved")
    for col in ["model", "nodes", "exported", "channels_last()", "layoutopt", "lower bound", "gap",
                "layoutopt, NHWC I/O", "rewrites", "max abs diff", "seconds"]:
        t.add_column(col, justify="left" if col == "model" else "right")

    def cell(n, b):
        return f"{n} / {b / MIB:.2f}"

    for r in rows:
        t.add_row(r["model"], str(r["nodes"]), cell(r["exported_transposes"], r["exported_bytes"]),
                  cell(r["channels_last_transposes"], r["channels_last_bytes"]),
                  cell(r["layoutopt_transposes"], r["layoutopt_bytes"]), f"{r['lower_bound_bytes'] / MIB:.2f}",
                  f"{r['optimality_gap']:.1%}",
                  cell(r["layoutopt_cl_io_transposes"], r["layoutopt_cl_io_bytes"]),
                  " ".join(f"{k}:{v}" for k, v in r["rewrites"].items()) or "-",
                  "bit-exact" if r["bit_exact"] else f"{r['max_abs_diff']:.2g}", f"{r['optimize_seconds']:.1f}")
    return t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(ALL), help="comma-separated, from: " + ", ".join(ALL))
    p.add_argument("--target", default="ethos-u55")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "out", "planner.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    from rich.console import Console
    from rich.progress import track

    rows = [run(name, args.target) for name in track(args.models.split(","), description="planning")]
    Console(width=200).print(table(rows))
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
