"""conv2d(x[N,C,1,1], w[O,C,1,1], b) -> view(linear(view(x, [N,C]), w[O,C], b), [N,O,1,1]).

On a 1x1 spatial input a 1x1 convolution is a vector-matrix product; NPUs run that on their
fully-connected path instead of the convolution engine (Ethos-U: 9,858 -> 1,341 cycles per
layer, as reported for a squeeze-excite conv). The weight is reshaped at compile time (an
axis-0 per-channel dequantized weight is reshaped as int8 under its dequantize); the input
view goes under a per-tensor dequantize and the output view after the activation/quantize
tail, so q/dq stay next to the linear. Only for targets that prefer fully connected.

Declined: padding (it would grow the output), groups > 1, kernels larger than 1x1, weights
that are not constants or that another op also reads, biases that are not constants.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch.fx import Node

from ..ir import ops
from ..ir.access import arg_by_name, fake_value
from ..targets import Target
from .base import GraphEdit, GraphView, Match, Reject, Rule
from .operands import weight_and_bias
from .qdq import pull_tail, replace_chain, view_before

aten = ops.aten


@dataclass(frozen=True)
class Conv1x1Match(Match):
    x: Node
    n: int  # batch
    weight: Node  # the constant placeholder
    dequant: Node | None  # its per-channel dequantize, if any
    bias: Any
    out: int  # output channels


class Conv1x1ToFullyConnected(Rule):
    name = "conv1x1_to_fc"
    anchors = frozenset({aten.conv2d, aten.convolution})

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> Rule | None:
        return cls() if target.fc_for_pointwise else None

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        x = arg_by_name(node, "input")
        val = fake_value(x) if isinstance(x, Node) else None
        if val is None or val.dim() != 4 or tuple(val.shape[2:]) != (1, 1):
            return None
        if ops.aten_overload(node.target) is aten.convolution.default and arg_by_name(node, "transposed"):
            return self.reject(node, "transposed convolution")
        weight = arg_by_name(node, "weight")
        wval = fake_value(weight) if isinstance(weight, Node) else None
        if wval is None or tuple(wval.shape[2:]) != (1, 1):
            return self.reject(node, "kernel larger than 1x1")
        padding = arg_by_name(node, "padding")
        unpadded = padding in ("valid", "same") if isinstance(padding, str) else all(p == 0 for p in padding)
        if not unpadded:  # a 1x1 kernel with "same" pads nothing
            return self.reject(node, "padded convolution")
        if arg_by_name(node, "groups") != 1:
            return self.reject(node, "grouped convolution")
        operands = weight_and_bias(self, node, view)
        if isinstance(operands, Reject):
            return operands
        source, dequant, bias = operands
        return Conv1x1Match(node, x, val.shape[0], source, dequant, bias, int(wval.shape[0]))

    def rewrite(self, edit: GraphEdit, m: Conv1x1Match) -> None:
        conv: Node = m.node
        n, out = m.n, m.out
        edit.relayout_constant(m.weight, lambda w: w.reshape(w.shape[0], w.shape[1]))
        if m.dequant is not None:
            edit.refresh(m.dequant)
        weight = m.dequant if m.dequant is not None else m.weight
        flat = view_before(edit, m.x, aten.view.default, ([n, -1],), like=conv)
        y = edit.call(aten.linear.default, (flat, weight, m.bias), like=conv)
        last, y = pull_tail(edit, conv, y)
        back = edit.call(aten.view.default, (y, [n, out, 1, 1]), like=last, after=y)
        replace_chain(edit, conv, last, back)
        edit.erase_if_dead(m.x)
