"""conv1d(x, w) -> squeeze(tail(conv2d(unsqueeze(x, 2), unsqueeze(w, 2))), 2).

NHWC targets have 2-D kernels only: a conv1d is run as a conv2d with H = 1, and on a
channels-last [N, C, 1, L] tensor that is the same bytes as [N, L, C], so the planner can
chain such convolutions with no copy between them. The weight gains its H dim at compile time
(a per-channel dequantized weight is unsqueezed as int8, under its dequantize); stride,
padding and dilation get a leading 1 (0 for padding); groups are kept, so a depthwise conv
stays depthwise. The activation tail (relu, relu6/hardtanh, clamp, hardsigmoid) moves inside,
directly after the conv2d, where backends fuse it; a quantize that follows the conv or its
tail moves inside as well, and a per-tensor dequantize that feeds it gets the unsqueeze before
it, so q/dq stay next to the ops they belong to.

Declined: transposed convolutions, inputs not of rank 3, weights that are not constants or
that another op also reads, biases that are not constants.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch.fx import Node

from ..ir import ops
from ..ir.access import arg_by_name, fake_value
from .base import GraphEdit, GraphView, Match, Reject, Rule
from .operands import weight_and_bias
from .qdq import pull_tail, replace_chain, view_before

aten = ops.aten


@dataclass(frozen=True)
class Conv1dMatch(Match):
    x: Node
    weight: Node  # the constant placeholder
    dequant: Node | None  # its per-channel dequantize, if any
    bias: Any


class Conv1dToConv2d(Rule):
    name = "conv1d_to_conv2d"
    anchors = frozenset({aten.conv1d, aten.convolution})

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        x = arg_by_name(node, "input")
        val = fake_value(x) if isinstance(x, Node) else None
        if val is None or val.dim() != 3:
            return None
        if ops.aten_overload(node.target) is aten.convolution.default and arg_by_name(node, "transposed"):
            return self.reject(node, "transposed convolution")
        operands = weight_and_bias(self, node, view)
        if isinstance(operands, Reject):
            return operands
        return Conv1dMatch(node, x, *operands)

    def rewrite(self, edit: GraphEdit, m: Conv1dMatch) -> None:
        conv: Node = m.node
        first = lambda v: [v[0]] if isinstance(v, (list, tuple)) else [v]  # noqa: E731
        stride = [1] + first(arg_by_name(conv, "stride"))
        dilation = [1] + first(arg_by_name(conv, "dilation"))
        padding = arg_by_name(conv, "padding")
        padding = padding if isinstance(padding, str) else [0] + first(padding)
        groups = arg_by_name(conv, "groups")

        edit.relayout_constant(m.weight, lambda w: w.unsqueeze(2))
        weight = m.dequant if m.dequant is not None else m.weight
        if m.dequant is not None:
            edit.refresh(m.dequant)

        x4 = view_before(edit, m.x, aten.unsqueeze.default, (2,), like=conv)
        target = aten.conv2d.padding if isinstance(padding, str) else aten.conv2d.default
        y = edit.call(target, (x4, weight, m.bias, stride, padding, dilation, groups), like=conv)
        last, y = pull_tail(edit, conv, y)  # activation and quantize stay next to the conv
        out = edit.call(aten.squeeze.dim, (y, 2), like=last, after=y)
        replace_chain(edit, conv, last, out)
        edit.erase_if_dead(m.x)
