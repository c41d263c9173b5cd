"""The rule contract, held by construction: graph edits only through GraphEdit, matches that
read a GraphView and return frozen dataclasses, no rule file importing another, and run_rules
visiting each rule's anchors in graph order, nodes built earlier in the round included."""
import ast
import dataclasses
import re
from pathlib import Path

import torch
from torch import nn

import layoutopt.rewrites as rewrites
from layoutopt.ir import ops
from layoutopt.rewrites.base import GraphEdit, GraphView, Match, Rule, run_rules
from layoutopt.targets import TARGETS

RULES = {type(rule) for target in TARGETS.values() for planned in (True, False)
         for rule in rewrites.rules_for(target, planned)}

SRC = Path(rewrites.__file__).resolve().parent.parent
# the modules that change graphs, all of them through rewrites/base.py's GraphEdit
EDITORS = sorted(p for p in (SRC / "rewrites").glob("*.py") if p.name != "base.py") + [SRC / "layout" / "materialize.py"]
# helpers rules share; any other module of rewrites/ is a rule file
SHARED = {"base", "edge", "operands", "producers", "qdq"}

# raw graph edits: what GraphEdit is for (a rule's own ``self.target`` is its deployment target)
RAW_EDITS = {
    "assigns a node's target, args or kwargs": r"(?<!self)\.(target|args|kwargs)\s*=(?!=)",
    "writes node metadata": r"\.meta\[[^\]]*\]\s*=(?!=)|\.meta\.(update|pop|setdefault)\(|\bdel\s+\S*\.meta\b|"
                            r"\brefresh_meta\(",
    "rewires uses": r"\b(replace_all_uses_with|replace_input_with|update_arg|update_kwarg)\b",
    "inserts nodes": r"\binserting_(before|after)\b|\.(call_function|call_method|call_module|create_node|placeholder|"
                     r"get_attr|node_copy|prepend)\(",
    "erases nodes": r"\berase_node\b|\beliminate_dead_code\b",
    "changes the program's state or signature": r"\b(state_dict|constants)\[[^\]]*\]\s*=(?!=)|\binput_specs\b|"
                                                r"\boutput_specs\.|\brecompile\(",
}


def _code_lines(path: Path):
    """``(line number, code)`` of a module, docstrings and comments left out."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    for number, line in enumerate(source.splitlines(), 1):
        if number not in docstrings:
            yield number, line.split("#", 1)[0]


def test_graph_edits_go_through_graph_edit():
    found = []
    for path in EDITORS:
        for number, line in _code_lines(path):
            for what, pattern in RAW_EDITS.items():
                if re.search(pattern, line):
                    found.append(f"{path.relative_to(SRC)}:{number} {what}: {line.strip()}")
    assert found == [], "edit through GraphEdit (rewrites/base.py) instead:\n" + "\n".join(found)


def test_the_check_sees_raw_edits(tmp_path):
    edits = ["node.target = aten.relu.default", "node.args = (x,)", "n.kwargs = {}", "node.meta['val'] = v",
             "old.replace_all_uses_with(new)", "user.replace_input_with(a, b)", "graph.erase_node(n)",
             "with graph.inserting_before(n):", "graph.call_function(f, (x,))", "ep.state_dict[name] = w",
             "node.meta.update(other.meta)", "refresh_meta(ep.graph_module)"]
    reads = ["self.target = target", "if node.target == aten.relu.default:", "x = node.meta['val']",
             "edit.replace(node, new)"]
    for line in edits:
        assert any(re.search(p, line) for p in RAW_EDITS.values()), line
    for line in reads:
        assert not any(re.search(p, line) for p in RAW_EDITS.values()), line


def test_no_rule_file_imports_another():
    found = []
    for path in (SRC / "rewrites").glob("*.py"):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                found += [f"{path.name} imports {name}" for name in names if name.split(".")[0] not in SHARED]
    assert found == []


def test_matches_are_frozen_dataclasses_and_rules_read_a_view():
    matches = set()
    pending = [Match]
    while pending:
        cls = pending.pop()
        matches.add(cls)
        pending.extend(cls.__subclasses__())
    assert len(matches) > len(RULES) // 2
    for cls in matches:
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls.__name__
    for rule in RULES:
        assert "view" in rule.match.__code__.co_varnames[:3], rule.__name__
    assert not [name for name in vars(GraphView) if not name.startswith("_") and name not in ("constant", "replay")]


class _Relu(nn.Module):
    def forward(self, x):
        return torch.relu(x) + torch.relu(x * 2)


class _ReluToSigmoid(Rule):
    """relu(x) -> sigmoid(x): builds a node a later rule is anchored at."""

    name = "relu_to_sigmoid"
    anchors = frozenset({ops.aten.relu})

    def match(self, node, view):
        return Match(node)

    def rewrite(self, edit, m):
        edit.replace(m.node, edit.call(ops.aten.sigmoid.default, m.node.args, like=m.node))


class _Visits(Rule):
    name = "visits"
    anchors = frozenset({ops.aten.sigmoid})

    def __init__(self):
        self.seen = []

    def match(self, node, view):
        self.seen.append(node.name)
        return None


def test_a_rule_sees_the_nodes_earlier_rules_built_in_the_same_round():
    ep = torch.export.export(_Relu(), (torch.randn(2, 3),))
    visits = _Visits()
    log = run_rules(GraphEdit(ep), [_ReluToSigmoid(), visits])
    assert log.applied == {"relu_to_sigmoid": 2}
    sigmoids = [n.name for n in ep.graph.nodes if n.op == "call_function" and n.target is ops.aten.sigmoid.default]
    assert len(sigmoids) == 2
    # round 1 (they are built by the rule before) and round 2 (the fixed point), in graph order
    assert visits.seen == sigmoids + sigmoids


def test_a_rule_does_not_see_the_nodes_it_builds_until_the_next_round():
    ep = torch.export.export(_Relu(), (torch.randn(2, 3),))
    visits = _Visits()
    run_rules(GraphEdit(ep), [visits, _ReluToSigmoid()])
    assert len(visits.seen) == 2  # none in round 1, both in round 2
