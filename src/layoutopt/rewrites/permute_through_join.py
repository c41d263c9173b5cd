"""A permute shared by every input of an elementwise op or a concatenation moves after it:

    f(permute(a, p), permute(b, p))       == permute(f(a, b), p)         f elementwise
    f(permute(a, p), C)                   == permute(f(a, C'), p)        C a constant
    cat([permute(a_i, p), ...], d)        == permute(cat([a_i, ...], p[d]), p)

An elementwise op reads every operand at the same index, and broadcasting pairs dims one by
one, so it commutes with a permutation applied to all of its operands alike. ``C'`` is the
constant seen at the output's rank (leading 1s added, as broadcasting does) and permuted by
``p``'s inverse, at compile time. Dim ``d`` of the permuted inputs is their dim ``p[d]``.
Several permutes become one, and it can meet the next permute (``compose_permutes``); the
values are unchanged, bit for bit.

Applied when the result's only reader is a permute it then meets, or, for an elementwise op,
when at least two inputs are permuted: its output is laid out like its inputs either way,
where a concatenation writes a dense output, gathering its permuted inputs for free, that a
permute after it would make strided again. Declined: a permuted input another op also reads (its permute would
stay and a second one be added), inputs permuted differently, a constant another op also
reads (re-laying it out would change what that reader sees), and a concatenation whose input
permutes only move size-1 dims that it makes larger (the permute after it would move bytes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import as_perm, fake_value
from ..ir.perm import Perm, moves_bytes
from .base import GraphEdit, GraphView, Match, Reject, Rule

aten = ops.aten


def _tensor_operands(node: Node) -> list[tuple[int, Node]]:
    """``(position, node)`` of the tensor operands: positional args of an elementwise op, the
    list of a concatenation."""
    if ops.packet_of(node) in ops.CONCAT_PACKETS:
        return [(i, a) for i, a in enumerate(node.args[0])]
    return [(i, a) for i, a in enumerate(node.args) if isinstance(a, Node)]


@dataclass(frozen=True)
class JoinMatch(Match):
    perm: Perm
    permuted: tuple[int, ...]  # positions of the permuted operands
    constants: tuple[Node, ...]  # the other operands, re-laid out at compile time


class PermuteThroughJoin(Rule):
    name = "permute_through_join"

    def anchored_at(self, target: Any) -> bool:
        """Concatenations and elementwise ops (not copies)."""
        if getattr(ops.canonical(target), "overloadpacket", None) in ops.CONCAT_PACKETS:
            return True
        return ops.is_elementwise(target) and ops.family(target) is not ops.Family.COPY

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        concat = ops.packet_of(node) in ops.CONCAT_PACKETS
        if not concat and sum(isinstance(a, Node) for a in node.args) < 2:
            return None  # an elementwise op of one tensor: nothing joins there
        if any(isinstance(v, Node) for v in node.kwargs.values()):
            return None
        out = fake_value(node)
        if not isinstance(out, torch.Tensor):
            return None
        operands = _tensor_operands(node)
        perms = {i: as_perm(a) for i, a in operands}
        permuted = [i for i, p in perms.items() if p is not None and p.rank == out.dim()]
        if not permuted:
            return None
        p = perms[permuted[0]]
        if any(perms[i] != p for i in permuted):
            return self.reject(node, "its inputs are permuted differently")
        constants = [a for i, a in operands if i not in permuted]
        if any(view.constant(a) is None for a in constants):
            return None  # an input in its own layout: the permutes cannot all move
        meets = len(node.users) == 1 and as_perm(next(iter(node.users))) is not None
        if (len(permuted) == 1 or concat) and not meets:
            return None  # worth it only where the permute meets the next one (see the module doc)
        if any(len(dict(operands)[i].users) != 1 for i in permuted):
            return self.reject(node, "a permuted input is also read by another op")
        if concat and moves_bytes(p, tuple(out.shape)) and not any(
                moves_bytes(p, tuple(fake_value(dict(operands)[i]).shape)) for i in permuted):
            return self.reject(node, "its input permutes only move size-1 dims, which the concatenation makes "
                                     "larger: after it the permute would move bytes")
        if concat:
            q = as_perm(next(iter(node.users)))
            after = q.apply(tuple(out.shape))
            if moves_bytes(p.then(q), after) and not moves_bytes(q, after):
                return self.reject(node, "the concatenation gathers its permuted inputs for free and the permute "
                                         "after it moves no bytes; merged, they would")
        if any(len(c.users) != 1 for c in constants):
            return self.reject(node, "a constant input is also read by another op")
        return JoinMatch(node, p, tuple(permuted), tuple(constants))

    def rewrite(self, edit: GraphEdit, m: JoinMatch) -> None:
        node, p = m.node, m.perm
        rank = p.rank
        back = p.inverse().dims
        for c in m.constants:
            edit.relayout_constant(c, lambda t: t.reshape((1,) * (rank - t.dim()) + tuple(t.shape)).permute(back))
        operands = dict(_tensor_operands(node))
        sources = {i: operands[i].args[0] for i in m.permuted}
        if ops.packet_of(node) in ops.CONCAT_PACKETS:
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            args = ([sources.get(i, a) for i, a in enumerate(node.args[0])], p.dims[dim % rank], *node.args[2:])
            kwargs = {k: v for k, v in node.kwargs.items() if k != "dim"}
        else:
            args, kwargs = tuple(sources.get(i, a) for i, a in enumerate(node.args)), dict(node.kwargs)
        joined = edit.call(node.target, args, kwargs, like=node)
        edit.replace(node, edit.call(aten.permute.default, (joined, list(p.dims)), like=node, after=joined))
        edit.erase_if_dead(*{operands[i] for i in m.permuted})
