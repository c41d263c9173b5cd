"""Unit-dim view pairs that cancel, so consecutive conv1d-as-conv2d layers meet in 4-D.

* ``unsqueeze(squeeze(x, d), d) -> x`` when ``x.shape[d] == 1``.
* ``f(squeeze(x, d)) -> squeeze(f(x), d)`` for an elementwise ``f`` of that one tensor (an
  activation, a per-tensor quantize or dequantize, a scalar arithmetic op) and for
  a batch norm (its channel dim, 1, is unchanged when ``d >= 2``; in core ATen's tuple form
  only when item 0 is all that is read): the squeeze sinks toward
  the next unsqueeze. Only when the squeeze has no other user, so no view is duplicated.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from torch.fx import Node

from ..ir import ops
from ..ir.access import fake_value
from .base import GraphEdit, GraphView, Match, Reject, Rule

aten = ops.aten


def _squeezed_dim(node: Node) -> int | None:
    """The one dim a ``squeeze.dim`` / ``squeeze.dims`` node removes, if it removes exactly one."""
    if ops.packet_of(node) not in (aten.squeeze,) or len(node.args) < 2:
        return None
    dims = node.args[1]
    dims = list(dims) if isinstance(dims, (list, tuple)) else [dims]
    source = fake_value(node.args[0])
    if len(dims) != 1 or source is None:
        return None
    d = dims[0] % source.dim()
    return d if source.shape[d] == 1 else None


@dataclass(frozen=True)
class SqueezePairMatch(Match):
    x: Node
    squeeze: Node


class CancelUnsqueezeOfSqueeze(Rule):
    """unsqueeze(squeeze(x, d), d) -> x, for x.shape[d] == 1."""

    name = "cancel_squeeze_unsqueeze"
    anchors = frozenset({aten.unsqueeze, aten.unsqueeze_copy})

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        squeeze = node.args[0]
        d = _squeezed_dim(squeeze)
        if d is None:
            return None
        out = fake_value(node)
        if node.args[1] % out.dim() != d:
            return None
        return SqueezePairMatch(node, squeeze.args[0], squeeze)

    def rewrite(self, edit: GraphEdit, m: SqueezePairMatch) -> None:
        edit.replace(m.node, m.x)
        edit.erase_if_dead(m.squeeze)


@dataclass(frozen=True)
class SinkSqueezeMatch(Match):
    x: Node
    squeeze: Node
    dim: int
    items: tuple[Node, ...] | None  # a batch norm's ``getitem(_, 0)`` readers, in core ATen's form


class SinkSqueeze(Rule):
    """f(squeeze(x, d)) -> squeeze(f(x), d), f elementwise on one tensor (or batch_norm, d >= 2)."""

    name = "sink_squeeze"

    def anchored_at(self, target: Any) -> bool:
        return ops.is_elementwise(target) or ops.is_batch_norm(target)

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        if not node.args or not isinstance(node.args[0], Node):
            return None
        squeeze = node.args[0]
        d = _squeezed_dim(squeeze)
        if d is None or len(squeeze.users) != 1:
            return None
        others = [a for a in node.all_input_nodes if a is not squeeze]
        items = None
        if ops.is_batch_norm(node.target):
            if d < 2 or any(view.constant(a) is None for a in others):
                return None
            if isinstance(fake_value(node), (tuple, list)):  # core ATen's form: item 0 is the output
                items = tuple(node.users)
                if not all(u.target is operator.getitem and u.args[1] == 0 for u in items):
                    return None
        elif not ops.is_elementwise(node.target) or others:
            return None
        return SinkSqueezeMatch(node, squeeze.args[0], squeeze, d, items)

    def rewrite(self, edit: GraphEdit, m: SinkSqueezeMatch) -> None:
        node = m.node
        inner = edit.call(node.target, (m.x, *node.args[1:]), dict(node.kwargs), like=node)
        value = inner if m.items is None else edit.call(operator.getitem, (inner, 0), like=m.items[0], after=inner)
        out = edit.call(aten.squeeze.dim, (value, m.dim), like=m.squeeze, after=value)
        for item in m.items or ():
            edit.replace(item, out)
        edit.replace(node, out)
        edit.erase_if_dead(m.squeeze)
