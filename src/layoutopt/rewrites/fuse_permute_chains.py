"""Permutation algebra on the graph, the laws of ``layout.perm``:

* ``permute(permute(x, p), q) -> permute(x, p.then(q))`` (``transpose`` and ``t`` are too);
* ``permute(x, identity) -> x``;
* ``permute(c, p) -> c'`` for a constant ``c`` read only there: ``c' = c.permute(p)``, made
  at compile time.
Each permute is a transpose on a backend that executes permutes, so a chain of k becomes at
most one; the values are the same element for element.
"""
from __future__ import annotations

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import fake_value
from ..ir.perm import Perm
from .base import GraphEdit, Match, Reject, Rule

aten = ops.aten
_PERMUTES = frozenset({aten.permute, aten.transpose, aten.t})


def as_perm(node) -> Perm | None:
    """The permutation a ``permute``/``transpose`` node applies, or None."""
    if not isinstance(node, Node) or node.op != "call_function":
        return None
    overload = ops.canonical(node.target)
    if overload not in (aten.permute.default, aten.transpose.int, aten.t.default):
        return None
    source = fake_value(node.args[0]) if isinstance(node.args[0], Node) else None
    if not isinstance(source, torch.Tensor):
        return None
    rank = source.dim()
    if overload is aten.permute.default:
        return Perm(tuple(d % rank for d in node.args[1]))
    if overload in (aten.transpose.int, aten.t.default):
        dims = list(range(rank))
        if rank < 2:
            return Perm(tuple(dims))
        a, b = (node.args[1] % rank, node.args[2] % rank) if len(node.args) == 3 else (0, 1)
        dims[a], dims[b] = dims[b], dims[a]
        return Perm(tuple(dims))
    return None


class ComposePermutes(Rule):
    """permute(permute(x, p), q) -> permute(x, p.then(q)); permute(x, identity) -> x."""

    name = "compose_permutes"
    anchors = _PERMUTES

    def match(self, node: Node, edit: GraphEdit) -> Match | Reject | None:
        outer = as_perm(node)
        if outer is None:
            return None
        if outer.is_identity():
            return Match(node, {"x": node.args[0], "perm": None, "inner": None})
        inner = as_perm(node.args[0])
        if inner is None:
            return None
        return Match(node, {"x": node.args[0].args[0], "perm": inner.then(outer), "inner": node.args[0]})

    def rewrite(self, edit: GraphEdit, m: Match) -> None:
        if m["perm"] is None or m["perm"].is_identity():
            edit.replace(m.node, m["x"])
        else:
            edit.replace(m.node, edit.call(aten.permute.default, (m["x"], list(m["perm"].dims)), like=m.node))
        if m["inner"] is not None:
            edit.erase_if_dead(m["inner"])


class FoldConstantPermute(Rule):
    """permute(c, p) -> c.permute(p), computed at compile time, for a constant read only here."""

    name = "fold_constant_permute"
    anchors = _PERMUTES

    def match(self, node: Node, edit: GraphEdit) -> Match | Reject | None:
        perm = as_perm(node)
        source = node.args[0]
        if perm is None or edit.constant(source) is None:
            return None
        if len(source.users) != 1:
            return self.reject(node, "constant is shared with another op")
        return Match(node, {"constant": source, "perm": perm})

    def rewrite(self, edit: GraphEdit, m: Match) -> None:
        edit.relayout_constant(m["constant"], lambda c: c.permute(m["perm"].dims).contiguous())
        edit.replace(m.node, m["constant"])
