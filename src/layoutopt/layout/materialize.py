"""From a plan to a graph: the chosen layouts become explicit, standard copies
(``conversion.conversion_call``). Each (tensor, layout) pair gets one conversion, shared by
every consumer. Every change goes through ``GraphEdit``.
After the edit ``meta["val"]`` is recomputed, so its strides state the new layouts.
"""
from __future__ import annotations

from typing import Any

from torch.export import ExportedProgram
from torch.fx import Node

from ..errors import InternalError
from ..ir.access import Role, role_of, tensor_outputs
from ..ir.perm import Order
from ..rewrites.base import GraphEdit
from .conversion import conversion_call
from .problem import Mode, Problem, Value, label_of, value_of


class _Conversions:
    """The copies a plan adds, one per (value, layout), and the nodes that name each value."""

    def __init__(self, edit: GraphEdit):
        self.edit = edit
        self.aliases: dict[Value, list[Node]] = {}
        for node in edit.graph.nodes:
            if node.op in ("placeholder", "call_function"):
                self.aliases.setdefault(value_of(node), []).append(node)
        self.made: dict[tuple[Value, Order], Node] = {}

    def of(self, value: Value, key: Order, order: Order, before: Node) -> Node:
        found = self.made.get((value, key))
        if found is not None:
            return found
        source = self.aliases[value][0]

        def call(target: Any, args: tuple, kwargs: dict) -> Node:
            return self.edit.call(target, args, kwargs, like=source, before=before)

        node = conversion_call(source, order, call, self.edit.edge)
        self.made[(value, key)] = node
        return node

    def redirect(self, user: Node, value: Value, to: Node) -> None:
        for alias in self.aliases.get(value, []):
            if alias in user.all_input_nodes:
                self.edit.replace_input(user, alias, to)


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

    edit = GraphEdit(ep)
    conversions = _Conversions(edit)
    by_name = {n.name: n for n in edit.graph.nodes}
    for value, info in problem.values.items():
        if info.fixed is not None:
            edit.set_value(by_name[value[0]], info.reps[info.fixed])

    for name in problem.node_order:
        node = by_name[name]
        mode = chosen[name]
        if mode.op is not None:
            edit.retarget(node, mode.op)
        if mode.kwargs:
            edit.retarget(node, kwargs={**node.kwargs, **dict(mode.kwargs)})
        for value, key in mode.needs:
            if natural.get(value) == key:
                continue
            info = problem.values[value]
            if key not in info.convertible:
                raise InternalError(f"plan needs {value} in label {key}, which no copy produces")
            conv = conversions.of(value, key, info.convertible[key], node)
            conversions.redirect(node, value, conv)

    output = edit.graph.output_node()
    user_positions = {i for i, s in enumerate(ep.graph_signature.output_specs) if role_of(s) is Role.USER}
    for value, key in problem.outputs:
        info = problem.values[value]
        if info.key(natural[value]) == info.key(key):
            continue
        conv = conversions.of(value, key, info.convertible[key], output)
        outs = list(output.args[0])
        aliases = set(conversions.aliases.get(value, []))
        edit.retarget(output, args=(tuple(conv if (i in user_positions and o in aliases) else o
                                          for i, o in enumerate(outs)),))

    edit.finish(refresh=True)
    return [name for name, mode in chosen.items() if _labels(by_name[name]) != dict(mode.gives)]


def _labels(node: Node) -> dict[int, tuple[int, ...]]:
    """Strides of each tensor a node produced, as the plan states them."""
    return {i: label_of(v) for i, v in tensor_outputs(node)}
