"""ExecuTorch's stock flows against the same flows with layoutopt, side by side in one run.

    python bench/backends.py [--models a,b] [--flows ethos-u55-128,ethos-u85-256,cortex-m,xnnpack]
                               [--reps 15] [--json bench/out/backends.json]

Per model and flow, stock (``optimize=False``) and layoutopt (``optimize=True``):
  Ethos-U     TOSA TRANSPOSE count, Vela cycles (total, NPU, in Transpose ops), SRAM and flash
              bytes, delegated partitions, ops left on the CPU, lowering seconds (quantization
              excluded), and whether both TOSA files compute the same outputs bit for bit in the
              TOSA reference model (seeded int8 inputs over the whole range)
  Cortex-M    convolutions/linears lowered to CMSIS-NN kernels, float ones left, cortex_m
              transposes and the bytes they move, layout copies left to portable kernels
              (float permutes, dim-order clones) and their bytes (the .pte needs Cortex-M
              kernels to run, so they are counted in the lowered program), lowering seconds
              (quantization excluded); stock is the backend's default pass list, and the
              backend's explicit-layout pipeline without layoutopt is a third column
              ("explicit") whose int8 outputs layoutopt's program must reproduce
  XNNPACK     median run time of the .pte through ExecuTorch's Python runtime, the two programs
              timed in the same process with interleaved repetitions; max abs diff to eager
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import write_json  # noqa: E402
from models import EXECUTORCH, SLOW  # noqa: E402

from layoutopt.errors import LayoutoptError  # noqa: E402
from layoutopt.executorch import FLOWS, compile_cortex_m, compile_flow, xnnpack  # noqa: E402
from layoutopt.executorch.figures import figures  # noqa: E402

#: the figures where layoutopt must never lose, and which way is better
NEVER_WORSE = {"TOSA TRANSPOSE": -1, "Vela cycles total": -1, "CMSIS-NN conv/linear kernels": +1}


def xnnpack_times(stock, ours, inputs, reps):
    methods = [xnnpack.load(stock["pte"]), xnnpack.load(ours["pte"])]
    for m in methods:
        xnnpack.run(m, inputs)  # warm-up
    times = [[], []]
    for _ in range(reps):
        for i, m in enumerate(methods):
            times[i].append(xnnpack.seconds_per_run(m, inputs))
    return [statistics.median(t) * 1e3 for t in times]


def stock_result(name, flow, model, inputs, root, cache):
    """The stock flow's result; for Ethos-U from ``cache`` when an earlier run left it there
    (ExecuTorch is pinned, so its stock lowering of a model does not change)."""
    out_dir = os.path.join(root, name, flow, "stock")
    if not cache or not flow.startswith("ethos-u"):
        return compile_flow(flow, model, inputs, False, out_dir)
    folder = os.path.join(cache, executorch_version(), name, flow, fingerprint(model, inputs))
    record = os.path.join(folder, "result.json")
    if os.path.exists(record):
        with open(record) as f:
            result = json.load(f)
        result["tosa_files"] = [os.path.join(folder, os.path.basename(os.path.dirname(t)) + ".tosa")
                                for t in result["tosa_files"]]
        result["cached"] = True
        return result
    result = compile_flow(flow, model, inputs, False, out_dir)
    os.makedirs(folder, exist_ok=True)
    for t in result["tosa_files"]:
        shutil.copy(t, os.path.join(folder, os.path.basename(os.path.dirname(t)) + ".tosa"))
    with open(record, "w") as f:
        json.dump(result, f, indent=1, default=str)
    return result


def fingerprint(model, inputs) -> str:
    """A digest of the model's weights and the example inputs: a cached stock row is reused
    only for the very same model."""
    import hashlib

    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    for x in inputs:
        digest.update(x.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def executorch_version() -> str:
    from importlib.metadata import version

    return f"executorch-{version('executorch')}"


def run(name, flow, reps, root, cache=None):
    model, inputs = EXECUTORCH[name]()
    stock = stock_result(name, flow, model, inputs, root, cache)
    ours = compile_flow(flow, model, inputs, True, os.path.join(root, name, flow, "layoutopt"))
    row = {"model": name, "flow": flow, "stock": figures(stock), "layoutopt": figures(ours),
           "rewrites": (ours["layoutopt"] or {}).get("rewrites", {}),
           "seconds": [round(stock["seconds"], 1), round(ours["seconds"], 1)], "stock_cached": "cached" in stock}
    if flow.startswith("ethos-u"):
        from layoutopt.executorch.reference import compare, verdict

        row["reference"] = compare(stock["tosa_files"], ours["tosa_files"])
        row["layoutopt"]["TOSA reference"] = row["stock"]["TOSA reference"] = verdict(row["reference"])
        row["arm_layout"] = ours["arm_layout"]
    if flow == "cortex-m":
        explicit = compile_cortex_m(model, inputs, optimize=False, explicit_layout=True,
                                    out_dir=os.path.join(root, name, flow, "explicit"))
        row["explicit"] = figures(explicit)
        row["layoutopt"]["outputs vs explicit"] = row["stock"]["outputs vs explicit"] = (
            same_outputs(explicit["outputs"], ours["outputs"]) if explicit["outputs"] and ours["outputs"]
            else f"not run: {explicit['outputs_error'] or ours['outputs_error']}")
    if flow == "xnnpack":
        expected = model(*inputs)
        expected = expected[0] if isinstance(expected, (tuple, list)) else expected
        row["stock"]["max abs diff to eager"] = float((stock["outputs"][0] - expected).abs().max())
        row["layoutopt"]["max abs diff to eager"] = float((ours["outputs"][0] - expected).abs().max())
        row["stock"]["median ms"], row["layoutopt"]["median ms"] = xnnpack_times(stock, ours, inputs, reps)
    row["worse"] = [k for k, sign in NEVER_WORSE.items()
                    if k in row["stock"] and (row["layoutopt"][k] - row["stock"][k]) * sign < 0]
    return row


def same_outputs(expected, got) -> str:
    """"bit-exact"; "float rounding" where only float ops reading the same int8 values differ (a
    float reduction summed in another order); else how far apart two lowered programs' outputs
    are (largest difference, and the share of equal elements)."""
    diffs = [(a - b).abs().flatten() for a, b in zip(expected, got)]
    if all(not d.any() for d in diffs):
        return "bit-exact"
    d = torch.cat(diffs)
    scale = float(torch.cat([a.abs().flatten() for a in expected]).max())
    if float(d.max()) <= 1e-5 * scale:
        return f"float rounding (max diff {float(d.max()):.2g})"
    return f"max diff {float(d.max()):.3g} ({float((d == 0).float().mean()) * 100:.1f} % equal)"


def cell(row, key):
    if key.endswith("(explicit)"):
        value = row.get("explicit", {}).get(key.removesuffix(" (explicit)"))
        return "-" if value is None else f"{value:,}"
    a, b = row["stock"].get(key), row["layoutopt"].get(key)
    if a is None:
        return "-"
    if isinstance(a, str):
        return b
    if isinstance(a, float):
        return f"{a:.3g} -> {b:.3g}"
    return f"{a:,} -> {b:,}"


COLUMNS = {
    "ethos-u": ["TOSA TRANSPOSE", "Vela cycles total", "Vela NPU cycles", "Vela Transpose cycles", "SRAM bytes",
                "flash bytes", "CPU ops", "lowering seconds", "TOSA reference"],
    "cortex-m": ["CMSIS-NN conv/linear kernels", "float conv/linear left", "cortex_m transposes",
                 "cortex_m transpose bytes", "portable layout copies", "portable copy bytes", "lowering seconds",
                 "cortex_m transposes (explicit)", "cortex_m transpose bytes (explicit)",
                 "portable layout copies (explicit)", "portable copy bytes (explicit)", "outputs vs explicit"],
    "xnnpack": ["median ms", "delegated partitions", "CPU ops", "max abs diff to eager"],
}


def print_tables(rows):
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    for kind, cols in COLUMNS.items():
        chosen = [r for r in rows if r["flow"].startswith(kind) and "error" not in r]
        if not chosen:
            continue
        table = Table(title=f"{kind}: stock -> layoutopt")
        for c in ["model", "flow", *cols, "rewrites", "worse"]:
            table.add_column(c, justify="left" if c in ("model", "flow", "rewrites") else "right")
        for r in chosen:
            rules = ", ".join(f"{k} {v}" for k, v in r["rewrites"].items()) or "-"
            table.add_row(r["model"], r["flow"], *(cell(r, c) for c in cols), rules, ", ".join(r["worse"]) or "no")
        console.print(table)
    for r in rows:
        if "error" in r:
            console.print(f"{r['model']} / {r['flow']}: {r['error']}")


def markdown(rows) -> str:
    """The same tables as GitHub markdown (for the README)."""
    out = []
    for kind, cols in COLUMNS.items():
        chosen = [r for r in rows if r["flow"].startswith(kind) and "error" not in r]
        if not chosen:
            continue
        out.append(f"| model | flow | {' | '.join(cols)} | rewrites |")
        out.append("|" + "---|" * (len(cols) + 3))
        for r in chosen:
            rules = ", ".join(f"{k} {v}" for k, v in r["rewrites"].items()) or "-"
            out.append(f"| {r['model']} | {r['flow']} | " + " | ".join(cell(r, c) for c in cols) + f" | {rules} |")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(m for m in EXECUTORCH if m not in SLOW))
    p.add_argument("--flows", default=",".join(FLOWS))
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "out", "backends.json"))
    p.add_argument("--keep", help="folder for the .pte files and Vela's output (default: a temporary one)")
    p.add_argument("--stock-cache", metavar="DIR", help="reuse (or store) the stock Ethos-U rows and TOSA files in DIR")
    p.add_argument("--markdown", metavar="JSON", help="print the tables of an earlier run's JSON as markdown")
    args = p.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as f:
            print(markdown(json.load(f)))
        return
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or tmp
        for name in args.models.split(","):
            for flow in args.flows.split(","):
                start = time.perf_counter()
                try:
                    row = run(name, flow, args.reps, root, args.stock_cache)
                except LayoutoptError as exc:
                    row = {"model": name, "flow": flow, "error": str(exc)}
                print(f"{name} / {flow}: {time.perf_counter() - start:.0f} s"
                      + (f" (error: {row['error']})" if "error" in row else ""), flush=True)
                rows.append(row)
                write_json(rows, args.json)  # a long run keeps what it has measured
    torch.set_printoptions()
    print_tables(rows)
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
