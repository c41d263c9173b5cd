"""permute(reshape(permute(x, p), s), q) -> reshape(permute(x, r), s') or permute(reshape(x, s'), r)
(one permute, or none), when the two forms move every element to the same place.

Each permute can be a transpose on a backend that executes permutes; a chain of two around a
reshape often restates one transpose (or none: splitting a dim and moving the pieces back).
Equality is proved, not guessed: the chain and each candidate are applied to the index
tensor ``arange(numel).reshape(x.shape)``; pure data movement is equal for every input exactly
when it is equal on the indices. Candidates without a permute are tried first, then those
whose single permute comes first, then last. A ``contiguous()`` between the first permute and
the reshape is part of the pattern.

On a target whose convolutions run channels-last, a rank-4 permute that only restates
NCHW <-> NHWC is free on the data it reads (it is how NHWC data is seen in NCHW terms), so a
chain that starts or ends with one is left alone: fusing it would tie the data to NCHW.

Where layoutopt's plan follows, views are free and the fused form must pay for itself: where
it moves no fewer bytes than the chain (a reshape that copies in both) and lays its result
out in another dim order, it is declined. The chain's copy writes the order its last permute
reads; the fused form's copy writes another, which the plan may not get back (the planner's
copies write contiguous and channels-last orders).

Declined: inner tensors another op also reads, chains with no single-permute form, chains
whose NCHW <-> NHWC permute is free on the target, fused forms that cost a plan as much and
lay their result out otherwise.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch.fx import Node
from torch.fx.node import map_arg

from ..ir import ops
from ..ir.access import as_perm, fake_value
from ..ir.perm import Perm
from ..layout.cost import key_of, op_charges
from ..targets import Target
from .base import GraphEdit, GraphView, Match, Reject, Rule

aten = ops.aten
_MAX_RANK = 5
_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def single_permute_form(shape, p: Perm, mid, q: Perm):
    """``("reshape_first" | "permute_first", r, s')`` equal to permute-reshape-permute on every
    input, found by index replay; r is None when no permute is needed. None if there is none."""
    idx = torch.arange(int(torch.Size(shape).numel()), dtype=torch.int64).reshape(shape)
    want = idx.permute(p.dims).reshape(mid).permute(q.dims)
    out = tuple(want.shape)
    if torch.equal(idx.reshape(out), want):
        return ("reshape_first", None, out)
    for r in itertools.permutations(range(len(shape))):
        if torch.equal(idx.permute(r).reshape(out), want):
            return ("permute_first", Perm(r), out)
    for r in itertools.permutations(range(len(out))):
        inverse = Perm(r).inverse().dims
        before = tuple(out[inverse[k]] for k in range(len(out)))
        if torch.equal(idx.reshape(before).permute(r), want):
            return ("reshape_first", Perm(r), before)
    return None


@dataclass(frozen=True)
class PermuteReshapeMatch(Match):
    x: Node
    form: tuple  # ``single_permute_form``'s answer
    chain: tuple[Node, ...]  # the first permute, its contiguous copy if any, the reshape


class FusePermuteReshapePermute(Rule):
    name = "fuse_permute_reshape_permute"
    anchors = ops.PERMUTE_PACKETS

    def __init__(self, target: Target, planned: bool = False):
        self.free_restatements = ops.Family.CONV in target.channels_last
        self.target = target
        self.planned = planned

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> Rule | None:
        return cls(target, planned)

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        q = as_perm(node)
        reshape = node.args[0]
        if q is None or ops.packet_of(reshape) not in ops.VIEW_PACKETS:
            return None
        inner = reshape.args[0]
        copy = inner if ops.is_contiguous_copy(inner) else None
        first = copy.args[0] if copy is not None else inner
        p = as_perm(first)
        if p is None:
            return None
        x = first.args[0]
        src, mid = fake_value(x), fake_value(reshape)
        if src is None or mid is None or src.dim() > _MAX_RANK or mid.dim() > _MAX_RANK:
            return None
        if self.free_restatements and (tuple(p.dims) == _TO_NHWC or tuple(q.dims) == _TO_NCHW):
            return self.reject(node, f"its NCHW <-> NHWC permute is free on {self.target.name}")
        chain = (first, *([copy] if copy is not None else []), reshape)  # producer to consumer
        if any(len(n.users) != 1 for n in chain):
            return self.reject(node, "a tensor inside the chain is also read by another op")
        form = single_permute_form(tuple(int(d) for d in src.shape), p, tuple(int(d) for d in mid.shape), q)
        if form is None:
            return self.reject(node, "no single permute moves the elements as the chain does")
        if self.planned and self._costs_layout(view, src, form, (*chain, node)):
            return self.reject(node, "the single-permute form moves no fewer bytes and lays the result out in "
                               "another order")
        return PermuteReshapeMatch(node, x, form, chain)

    def _costs_layout(self, view: GraphView, src, form: tuple, chain: tuple[Node, ...]) -> bool:
        """The fused form moves no fewer bytes than ``chain`` and gives its result another layout."""
        moved, out = self._fused_cost(view, src, form)
        return moved >= self._chain_cost(chain) and key_of(out) != key_of(fake_value(chain[-1]))

    def _chain_cost(self, nodes: tuple[Node, ...]) -> int:
        """Bytes the chain's ops move as they stand."""
        return sum(c.bytes for n in nodes for c in op_charges(
            n.name, n.target, map_arg(n.args, fake_value), map_arg(n.kwargs, fake_value), fake_value(n), self.target))

    def _fused_cost(self, view: GraphView, src, form: tuple):
        """Bytes the single-permute form would move on ``src``, and its result."""
        value, moved = src, 0
        for op, rest in _steps(form):
            out = view.replay(op, (value, rest))
            moved += sum(c.bytes for c in op_charges("fused", op, (value, rest), {}, out, self.target))
            value = out
        return moved, value

    def rewrite(self, edit: GraphEdit, m: PermuteReshapeMatch) -> None:
        node, result = m.node, m.x
        for op, rest in _steps(m.form):
            result = edit.call(op, (result, rest), like=node)
        edit.replace(node, result)
        edit.erase_if_dead(*reversed(m.chain))


def _steps(form: tuple) -> list[tuple]:
    """The single-permute form's ops, first to last: ``(op, argument after the tensor)``."""
    order, r, shape = form
    reshape = (aten.reshape.default, list(shape))
    if r is None:
        return [reshape]
    permute = (aten.permute.default, list(r.dims))
    return [permute, reshape] if order == "permute_first" else [reshape, permute]
