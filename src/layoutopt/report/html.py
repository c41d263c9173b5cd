"""The report as one self-contained HTML page: the figures, and the graph before and after
drawn by Graphviz, layouts coloured, each conversion marked with its bytes.

Large graphs are cut along module paths into groups of at most ``GROUP_LIMIT`` ops: an
overview draws one box per group (with its conversions), and each group is drawn on its own
inside a collapsible section, so that no single Graphviz layout grows with the model.
"""
from __future__ import annotations

import html
import shutil
import subprocess
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from ..errors import LayoutoptError
from .graph_view import GraphView, OpView

GROUP_LIMIT = 120
COLOURS = {"channels_last": "#9ecae1", "contiguous": "#fdd49e", "other": "#d9d9d9", "none": "#ffffff"}
LEGEND = {"channels_last": "channels-last (NHWC)", "contiguous": "contiguous (NCHW)",
          "other": "another dim order", "none": "no layout (rank < 3 or no tensor)"}


def require_graphviz() -> None:
    try:
        import graphviz  # noqa: F401
    except ImportError as exc:
        raise LayoutoptError("the HTML report draws graphs with Graphviz: pip install graphviz") from exc
    if shutil.which("dot") is None:
        raise LayoutoptError("the HTML report needs Graphviz's 'dot' program: apt-get install graphviz")


def kib(nbytes: int) -> str:
    return f"{nbytes / 1024:.1f} KiB" if nbytes >= 1024 else f"{nbytes} B"


# -- grouping ---------------------------------------------------------------------------------
def groups_of(view: GraphView, limit: int = GROUP_LIMIT) -> dict[str, list[OpView]]:
    """Ops grouped by module path, each group cut one path level deeper until it fits ``limit``
    (a path level that cannot be cut further is split into runs of ``limit`` ops); neighbouring
    small sibling modules share a group up to ``limit`` ops (``encoder.layer.0..5``)."""
    out: dict[str, list[OpView]] = {}

    def pack(prefix: tuple[str, ...], children: list[tuple[str, list[OpView]]]) -> None:
        run: list[tuple[str, list[OpView]]] = []

        def flush() -> None:
            if not run:
                return
            names = [name for name, _ in run]
            label = ".".join(prefix + (names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}",))
            out[label] = [o for _, members in run for o in members]
            run.clear()

        for child, members in children:
            if len(members) > limit:
                flush()
                split(prefix + (child,), members)
                continue
            if sum(len(m) for _, m in run) + len(members) > limit:
                flush()
            run.append((child, members))
        flush()

    def split(prefix: tuple[str, ...], members: list[OpView]) -> None:
        label = ".".join(prefix) or "(model)"
        if len(members) <= limit:
            out[label] = members
            return
        deeper: dict[str, list[OpView]] = defaultdict(list)
        here: list[OpView] = []
        for o in members:
            (deeper[o.module[len(prefix)]] if len(o.module) > len(prefix) else here).append(o)
        if len(deeper) <= 1 and not here:  # one child: descend without a new group
            (child, rest), = deeper.items()
            split(prefix + (child,), rest)
            return
        pack(prefix, list(deeper.items()))
        for i in range(0, len(here), limit):
            out[f"{label} [{i // limit + 1}]" if len(here) > limit else label] = here[i:i + limit]

    split((), view.ops)
    return out


# -- drawing ----------------------------------------------------------------------------------
def _node_label(o: OpView) -> str:
    shape = "x".join(map(str, o.shape)) if o.shape else ""
    label = f"{o.op}\n{shape}" if shape else o.op
    if o.conversion_bytes:
        label += f"\nconversion {kib(o.conversion_bytes)}"
    return label


def _group_graph(members: list[OpView], group_of: dict[str, str]):
    import graphviz

    g = graphviz.Digraph(graph_attr={"rankdir": "TB", "fontsize": "10", "nodesep": "0.15", "ranksep": "0.25"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fontsize": "9",
                                    "fontname": "Helvetica", "margin": "0.06,0.03", "height": "0.3"},
                         edge_attr={"arrowsize": "0.5"})
    inside = {o.name for o in members}
    outside: set[str] = set()
    for o in members:
        attrs = {"fillcolor": COLOURS[o.layout], "tooltip": f"{o.name}: {o.conversion or o.layout}", "id": o.name}
        if o.conversion_bytes:
            attrs.update(color="#cb181d", penwidth="2.5", fontcolor="#99000d")
        g.node(o.name, _node_label(o), **attrs)
        for src in o.inputs:
            if src not in inside and src not in outside:
                outside.add(src)
                g.node(src, f"{src}\n(from {group_of.get(src, '?')})", shape="ellipse", style="dashed",
                       fontsize="8", fillcolor="#ffffff")
            g.edge(src, o.name)
    return g


def _overview_svg(groups: dict[str, list[OpView]], group_of: dict[str, str]) -> str:
    import graphviz

    g = graphviz.Digraph(graph_attr={"rankdir": "TB", "nodesep": "0.2", "ranksep": "0.3"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fontsize": "9",
                                    "fontname": "Helvetica"}, edge_attr={"arrowsize": "0.5"})
    edges: set[tuple[str, str]] = set()
    for i, (label, members) in enumerate(groups.items()):
        layouts = Counter(o.layout for o in members if o.layout != "none")
        main = layouts.most_common(1)[0][0] if layouts else "none"
        paid = [o for o in members if o.conversion_bytes]
        text = f"{label}\n{len(members)} ops"
        if paid:
            text += f"\n{len(paid)} conversions, {kib(sum(o.conversion_bytes for o in paid))}"
        attrs = {"fillcolor": COLOURS[main], "href": f"#group-{i}", "tooltip": label}
        if paid:
            attrs.update(color="#cb181d", penwidth="2.5")
        g.node(f"g{i}", text, **attrs)
        for o in members:
            for src in o.inputs:
                if group_of[src] != label:
                    edges.add((group_of[src], label))
    index = {label: i for i, label in enumerate(groups)}
    for a, b in sorted(edges):
        g.edge(f"g{index[a]}", f"g{index[b]}")
    return _svg(g)


def _svg(g) -> str:
    text = g.pipe(format="svg", engine="dot").decode("utf-8")
    return text[text.index("<svg"):]


def _svgs(graphs: list) -> list[str]:
    """Lay out several graphs with one ``dot`` process (it reads a stream of graphs, and
    writes each drawing as it goes, so input and output are exchanged concurrently)."""
    if not graphs:
        return []
    done = subprocess.run([shutil.which("dot"), "-Tsvg"], input="\n".join(g.source for g in graphs).encode(),
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise LayoutoptError(f"Graphviz failed: {done.stderr.decode(errors='replace').strip()[:200]}")
    text = done.stdout.decode("utf-8")
    pictures = [part[:part.index("</svg>") + len("</svg>")] for part in text.split("<svg")[1:]]
    pictures = ["<svg" + p for p in pictures]
    if len(pictures) != len(graphs):
        raise LayoutoptError(f"Graphviz returned {len(pictures)} drawings for {len(graphs)} graphs")
    return pictures


def _graph_section(title: str, view: GraphView, open_: bool) -> str:
    groups = groups_of(view)
    group_of = {o.name: label for label, members in groups.items() for o in members}
    graphs = [_group_graph(members, group_of) for members in groups.values()]
    half = (len(graphs) + 1) // 2
    with ThreadPoolExecutor(max_workers=2) as pool:  # two 'dot' processes, one per core
        overview = pool.submit(_overview_svg, groups, group_of) if len(groups) > 1 else None
        batches = list(pool.map(_svgs, [graphs[:half], graphs[half:]]))
    pictures = batches[0] + batches[1]
    paid = [o for o in view.ops if o.conversion_bytes]
    parts = [f"<details class='graph' {'open' if open_ else ''}><summary><h2>{html.escape(title)}: "
             f"{len(view.ops)} ops, {len(paid)} conversions, {kib(sum(o.conversion_bytes for o in paid))}"
             f"</h2></summary>"]
    if overview is not None:
        parts += ["<div class='overview'>", overview.result(), "</div>"]
    for i, ((label, members), svg) in enumerate(zip(groups.items(), pictures)):
        n_paid = sum(1 for o in members if o.conversion_bytes)
        parts.append(f"<details class='group' id='group-{i}'{' open' if len(groups) == 1 else ''}>"
                     f"<summary>{html.escape(label)}: {len(members)} ops"
                     + (f", <b>{n_paid} conversions</b>" if n_paid else "") + f"</summary>{svg}</details>")
    parts.append("</details>")
    return "\n".join(parts)


# -- the page ---------------------------------------------------------------------------------
_STYLE = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}h1{font-size:22px}h2{display:inline;font-size:17px}
details.graph{margin:16px 0;border-top:2px solid #888;padding-top:8px}details.group{margin:6px 0 6px 16px}
summary{cursor:pointer}.overview svg,details.group svg{max-width:100%;height:auto}
.legend span{display:inline-block;padding:2px 8px;margin-right:8px;border:1px solid #999;border-radius:4px}
.conv{border:2.5px solid #cb181d!important}.ok{color:#238b45}.bad{color:#cb181d}
"""

_SCRIPT = """
function setAll(open){document.querySelectorAll('details').forEach(function(d){d.open=open;});}
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report, before: GraphView | None, after: GraphView | None, title: str = "layoutopt report") -> str:
    require_graphviz()
    summary = _table(["", "before", "after"], [list(r) for r in report.rows()])
    if report.max_abs_diff is None:
        verdict = "<p>Numerical check: not run.</p>"
    else:
        cls = "ok" if report.max_abs_diff is not None else "bad"
        what = "bit-exact" if report.bit_exact else f"max abs diff {report.max_abs_diff:.3g}"
        verdict = f"<p class='{cls}' id='verification'>Numerical check on seeded inputs: {what}.</p>"
    rewrites = _table(["rule", "applied"], [[k, v] for k, v in report.rewrites.items()]) if report.rewrites \
        else "<p>No rewrites applied.</p>"
    declined = _table(["op", "node", "reason"], [[d["op"], d["node"], d["reason"]] for d in report.declined]) \
        if report.declined else "<p>Nothing declined.</p>"
    conversions = _table(["node", "kind", "bytes", "detail"],
                         [[c["node"], c["kind"], f"{c['bytes']:,}", c["detail"]] for c in report.conversions_after]) \
        if report.conversions_after else "<p>No conversions left.</p>"
    legend = "".join(f"<span style='background:{COLOURS[k]}'>{html.escape(v)}</span>" for k, v in LEGEND.items())
    legend += "<span class='conv'>conversion (bytes moved)</span>"
    graphs = ""
    if after is not None:
        graphs += _graph_section("Graph after", after, open_=True)
    if before is not None:
        graphs += _graph_section("Graph before", before, open_=False)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>
<h1>{html.escape(title)}: {report.nodes} nodes, target {html.escape(report.target)}, I/O {html.escape(report.io_layout)}</h1>
<div id="summary">{summary}</div>{verdict}
<h3>Rewrites</h3>{rewrites}
<h3>Conversions after</h3>{conversions}
<h3>Declined</h3>{declined}
<p class="legend">{legend}</p>
<p><button onclick="setAll(true)">expand all</button> <button onclick="setAll(false)">collapse all</button></p>
{graphs}
</body></html>
"""
