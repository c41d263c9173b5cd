"""Permutation algebra on the graph, the laws of ``ir.perm``:

* ``permute(permute(x, p), q) -> permute(x, p.then(q))`` (``transpose`` and ``t`` are too);
* ``permute(x, identity) -> x``;
* ``permute(c, p) -> c'`` for a constant ``c`` read only there: ``c' = c.permute(p)``, made
  at compile time.
Each permute is a transpose on a backend that executes permutes, so a chain of k becomes at
most one; the values are the same element for element.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch.fx import Node

from ..ir import ops
from ..ir.access import as_perm
from ..ir.perm import Perm
from .base import GraphEdit, GraphView, Match, Reject, Rule

aten = ops.aten


@dataclass(frozen=True)
class ComposeMatch(Match):
    x: Node
    perm: Perm | None  # what x goes through instead; None: nothing
    inner: Node | None  # the inner permute, erased once nothing else reads it


class ComposePermutes(Rule):
    """permute(permute(x, p), q) -> permute(x, p.then(q)); permute(x, identity) -> x."""

    name = "compose_permutes"
    anchors = ops.PERMUTE_PACKETS

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        outer = as_perm(node)
        if outer is None:
            return None
        if outer.is_identity():
            return ComposeMatch(node, node.args[0], None, None)
        inner = as_perm(node.args[0])
        if inner is None:
            return None
        return ComposeMatch(node, node.args[0].args[0], inner.then(outer), node.args[0])

    def rewrite(self, edit: GraphEdit, m: ComposeMatch) -> None:
        if m.perm is None or m.perm.is_identity():
            edit.replace(m.node, m.x)
        else:
            edit.replace(m.node, edit.call(aten.permute.default, (m.x, list(m.perm.dims)), like=m.node))
        if m.inner is not None:
            edit.erase_if_dead(m.inner)


@dataclass(frozen=True)
class ConstantPermuteMatch(Match):
    constant: Node
    perm: Perm


class FoldConstantPermute(Rule):
    """permute(c, p) -> c.permute(p), computed at compile time, for a constant read only here."""

    name = "fold_constant_permute"
    anchors = ops.PERMUTE_PACKETS

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        perm = as_perm(node)
        source = node.args[0]
        if perm is None or view.constant(source) is None:
            return None
        if len(source.users) != 1:
            return self.reject(node, "constant is shared with another op")
        return ConstantPermuteMatch(node, source, perm)

    def rewrite(self, edit: GraphEdit, m: ConstantPermuteMatch) -> None:
        edit.relayout_constant(m.constant, lambda c: c.permute(m.perm.dims).contiguous())
        edit.replace(m.node, m.constant)
