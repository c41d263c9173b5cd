"""From a plan to a graph: the chosen layouts become explicit, standard copies
(``conversion.conversion_call``). Each (tensor, layout) pair gets one conversion, shared by
every consumer.
After the edit ``meta["val"]`` is recomputed, so its strides state the new layouts.
"""
from __future__ import annotations

from typing import Any

from torch.export import ExportedProgram
from torch.fx import Node

from ..errors import InternalError
from ..ir.access import Role, copy_provenance, role_of, tensor_outputs
from ..ir.propagate import refresh_meta
from ..ir.perm import Order
from .conversion import conversion_call, is_edge
from .problem import Mode, Problem, Value, label_of, value_of

class _Editor:
    """All graph mutation of a plan goes through here."""

    def __init__(self, ep: ExportedProgram):
        self.graph = ep.graph_module.graph
        self.edge = is_edge(ep)
        self.aliases: dict[Value, list[Node]] = {}
        for node in self.graph.nodes:
            if node.op in ("placeholder", "call_function"):
                self.aliases.setdefault(value_of(node), []).append(node)
        self.conversions: dict[tuple[Value, Order], Node] = {}

    def conversion(self, value: Value, key: Order, order: Order, before: Node) -> Node:
        found = self.conversions.get((value, key))
        if found is not None:
            return found
        source = self.aliases[value][0]

        def call(target: Any, args: tuple, kwargs: dict) -> Node:
            with self.graph.inserting_before(before):
                node = self.graph.call_function(target, args, kwargs)
            copy_provenance(source, node)
            return node

        node = conversion_call(source, order, call, self.edge)
        self.conversions[(value, key)] = node
        return node

    def redirect(self, user: Node, value: Value, to: Node) -> None:
        for alias in self.aliases.get(value, []):
            if alias in user.all_input_nodes:
                user.replace_input_with(alias, to)


def materialize(ep: ExportedProgram, problem: Problem, chosen: dict[str, Mode]) -> list[str]:
    """Edit ``ep`` (a private copy) in place to follow the plan.

    Returns the nodes whose recomputed strides differ from the plan's: empty when the graph
    is exactly the plan the solver costed (and so sits at its bound)."""
    natural: dict[Value, Order] = {}
    for value, info in problem.values.items():
        if info.fixed is not None:
            natural[value] = info.fixed
    for name, mode in chosen.items():
        for index, key in mode.gives:
            natural[(name, index)] = key

    editor = _Editor(ep)
    by_name = {n.name: n for n in editor.graph.nodes}
    for value, info in problem.values.items():
        if info.fixed is not None:
            node = by_name[value[0]]
            node.meta["val"] = info.reps[info.fixed]

    for name in problem.node_order:
        node = by_name[name]
        mode = chosen[name]
        if mode.op is not None:
            node.target = mode.op
        if mode.kwargs:
            node.kwargs = {**node.kwargs, **dict(mode.kwargs)}
        for value, key in mode.needs:
            if natural.get(value) == key:
                continue
            info = problem.values[value]
            if key not in info.convertible:
                raise InternalError(f"plan needs {value} in label {key}, which no copy produces")
            conv = editor.conversion(value, key, info.convertible[key], node)
            editor.redirect(node, value, conv)

    output = editor.graph.output_node()
    user_positions = {i for i, s in enumerate(ep.graph_signature.output_specs) if role_of(s) is Role.USER}
    for value, key in problem.outputs:
        info = problem.values[value]
        if info.key(natural[value]) == info.key(key):
            continue
        conv = editor.conversion(value, key, info.convertible[key], output)
        outs = list(output.args[0])
        aliases = set(editor.aliases.get(value, []))
        output.args = (tuple(conv if (i in user_positions and o in aliases) else o for i, o in enumerate(outs)),)

    editor.graph.lint()
    ep.graph_module.recompile()
    refresh_meta(ep.graph_module)
    return [name for name, mode in chosen.items() if _labels(by_name[name]) != dict(mode.gives)]


def _labels(node: Node) -> dict[int, tuple[int, ...]]:
    """Strides of each tensor a node produced, as the plan states them."""
    return {i: label_of(v) for i, v in tensor_outputs(node)}
