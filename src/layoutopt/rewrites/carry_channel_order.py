"""A gather of channels (a channel shuffle) carried as the order channels are stored in, through
channel splits and concatenations, into the weights of the convolutions and linears that read
it (laws in ``layout/channel_order.py``):

    y = x.index_select(1, pi)            (permutes and views: ShuffleNet's shuffle)
    conv(f(y), W) == conv(f(x'), W')     where x' stores y's channels in another order, f is any
                                         chain of channel-wise ops, slices and concatenations,
                                         and W' is W with its input columns permuted to match

The gather becomes no op at all; a concatenation it passed through stores its channels in the
order the readers downstream want (several runs per input instead of one), the convolutions
writing into it permute their output rows (with their bias and batch-norm statistics), and each
weighted sum at the end absorbs the order. ShuffleNetV2: every shuffle goes, with the
transpose each one costs.

Channel-wise ops here: activations and other elementwise ops whose other operands are broadcast
along the channels, batch norm (statistics permuted), depthwise convolutions (weights and bias
permuted), pools, reductions over other dims, reshapes that keep the channel dim whole.

Only on a planned target that does not run shuffles as written (XNNPACK does): where the backend
lays tensors out itself the backend stage carries orders (Ethos-U) or interleaves as it copies
(Cortex-M's explicit layout, ``view_into_cat``). Declined with the first reader that cannot read
another order: a graph output, an op outside the table above, a reshape across the channel
dim, a concatenation along another dim, a grouped (not depthwise) convolution, a weight that is
not a constant.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import arg_by_name, fake_value
from ..layout.channel_order import (ChannelOrderCarrier, Closure, Gather, Read, Role, gather_ending_at,
                                    is_reorder, shape_of)
from ..targets import Target
from .base import GraphEdit, GraphView, Match, Reject, Rule

aten = ops.aten
_BN_CONSTANTS = ("weight", "bias", "running_mean", "running_var")


def _conv_kind(node: Node) -> str | None:
    """"sum" for an ungrouped convolution or a linear, "depthwise" for a depthwise one (channel
    multiplier 1), None for any other op (a transposed or grouped convolution included)."""
    packet = ops.packet_of(node)
    if packet not in ops.WEIGHTED_SUM_PACKETS:
        return None
    if packet is aten.linear:
        return "sum"
    if packet is aten.convolution and arg_by_name(node, "transposed"):
        return None
    groups = arg_by_name(node, "groups") or 1
    if groups == 1:
        return "sum"
    channels = shape_of(arg_by_name(node, "input"))[1]
    out = shape_of(node)[1]
    return "depthwise" if groups == channels == out else None


class _AtenCarrier(ChannelOrderCarrier):
    """How ATen ops read a stored channel order; edits go through ``GraphEdit``."""

    def __init__(self, nodes, view: GraphView, edit: GraphEdit | None = None) -> None:
        super().__init__(nodes)
        self.view, self.edit = view, edit
        self._heads: dict[Node, Gather | None] = {}

    def head(self, node: Node) -> Gather | None:
        """Found on demand: the chain of single-reader permutes and views from ``node`` to its
        last, if that gathers channels."""
        if node not in self._heads:
            end = node
            while is_reorder(end) and len(end.users) == 1 and is_reorder(next(iter(end.users))):
                end = next(iter(end.users))
            gather = gather_ending_at(end) if is_reorder(node) else None
            self._heads[node] = gather if gather is not None and gather.chain[0] is node else None
        return self._heads[node]

    def _constants(self, node: Node, names) -> bool:
        return all(arg_by_name(node, name) is None or self.view.constant(arg_by_name(node, name)) is not None
                   for name in names)

    def role(self, user: Node, value: Node, axis: int) -> Role | str:
        if user.op != "call_function":
            return "read by the graph output"
        gathered = self.gather_role(user, value, axis)
        if gathered is not None:
            return gathered
        name = ops.op_name(user.target)
        rank = len(shape_of(value))
        if ops.packet_of(user) in ops.WEIGHTED_SUM_PACKETS:
            kind = _conv_kind(user)
            if arg_by_name(user, "input") is not value:
                return f"read by {name} as its weight"
            if kind is None:
                return f"read by a grouped or transposed {name}"
            if not self._constants(user, ("weight", "bias")) or arg_by_name(user, "weight") is None:
                return f"read by {name} with a weight that is not a constant"
            if ops.packet_of(user) is aten.linear:
                return Role(Read.ABSORB) if axis == rank - 1 else f"read by {name} along another dim"
            if axis != 1:
                return f"read by {name} along another dim"
            return Role(Read.ABSORB) if kind == "sum" else Role(Read.CARRY, 1)
        if ops.is_batch_norm(user.target):
            if ops.packet_of(user) is not aten.batch_norm or arg_by_name(user, "input") is not value or axis != 1:
                return f"read by {name} other than as its input"
            if not self._constants(user, _BN_CONSTANTS):
                return f"read by {name} with statistics that are not constants"
            return Role(Read.CARRY, 1)
        if ops.packet_of(user) in ops.POOL_2D_PACKETS:
            return Role(Read.CARRY, axis) if axis == 1 and user.args[0] is value else f"read by {name}"
        return self.structural_role(user, value, axis)

    def chooses_order(self, node: Node, axis: int) -> bool:
        return (_conv_kind(node) == "sum" and axis == 1 and ops.packet_of(node) is not aten.linear
                and arg_by_name(node, "weight") is not None and self._constants(node, ("weight", "bias")))

    def passes_channels(self, node: Node, axis: int) -> bool:
        if ops.is_batch_norm(node.target):
            return ops.packet_of(node) is aten.batch_norm and axis == 1 and self._constants(node, _BN_CONSTANTS)
        if ops.is_contiguous_copy(node):
            return True
        return (ops.is_elementwise(node.target) and ops.family(node.target) is not ops.Family.COPY
                and len(node.all_input_nodes) == 1)

    # -- edits ------------------------------------------------------------------------------
    def _relayout(self, node: Node, name: str, dim: int, order: list[int]) -> None:
        """Permute the constant ``name`` of ``node`` along ``dim`` (a copy where others read it)."""
        const = arg_by_name(node, name)
        if const is None:
            return
        index = torch.tensor(order)
        if len(const.users) == 1:
            self.edit.relayout_constant(const, lambda w: w.index_select(dim, index))
            return
        data = self.edit.constant(const).detach().index_select(dim, index)
        self.edit.replace_input(node, const, self.edit.add_constant(f"{const.name}_channels", data, node))

    def permute_channels(self, node: Node, order: list[int], output: bool) -> None:
        kind = _conv_kind(node)
        if kind == "sum" and not output:
            self._relayout(node, "weight", 1, order)
        elif kind is not None:  # output rows of a sum, or a depthwise conv's channels
            self._relayout(node, "weight", 0, order)
            self._relayout(node, "bias", 0, order)
        elif ops.is_batch_norm(node.target):
            for name in _BN_CONSTANTS:
                self._relayout(node, name, 0, order)

    def build_slice(self, x: Node, axis: int, start: int, end: int, like: Node, before: Node) -> Node:
        return self.edit.call(aten.slice.Tensor, (x, axis, start, end), like=like, before=before)

    def build_cat(self, pieces: list[Node], axis: int, like: Node, before: Node) -> Node:
        return self.edit.call(aten.cat.default, (list(pieces), axis), like=like, before=before)

    def replace_input(self, node: Node, old: Node, new: Node) -> None:
        self.edit.replace_input(node, old, new)

    def erase(self, nodes: list[Node]) -> None:
        self.edit.erase_if_dead(*nodes)


@dataclass(frozen=True)
class CarryMatch(Match):
    closure: Closure  # the gather at ``node`` and everything carrying it changes


class CarryChannelOrder(Rule):
    name = "carry_channel_order"
    anchors = ops.GATHER_PACKETS

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> Rule | None:
        return cls() if target.carries_channel_orders(planned) else None

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        if any(is_reorder(user) for user in node.users):
            return None  # not the end of a chain
        gather = gather_ending_at(node)
        if gather is None or gather.axis != 1:
            return None
        carrier = _AtenCarrier(node.graph.nodes, view)
        closure = carrier.closure(gather)
        if closure.reason is not None:
            return self.reject(node, f"{closure.reason}: the gather of channels stays")
        if not any(role.kind is Read.ABSORB for _, role in closure.roles):
            return self.reject(node, "no weighted sum reads the gathered channels")
        return CarryMatch(node, closure)

    def rewrite(self, edit: GraphEdit, m: CarryMatch) -> None:
        nodes = list(edit.graph.nodes)
        carrier = _AtenCarrier(nodes, edit.view, edit)
        carrier.accept(m.closure)
        carrier.rewrite([m.closure.gather, *m.closure.gathers], nodes)
        # shapes are unchanged; the values of the carrying values and of every op that reads
        # them (the weighted sums that absorbed the order included) refreshed, in graph order
        readers = {user for user, _ in carrier.roles} | set(carrier.axis)
        for node in edit.graph.nodes:
            if node in readers and node.op == "call_function" and isinstance(fake_value(node), torch.Tensor):
                edit.refresh(node)


__all__ = ["CarryChannelOrder", "CarryMatch"]
