"""The figures of a compile result that people compare, as named rows: one definition for the
CLI's table and the benchmark's columns."""
from __future__ import annotations

from typing import Any, Callable

Row = tuple[str, Callable[[dict], Any]]


def _ops(counts: dict) -> int:
    return sum(counts.values())


def _planned(records: list[dict] | None, key: str) -> str:
    """A figure of the Arm-stage layout pass over all partitions, before -> after, or "-" when
    it did not run; for its cost, the solver's lower bound in brackets."""
    if not records:
        return "-"
    before = sum(r[f"{key}_before"] for r in records)
    after = sum(r[f"{key}_after"] for r in records)
    if key != "cost":
        return f"{before:,} -> {after:,}"
    bound = sum(r["cost_lower_bound"] for r in records)
    return f"{before:,} -> {after:,} ({bound:,})"


ROWS: dict[str, list[Row]] = {
    "ethos-u": [
        ("TOSA TRANSPOSE", lambda r: r["tosa_ops"].get("TRANSPOSE", 0)),
        ("TOSA ops (no constants)", lambda r: sum(n for op, n in r["tosa_ops"].items() if not op.startswith("CONST"))),
        ("Vela cycles total", lambda r: r["vela"]["cycles_total"]),
        ("Vela NPU cycles", lambda r: r["vela"]["cycles_npu"]),
        ("Vela Transpose ops", lambda r: r["vela"]["transposes"]),
        ("Vela Transpose cycles", lambda r: r["vela"]["transpose_cycles"]),
        ("SRAM bytes", lambda r: r["vela"]["sram_total_bytes"]),
        ("flash bytes", lambda r: r["vela"]["off_chip_flash_total_bytes"] + r["vela"]["on_chip_flash_total_bytes"]),
        ("delegated partitions", lambda r: r["partitions"]),
        ("CPU ops", lambda r: _ops(r["cpu_ops"])),
        ("lowering seconds", lambda r: round(r["lower_seconds"], 1)),
        ("planned transposes", lambda r: _planned(r.get("arm_layout"), "transposes")),
        ("planned transpose bytes", lambda r: _planned(r.get("arm_layout"), "transpose_bytes")),
        ("planned cost (bound)", lambda r: _planned(r.get("arm_layout"), "cost")),
    ],
    "xnnpack": [
        ("delegated partitions", lambda r: r["partitions"]),
        ("CPU ops", lambda r: _ops(r["cpu_ops"])),
    ],
    "cortex-m": [
        ("CMSIS-NN conv/linear kernels", lambda r: r["compute_kernels"]),
        ("float conv/linear left", lambda r: _ops(r["float_compute_ops"])),
        ("cortex_m transposes", lambda r: r["cortex_m_transposes"]),
        ("cortex_m transpose bytes", lambda r: r["cortex_m_transpose_bytes"]),
        ("portable layout copies", lambda r: r["portable_copies"]),
        ("portable copy bytes", lambda r: r["portable_copy_bytes"]),
        ("cortex_m kernels", lambda r: r["cortex_m_kernels"]),
        ("lowering seconds", lambda r: round(r["lower_seconds"], 1)),
        ("ops in the program", lambda r: _ops(r["ops"])),
    ],
}


def figures(result: dict) -> dict[str, Any]:
    return {name: get(result) for name, get in ROWS[result["backend"]]}


def render(results: list[dict], title: str) -> str:
    """A table with one column per result (e.g. stock and layoutopt side by side)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    for r in results:
        table.add_column("layoutopt" if r["optimized"] else "stock", justify="right")
    columns = [figures(r) for r in results]
    for name in columns[0]:
        table.add_row(name, *(f"{c[name]:,}" if isinstance(c[name], int) else str(c[name]) for c in columns))
    table.add_row("seconds", *(f"{r['seconds']:.1f}" for r in results))
    console = Console(record=True, width=100)
    with console.capture() as cap:
        console.print(table)
        for r in results:
            if r.get("layoutopt") and r["layoutopt"]["rewrites"]:
                rules = ", ".join(f"{k} x{v}" for k, v in r["layoutopt"]["rewrites"].items())
                console.print(f"layoutopt rewrites: {rules}")
        console.print(f"wrote {', '.join(r['pte'] for r in results)}")
    return cap.get()
