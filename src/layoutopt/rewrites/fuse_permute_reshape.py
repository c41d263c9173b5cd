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

Declined: inner tensors another op also reads, chains with no single-permute form, chains
whose NCHW <-> NHWC permute is free on the target.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import as_perm, fake_value
from ..ir.perm import Perm
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

    def __init__(self, target: Target):
        self.free_restatements = ops.Family.CONV in target.channels_last
        self.target = target

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> Rule | None:
        return cls(target)

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
        return PermuteReshapeMatch(node, x, form, chain)

    def rewrite(self, edit: GraphEdit, m: PermuteReshapeMatch) -> None:
        order, r, shape = m.form
        node, x = m.node, m.x
        if order == "permute_first":
            permuted = edit.call(aten.permute.default, (x, list(r.dims)), like=node)
            result = edit.call(aten.reshape.default, (permuted, list(shape)), like=node)
        else:
            result = edit.call(aten.reshape.default, (x, list(shape)), like=node)
            if r is not None:
                result = edit.call(aten.permute.default, (result, list(r.dims)), like=node)
        edit.replace(node, result)
        edit.erase_if_dead(*reversed(m.chain))
