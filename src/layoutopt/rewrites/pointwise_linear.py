"""A linear over the channel axis of an NCHW tensor, reached through layout ops, is a 1x1 conv:

    y = linear(reshape(permute(x, [0, 2, 3, 1])), W, b)  ->  reshaped and permuted back to NCHW
    ==>  y = conv2d(x, W[:, :, None, None], b)

Both chains (into the linear and out of it) may use only ``permute``, ``transpose``, ``view``,
``reshape`` and ``flatten``/``unflatten``; each is proven equal to ``permute(0, 2, 3, 1)`` +
``reshape`` (and back) by replaying it on element indices, not by reading its arguments. A
constant added over the last dim after the linear is folded into the bias; the convolution
is then pointwise on NCHW, the form every NHWC backend runs without transposes. A 1x1
spatial input is left as a linear (the inverse of ``conv1x1_to_fc``, which prefers it).

Declined, each with its reason: several axes of ``x`` with the size of the channel axis
(ambiguous), a value on either chain read by another op, a layout op outside the allow-list
on the chain, an add after the linear whose other operand is not a constant bias (a
residual), weights that are not constants or are shared, biases that are not constants.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import arg_by_name, fake_value
from ..ir.propagate import run_chain
from .base import GraphEdit, GraphView, Match, Reject, Rule

aten = ops.aten


@dataclass(frozen=True)
class PointwiseLinearMatch(Match):
    x: Node  # NCHW
    up: tuple[Node, ...]  # layout ops from x to the linear
    down: tuple[Node, ...]  # layout ops from the linear (or its bias add) back to NCHW
    weight: Node
    bias: Node | None
    extra_bias: tuple[Node, Node] | None  # (add, constant) after the linear, folded into the bias


class PointwiseLinearToConv(Rule):
    name = "pointwise_linear_to_conv"
    anchors = frozenset({aten.linear})

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        up: list[Node] = []
        cur = arg_by_name(node, "input")
        while isinstance(cur, Node) and cur.op == "call_function" and ops.packet_of(cur) in ops.REORDER_PACKETS:
            up.insert(0, cur)
            cur = cur.args[0]
        if not up:
            return None
        x = cur
        if isinstance(x, Node) and x.op == "call_function" and ops.family(x.target) in ops.DATA_MOVEMENT_FAMILIES:
            return self.reject(node, f"layout op {ops.op_name(x.target)} is not allow-listed")
        xval = fake_value(x) if isinstance(x, Node) else None
        if xval is None or xval.dim() != 4:
            return None
        n, c, h, w = (int(s) for s in xval.shape)
        if h * w == 1:  # a vector-matrix product already: fully connected is the better form
            return None
        index = torch.arange(n * c * h * w).reshape(n, c, h, w)
        into = run_chain(up, index)
        if not torch.equal(into, index.permute(0, 2, 3, 1).reshape(into.shape)):
            return None
        if sum(1 for s in xval.shape[1:] if s == c) > 1:
            return self.reject(node, "several axes have the size of the channel axis")
        if any(len(v.users) != 1 for v in up):
            return self.reject(node, "a layout op on the input chain has another reader")
        weight, bias = arg_by_name(node, "weight"), arg_by_name(node, "bias")
        if view.constant(weight) is None:
            return self.reject(node, "weight is not a constant")
        if len(weight.users) != 1:
            return self.reject(node, "weight is shared with another op")
        if bias is not None and (view.constant(bias) is None or len(bias.users) != 1):
            return self.reject(node, "bias is not a constant read only here")
        out_features = int(fake_value(weight).shape[0])
        down, extra_bias, cur = [], None, node
        while len(cur.users) == 1:
            nxt = next(iter(cur.users))
            if nxt.op != "call_function":
                break
            if ops.packet_of(nxt) in ops.REORDER_PACKETS and nxt.args[0] is cur:
                down.append(nxt)
            elif ops.packet_of(nxt) is aten.add and not down and extra_bias is None:
                other = nxt.args[1] if nxt.args[0] is cur else nxt.args[0]
                ov = fake_value(other) if isinstance(other, Node) else None
                if view.constant(other) is None or ov is None or tuple(ov.shape) != (out_features,) \
                        or len(other.users) != 1 or len(nxt.args) > 2 or nxt.kwargs:
                    return self.reject(node, "the add after the linear is a residual, not a bias")
                extra_bias = (nxt, other)
            else:
                break
            cur = nxt
        if not down:
            return None
        out_index = torch.arange(n * h * w * out_features).reshape(n, h, w, out_features)
        start = out_index.reshape(fake_value(node).shape)
        back = run_chain(down, start)
        if back.dim() != 4 or not torch.equal(back, out_index.permute(0, 3, 1, 2)):
            return self.reject(node, "the output chain does not return to NCHW") if back.dim() == 4 else None
        return PointwiseLinearMatch(node, x, tuple(up), tuple(down), weight, bias, extra_bias)

    def rewrite(self, edit: GraphEdit, m: PointwiseLinearMatch) -> None:
        edit.relayout_constant(m.weight, lambda t: t.reshape(t.shape[0], t.shape[1], 1, 1))
        bias = m.bias
        if m.extra_bias is not None:
            add, extra = m.extra_bias
            if bias is None:
                bias = extra
            else:
                folded = edit.constant(extra).detach().clone()
                edit.relayout_constant(bias, lambda b: b + folded)
        end = m.down[-1]
        conv = edit.call(aten.conv2d.default, (m.x, m.weight, bias), like=m.node, before=end)
        edit.replace(end, conv)
        chain = (*m.up, m.node, *([m.extra_bias[0]] if m.extra_bias else []), *m.down)
        edit.erase_if_dead(*reversed(chain))
