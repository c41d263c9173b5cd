"""What a plan saved, as JSON-ready figures and as a table."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from .graph_view import GraphView

SCHEMA_VERSION = 2  # see report.schema.json beside this file for what changed


def schema() -> dict[str, Any]:
    """The JSON schema ``Report.to_dict()`` follows (versioned by ``schema_version``)."""
    from importlib.resources import files

    return json.loads(files(__package__).joinpath("report.schema.json").read_text(encoding="utf-8"))


@dataclass
class Report:
    target: str
    io_layout: str
    nodes: int
    transposes_before: int
    transposes_after: int
    transpose_bytes_before: int
    transpose_bytes_after: int
    lower_bound_bytes: int | None  # None when no layout was planned (rewrites only)
    solver_status: str
    max_abs_diff: float | None
    bit_exact: bool | None
    seconds: float
    declined: list[dict[str, str]] = field(default_factory=list)
    rewrites: dict[str, int] = field(default_factory=dict)  # rule name -> times applied
    conversions_after: list[dict[str, Any]] = field(default_factory=list)
    layout_mismatches: list[str] = field(default_factory=list)  # real eager strides differ from meta
    plan_mismatches: list[str] = field(default_factory=list)  # the graph differs from the solved plan
    # where a cap of the problem builder cut layouts or modes off: the bound is for what is left
    truncated: list[dict[str, str]] = field(default_factory=list)
    # seconds per stage of optimize: export, prepare, measure, rewrite, problem, solve, materialize, verify
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # what the pictures are drawn from; not part of the JSON
    graph_before: GraphView | None = field(default=None, repr=False, compare=False)
    graph_after: GraphView | None = field(default=None, repr=False, compare=False)

    @property
    def optimality_gap(self) -> float | None:
        """Share of the bytes after that the solver's lower bound does not prove necessary."""
        if self.lower_bound_bytes is None:
            return None
        if self.transpose_bytes_after == 0:
            return 0.0
        return (self.transpose_bytes_after - self.lower_bound_bytes) / self.transpose_bytes_after

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("graph_")}
        d["optimality_gap"] = self.optimality_gap
        d["schema_version"] = SCHEMA_VERSION
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_html(self, title: str = "layoutopt report") -> str:
        from .html import render_html

        return render_html(self, self.graph_before, self.graph_after, title)

    def save_html(self, path: str, title: str = "layoutopt report") -> None:
        """One self-contained HTML file: the figures and the graph before and after."""
        page = self.to_html(title)
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)

    def rows(self) -> list[tuple[str, str, str]]:
        mib = 1024 * 1024
        diff = "not run" if self.max_abs_diff is None else (
            "bit-exact" if self.bit_exact else f"{self.max_abs_diff:.3g}")
        return [
            ("transposes", str(self.transposes_before), str(self.transposes_after)),
            ("transpose bytes", f"{self.transpose_bytes_before:,} ({self.transpose_bytes_before / mib:.2f} MiB)",
             f"{self.transpose_bytes_after:,} ({self.transpose_bytes_after / mib:.2f} MiB)"),
            ("lower bound bytes", "", "not planned" if self.lower_bound_bytes is None
             else f"{self.lower_bound_bytes:,}"),
            ("optimality gap", "", "not planned" if self.optimality_gap is None else f"{self.optimality_gap:.2%}"),
            ("max abs diff", "", diff),
            ("rewrites", "", ", ".join(f"{k} x{v}" for k, v in self.rewrites.items()) or "none"),
            ("declined ops", "", str(len(self.declined))),
            *([("problem truncated", "", f"{len(self.truncated)} cut(s): bound and gap are relative to it")]
              if self.truncated else []),
            ("seconds", "", f"{self.seconds:.2f}"),
        ]

    def render(self) -> str:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"layoutopt: {self.nodes} nodes, target {self.target}, I/O {self.io_layout}")
        table.add_column("")
        table.add_column("before", justify="right")
        table.add_column("after", justify="right")
        for row in self.rows():
            table.add_row(*row)
        console = Console(record=True, width=100)
        with console.capture() as cap:
            console.print(table)
            for d in self.declined[:20]:
                console.print(f"declined {d['op']} at {d['node']}: {d['reason']}")
            if len(self.declined) > 20:
                console.print(f"... and {len(self.declined) - 20} more declined")
            for t in self.truncated[:20]:
                console.print(f"truncated by {t['cap']} at {t['node']}: {t['detail']}")
            if len(self.truncated) > 20:
                console.print(f"... and {len(self.truncated) - 20} more truncated")
            if self.target.startswith("ethos-u"):
                console.print("note: these are the ATen program's transposes; ExecuTorch's Arm backend lays out "
                              "tensors again, so the NPU runs other ones. `layoutopt compile --backend ethos-u` "
                              "plans them there and reports TOSA TRANSPOSE ops and Vela cycles.")
        return cap.get()
