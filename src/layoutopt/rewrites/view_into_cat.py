"""A view that splits a concatenation's axis into (inputs, channels each), moved into the
concatenation:

    view(cat([x_1 .. x_g], d), [.., g, k, ..])  ->  cat([view(x_i, [.., 1, k, ..])], d)

Both give the same tensor when every ``x_i`` has ``k`` elements along ``d``. The pattern is a
channel shuffle's first view of ``cat`` (ShuffleNet: ``shuffle(cat(a, branch(b)), 2)``). Split
into its own axis, the concatenation may run along any dim of a planned layout: where the
backend lays tensors out physically (Cortex-M's explicit layout), the shuffle's transpose then
reads a cat written with the group axis innermost, which interleaves the inputs' channels
while it copies them, and the transpose becomes a free view. On a 4-D cat the group and
channel axes are one dim, and the shuffle stays a transpose of the channel axis's factors.

Declined: a cat another op also reads, a view that is not such a split, inputs of unequal size.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch.fx import Node

from ..ir import ops
from ..ir.access import fake_value
from ..targets import ShuffleForm, Target
from .base import GraphEdit, GraphView, Match, Reject, Rule

aten = ops.aten


@dataclass(frozen=True)
class ViewOfCatMatch(Match):
    cat: Node
    xs: tuple[Node, ...]
    dim: int
    piece: tuple[int, ...]  # the shape each input is viewed as


class ViewIntoCat(Rule):
    """``view(cat(xs, d), [.., len(xs), k, ..]) -> cat([view(x, [.., 1, k, ..])], d)``."""

    name = "view_into_cat"
    anchors = ops.VIEW_PACKETS

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> Rule | None:
        # where the backend lays tensors out physically, a shuffled cat interleaves as it
        # copies; the ATen plan's strided layouts cannot express that (ShuffleNet-nano on
        # cortex-m: 7 transposes instead of 3)
        wanted = ops.Family.CONV in target.channels_last and target.channel_shuffle is ShuffleForm.INTERLEAVE
        return cls() if wanted and not planned else None

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        cat = node.args[0]
        if ops.packet_of(cat) is not aten.cat or view.edge:
            return None
        xs = list(cat.args[0])
        src, out = fake_value(cat), fake_value(node)
        if src is None or out is None or not all(isinstance(x, Node) for x in xs):
            return None
        dim = (cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)) % src.dim()
        shape = [int(s) for s in src.shape]
        g = len(xs)
        sizes = [int(fake_value(x).shape[dim]) if fake_value(x) is not None and fake_value(x).dim() == src.dim()
                 else -1 for x in xs]
        k = shape[dim] // g if g else 0
        split = shape[:dim] + [g, k] + shape[dim + 1:]
        if g < 2 or [int(s) for s in out.shape] != split:
            return None
        if any(size != k for size in sizes):
            return self.reject(node, f"the inputs of the cat have unequal sizes {sizes} along dim {dim}")
        if len(cat.users) != 1:
            return self.reject(node, "the cat is also read by another op")
        return ViewOfCatMatch(node, cat, tuple(xs), dim, tuple(shape[:dim] + [1, k] + shape[dim + 1:]))

    def rewrite(self, edit: GraphEdit, m: ViewOfCatMatch) -> None:
        node = m.node
        pieces = [edit.call(aten.view.default, (x, list(m.piece)), like=node) for x in m.xs]
        edit.replace(node, edit.call(aten.cat.default, (pieces, m.dim), like=node))
        edit.erase_if_dead(m.cat)
