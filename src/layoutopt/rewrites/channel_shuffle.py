"""A channel shuffle written on NCHW, in the form the target runs best: moved to the channel
axis where NHWC kernels keep it (``channel_shuffle_to_channels_last``), or, on an NPU whose
MAC array beats its transpose, a 1x1 convolution with a permutation weight
(``channel_shuffle_to_conv``, law in its docstring). The first:

    view(transpose(view(x, [N, g, k, H, W]), 1, 2), [N, g*k, H, W])
 -> permute(view(transpose(view(permute(x, [0, 2, 3, 1]), [N*H*W, g, k]), 1, 2), [N, H, W, g*k]),
            [0, 3, 1, 2])

Both give ``y[n, i*g + j, h, w] = x[n, j*k + i, h, w]``. On NCHW data the shuffle is a
transpose of whole H*W planes; on NHWC data the same shuffle exchanges the two factors of
the innermost (channel) axis. The outer permutes restate NCHW <-> NHWC, which an NHWC
backend cancels against the layout its convolutions already use (and the planner sees as
free views of channels-last tensors), so one transpose of ``[N*H*W, g, k]`` remains where the
NCHW form needed a transpose into NCHW, the shuffle, and one back. A ``contiguous()`` between
the transpose and the second view is part of the pattern; ``permute`` with the same effect
as ``transpose(1, 2)`` is too. With ``g == 1`` or ``k == 1`` the shuffle is the identity and
is removed.

Applied only where ``x`` comes from an op the target runs channels-last (through elementwise
ops, concatenations and channel splits); elsewhere the NCHW form is the cheaper one.
Declined: intermediate tensors another op also reads, views that are not a split of the
channel axis into ``g * k`` and back, inputs not produced channels-last; and the first form in
an ExecuTorch edge program, where its outer permutes are ``permute_copy`` copies.

Where the backend stores tensors without strides and layoutopt works inside it (ExecuTorch's
Arm backend, ``ShuffleForm.CHANNEL_ORDER``) neither form runs: the shuffle is carried there as
the order channels are stored in (``executorch/arm_channel_order.py``), with no transpose, no
MACs, and the quantized program unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import as_perm, fake_value
from ..targets import ShuffleForm, Target
from .base import GraphEdit, GraphView, Match, Reject, Rule
from .producers import channels_last_producer

aten = ops.aten
_SWAP_1_2 = (0, 2, 1, 3, 4)


@dataclass(frozen=True)
class ShuffleMatch(Match):
    x: Node
    chain: tuple[Node, ...]  # split view, transpose, contiguous copy if any: producer to consumer
    shape: tuple[int, int, int, int]  # N, C, H, W
    groups: int


class _ShuffleRule(Rule):
    """Matches ``view -> transpose(1, 2) -> [contiguous] -> view`` on the channel axis."""

    anchors = ops.VIEW_PACKETS
    forms: frozenset = frozenset()  # the targets' shuffle forms this rule writes

    def __init__(self, target: Target):
        self.target = target

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> Rule | None:
        if ops.Family.CONV not in target.channels_last or target.channel_shuffle not in cls.forms:
            return None
        return cls(target)

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        copy = node.args[0]
        swapped = copy.args[0] if ops.is_contiguous_copy(copy) else copy
        perm = as_perm(swapped)
        if perm is None or tuple(perm.dims) != _SWAP_1_2:
            return None
        split = swapped.args[0]
        if ops.packet_of(split) not in ops.VIEW_PACKETS:
            return None
        x = split.args[0]
        src, mid, out = fake_value(x), fake_value(split), fake_value(node)
        if src is None or mid is None or out is None or src.dim() != 4 or mid.dim() != 5:
            return None
        n, c, h, w = (int(d) for d in src.shape)
        _, g, k, h2, w2 = (int(d) for d in mid.shape)
        if (g * k, h2, w2) != (c, h, w) or tuple(int(d) for d in out.shape) != (n, c, h, w):
            return self.reject(node, "the views are not a split of the channel axis into g*k and back")
        chain = (split, swapped, *([copy] if copy is not swapped else []))
        if any(len(step.users) != 1 for step in chain):
            return self.reject(node, "a tensor inside the shuffle is also read by another op")
        if not channels_last_producer(x, self.target):
            return self.reject(node, f"the input is not produced channels-last on {self.target.name}")
        return ShuffleMatch(node, x, chain, (n, c, h, w), g)

    def rewrite(self, edit: GraphEdit, m: ShuffleMatch) -> None:
        g, c = m.groups, m.shape[1]
        edit.replace(m.node, m.x if g in (1, c) else self.shuffled(edit, m))
        edit.erase_if_dead(*reversed(m.chain))

    def shuffled(self, edit: GraphEdit, m: ShuffleMatch) -> Node:
        raise NotImplementedError


class ChannelShuffleToChannelsLast(_ShuffleRule):
    """The shuffle as one transpose of the channel axis's two factors (see the module doc)."""

    name = "channel_shuffle_to_channels_last"
    forms = frozenset({ShuffleForm.CHANNELS_LAST, ShuffleForm.INTERLEAVE, ShuffleForm.CHANNEL_ORDER})

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> Rule | None:
        # the backend stage carries the shuffle exactly; this form's permutes would be
        # quantized on their own (ShuffleNetV2 on U55: 99.7 % of outputs equal to stock)
        return None if target.stores_channel_orders(planned) else super().for_target(target, planned)

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        found = super().match(node, view)
        if isinstance(found, Match) and view.edge:
            return self.reject(node, "in an edge program the permute back to NCHW is a copy (permute_copy), "
                                     "not a view of channels-last data")
        return found

    def shuffled(self, edit: GraphEdit, m: ShuffleMatch) -> Node:
        n, c, h, w = m.shape
        node, g = m.node, m.groups
        nhwc = edit.call(aten.permute.default, (m.x, [0, 2, 3, 1]), like=node)
        rows = edit.call(aten.reshape.default, (nhwc, [n * h * w, g, c // g]), like=node)
        swapped = edit.call(aten.transpose.int, (rows, 1, 2), like=node)
        merged = edit.call(aten.reshape.default, (swapped, [n, h, w, c]), like=node)
        return edit.call(aten.permute.default, (merged, [0, 3, 1, 2]), like=node)


def shuffle_matrix(channels: int, groups: int) -> torch.Tensor:
    """``P`` with ``(P @ x)[i*g + j] = x[j*k + i]``: the shuffle as a channel mixing matrix."""
    source = torch.arange(channels).view(groups, channels // groups).t().reshape(-1)
    matrix = torch.zeros(channels, channels)
    matrix[torch.arange(channels), source] = 1.0
    return matrix


class ChannelShuffleToConv(_ShuffleRule):
    """conv2d(x, P[:, :, None, None]) with ``P = shuffle_matrix(C, g)``: each output channel
    copies one input channel (one weight of 1, the rest 0), exactly, in any float format and
    in int8 (a weight of 1 is exact under symmetric per-channel quantization).

    An NPU with a fast MAC array and a slow fine-grained transpose runs the C*C*H*W MACs of a
    1x1 convolution faster than it interleaves channels: on Ethos-U85 the transpose of
    ``[N*H*W, g, k]`` is element-granular, the convolution is its native path.
    """

    name = "channel_shuffle_to_conv"
    forms = frozenset({ShuffleForm.CONV})

    def shuffled(self, edit: GraphEdit, m: ShuffleMatch) -> Node:
        c, g, node = m.shape[1], m.groups, m.node
        dtype = fake_value(m.x).dtype
        weight = edit.add_constant(f"{node.name}_shuffle_weight",
                                   shuffle_matrix(c, g).to(dtype)[:, :, None, None], before=node)
        return edit.call(aten.conv2d.default, (m.x, weight), like=node)
