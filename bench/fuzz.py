"""Fuzz the planner: N random graphs per target; counts and shrunk reproducers of failures.

    python bench/fuzz.py [-n 2000] [--targets ethos-u55,xnnpack] [--seed 0] [--edge] [--json bench/out/fuzz.json]

Each graph (``layoutopt.verify.fuzz.graphs``) is exported and optimized for each target. It
passes when the outputs equal eager within the documented tolerance (1e-4 of the output's
magnitude in float32, 1e-2 in float16; layout-only plans are bit-exact), the plan sits at its
solver's bound with real strides equal to planned ones; it is declined when layoutopt raises
a LayoutoptError; anything else fails. Failures are then shrunk by hypothesis and printed.
With ``--edge`` each graph is handed over as an ExecuTorch edge program (``to_edge``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections import Counter

from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, os.path.dirname(__file__))
from common import write_json  # noqa: E402

from layoutopt.targets import TARGETS
from layoutopt.verify.fuzz import check, graphs


def run_target(target: str, n: int, rng_seed: int, progress, edge: bool = False) -> dict:
    counts: Counter = Counter()
    fired: Counter = Counter()  # graphs on which each rule fired
    first_failure: list = []

    @seed(rng_seed)
    @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(graphs())
    def sweep(spec):
        outcome = check(spec, target, edge)
        counts[outcome.status] += 1
        fired.update(outcome.rewrites.keys())
        if outcome.status == "failed" and not first_failure:
            first_failure.append((spec, outcome.detail))
        progress()

    sweep()
    reproducer = None
    if first_failure:
        shrunk: list = []

        @seed(rng_seed)
        @settings(max_examples=n, phases=[Phase.generate, Phase.shrink], database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(graphs())
        def minimal(spec):
            outcome = check(spec, target, edge)
            if outcome.status == "failed":
                shrunk[:] = [(spec, outcome.detail)]
                raise AssertionError(outcome.detail)

        try:
            minimal()
        except AssertionError:
            pass
        spec, detail = (shrunk or first_failure)[0]
        reproducer = {"spec": repr(spec), "detail": detail}
    return {"target": target, "dialect": "edge" if edge else "aten", "graphs": sum(counts.values()), "passed": counts["passed"],
            "declined": counts["declined"], "failed": counts["failed"], "reproducer": reproducer,
            "rules_fired": dict(sorted(fired.items()))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=2000, help="graphs per target")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--edge", action="store_true", help="optimize ExecuTorch edge programs (to_edge) instead")
    p.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "out", "fuzz.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    rows = []
    targets = args.targets.split(",")
    with Progress() as bar:
        for target in targets:
            task = bar.add_task(target, total=args.n)
            start = time.perf_counter()
            row = run_target(target, args.n, args.seed, lambda: bar.advance(task), args.edge)
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
    dialect = "edge programs" if args.edge else "ATen programs"
    table = Table(title=f"layoutopt fuzz: {args.n} graphs per target ({dialect}), seed {args.seed}")
    for col in ["target", "graphs", "passed", "declined", "failed", "seconds"]:
        table.add_column(col, justify="left" if col == "target" else "right")
    for r in rows:
        table.add_row(r["target"], str(r["graphs"]), str(r["passed"]), str(r["declined"]), str(r["failed"]),
                      f"{r['seconds']:.0f}")
    console = Console(width=120)
    console.print(table)
    for r in rows:
        console.print(f"{r['target']}: graphs on which each rule fired: {r['rules_fired']}")
    for r in rows:
        if r["reproducer"]:
            console.print(f"[bold]{r['target']}[/]: {r['reproducer']['detail']}\n{r['reproducer']['spec']}")
    write_json(rows, args.json)


if __name__ == "__main__":
    main()
