"""A permutation of the channels that only weighted sums read is folded into their weights:

    y = x[:, pi]  (any chain of views, permutes and copies that gathers channels, e.g. a
                   channel shuffle)
    conv(f(y), W)  ==  conv(f(x), W[:, inverse(pi)])      and the same for linear

where ``f`` is a chain of channel-wise ops (elementwise ops with scalars, reductions and pools
over the dims after the channel dim, reshapes that keep the first two dims): each computes
channel ``c`` of its output from channel ``c`` of its input alone, so it commutes with any
reordering of the channels. A convolution (ungrouped) or linear then sums over its input
channels; reordering its weight's input columns by the inverse permutation sums the same
products. The gather disappears; the weights are re-laid out once, at compile time.

The chain is proved a channel gather by replaying it on the index tensor ``arange(numel)``,
never by reading its arguments. Only where every reader absorbs it: a chain with several
readers folds into each of their weights.

Declined: a reader that neither absorbs the permutation nor passes it through channel-wise
(a channel split, a concatenation, a graph output; ShuffleNet's inner shuffles feed a channel
split), grouped convolutions, weights that are not constants or are shared.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import arg_by_name, fake_value
from ..layout.channel_order import gather_of
from ..targets import Target
from .base import GraphEdit, GraphView, Match, Reject, Rule
from .operands import constant_weight

aten = ops.aten
_MAX_READERS = 32


def channel_gather(chain: list[Node], shape: tuple[int, ...]) -> list[int] | None:
    """``pi`` when running ``chain`` on ``x`` of ``shape`` gives ``x[:, pi]``, else None."""
    proved = gather_of(chain, shape)
    return list(proved[1]) if proved is not None and proved[0] == 1 else None


def _channel_wise(node: Node, value: Node) -> bool:
    """Whether ``node`` computes channel c (dim 1) of its output from channel c of ``value``."""
    if node.args[0] is not value or any(isinstance(a, Node) for a in node.args[1:]) \
            or any(isinstance(v, Node) for v in node.kwargs.values()):
        return False
    packet = ops.packet_of(node)
    src, out = fake_value(value), fake_value(node)
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[:2] != src.shape[:2]:
        return False
    if ops.is_elementwise(node.target) and ops.family(node.target) is not ops.Family.COPY:
        return True
    if packet in ops.REDUCTION_PACKETS:
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = [dims] if isinstance(dims, int) else list(dims or [])
        return bool(dims) and all(d % src.dim() >= 2 for d in dims)
    return packet in ops.POOL_2D_PACKETS or packet in ops.FLATTEN_PACKETS


def _absorbs(node: Node, value: Node) -> bool:
    """Whether ``node`` is a weighted sum over dim 1 of ``value`` whose weight can be re-laid out."""
    packet = ops.packet_of(node)
    if packet not in ops.WEIGHTED_SUM_PACKETS or arg_by_name(node, "input") is not value:
        return False
    if packet is aten.linear and fake_value(value).dim() != 2:
        return False
    if packet is not aten.linear and (arg_by_name(node, "groups") != 1
                                      or (packet is aten.convolution and arg_by_name(node, "transposed"))):
        return False
    return True


@dataclass(frozen=True)
class GatherMatch(Match):
    x: Node  # the tensor before the gather
    chain: tuple[Node, ...]  # the gather, producer to consumer (``node`` last)
    pi: tuple[int, ...]  # ``node == x[:, pi]``
    passing: tuple[Node, ...]  # channel-wise readers the permutation passes through
    absorbers: tuple[Node, ...]  # the weighted sums that take it into their weights
    weights: tuple[Node, ...]  # their constant weight placeholders


class FoldChannelPermutation(Rule):
    name = "fold_channel_permutation"
    anchors = ops.GATHER_PACKETS

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> Rule | None:
        # the backend stage folds the same gathers into the quantized weights, exactly
        # (``carry_channel_order``, before this rule where it runs, leaves it what it declines)
        return None if target.stores_channel_orders(planned) else cls()

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        out = fake_value(node)
        if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[1] < 2:
            return None
        chain, cur, start = [], node, None
        while isinstance(cur, Node) and cur.op == "call_function" \
                and (ops.packet_of(cur) in ops.GATHER_PACKETS or ops.is_contiguous_copy(cur)):
            chain.insert(0, cur)
            cur = cur.args[0]
            val = fake_value(cur) if isinstance(cur, Node) else None
            if isinstance(val, torch.Tensor) and tuple(val.shape) == tuple(out.shape):
                start = len(chain)
        if start is None:
            return None
        chain = chain[len(chain) - start:]
        if not any(ops.packet_of(step) in ops.PERMUTE_PACKETS for step in chain):
            return None  # views alone keep the element order: no gather
        x = chain[0].args[0]
        pi = channel_gather(chain, tuple(int(d) for d in out.shape))
        if pi is None or pi == sorted(pi):
            return None
        absorbers, passing, pending = [], [], [node]
        while pending:
            value = pending.pop()
            for user in value.users:
                if _absorbs(user, value):
                    absorbers.append(user)
                elif user.op == "call_function" and _channel_wise(user, value):
                    passing.append(user)
                    pending.append(user)
                else:
                    if not absorbers and not passing:
                        return None  # nothing here could absorb it: not a candidate
                    what = "a graph output" if user.op == "output" else ops.op_name(user.target)
                    return self.reject(node, f"{what} reads the permuted channels and cannot absorb them")
                if len(absorbers) + len(passing) > _MAX_READERS:
                    return None
        if not absorbers:
            return None
        weights = []
        for conv in absorbers:
            source, _ = constant_weight(arg_by_name(conv, "weight"), view)
            if source is None:
                return self.reject(node, f"the weight of {conv.name} is not a constant")
            if len(source.users) != 1 or source in weights:
                return self.reject(node, f"the weight of {conv.name} is shared with another op")
            weights.append(source)
        if any(len(step.users) != 1 for step in chain[:-1]):
            return self.reject(node, "a tensor inside the permutation is also read by another op")
        return GatherMatch(node, x, tuple(chain), tuple(pi), tuple(passing), tuple(absorbers), tuple(weights))

    def rewrite(self, edit: GraphEdit, m: GatherMatch) -> None:
        pi = torch.tensor(m.pi)
        inverse = torch.empty_like(pi)
        inverse[pi] = torch.arange(len(pi))
        for weight in m.weights:
            edit.relayout_constant(weight, lambda w: w.index_select(1, inverse))
        edit.replace(m.node, m.x)
        for step in sorted(m.passing + m.absorbers):  # in graph order: each reads the one before
            edit.refresh(step)
        edit.erase_if_dead(*reversed(m.chain))
