"""linear(flatten(x), W) -> linear(flatten(permute(x, [0, 2, 3, 1])), W') with
W' = W.view(O, C, H, W).permute(0, 2, 3, 1).reshape(O, C*H*W), made at compile time.

A CNN head that flattens NCHW features into a linear layer forces a transpose on an NHWC
target: the NHWC bytes are not in C, H, W order. Reading them in H, W, C order instead and
permuting the weight's input columns to match gives the same products; the permute is then a
free view of the channels-last tensor. Applied only where ``x`` comes from an op that the
target runs channels-last (through elementwise ops and q/dq), so the permute is a view.

Declined: weights that are not constants or that another op also reads, non-constant biases.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch.fx import Node

from ..ir import ops
from ..ir.access import arg_by_name, fake_value
from ..targets import Target
from .base import GraphEdit, GraphView, Match, Reject, Rule
from .operands import weight_and_bias
from .producers import channels_last_producer

aten = ops.aten


@dataclass(frozen=True)
class FlattenLinearMatch(Match):
    x: Node
    flat: Node  # the flatten of x the linear reads
    shape: tuple[int, int, int, int]  # x's, NCHW
    weight: Node  # the constant placeholder
    dequant: Node | None  # its per-channel dequantize, if any


class FlattenLinearToNHWC(Rule):
    name = "flatten_linear_to_nhwc"
    anchors = frozenset({aten.linear})

    def __init__(self, target: Target):
        self.target = target

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> Rule | None:
        return cls(target) if ops.Family.CONV in target.channels_last else None

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        flat = arg_by_name(node, "input")
        x = _flattened_source(flat)
        if x is None or len(flat.users) != 1:
            return None
        shape = tuple(fake_value(x).shape)
        if shape[2] * shape[3] == 1 or not channels_last_producer(x, self.target):
            return None
        operands = weight_and_bias(self, node, view)
        if isinstance(operands, Reject):
            return operands
        source, dequant, _ = operands  # the bias is untouched: output features keep their order
        return FlattenLinearMatch(node, x, flat, shape, source, dequant)

    def rewrite(self, edit: GraphEdit, m: FlattenLinearMatch) -> None:
        _, c, h, w = m.shape
        edit.relayout_constant(m.weight, lambda t: t.reshape(t.shape[0], c, h, w).permute(0, 2, 3, 1)
                               .reshape(t.shape[0], c * h * w))
        if m.dequant is not None:
            edit.refresh(m.dequant)
        nhwc = edit.call(aten.permute.default, (m.x, [0, 2, 3, 1]), like=m.flat)
        flat = edit.call(aten.flatten.using_ints, (nhwc, 1), like=m.flat)
        edit.replace_input(m.node, m.flat, flat)
        edit.refresh(m.node)
        edit.erase_if_dead(m.flat)


def _flattened_source(flat) -> Node | None:
    """``x`` when ``flat`` is ``x[N, C, H, W]`` flattened to ``[N, C*H*W]``."""
    if not isinstance(flat, Node) or flat.op != "call_function":
        return None
    packet = ops.packet_of(flat)
    if packet not in ops.FLATTEN_PACKETS:
        return None
    x = flat.args[0]
    src, out = fake_value(x) if isinstance(x, Node) else None, fake_value(flat)
    if src is None or out is None or src.dim() != 4 or out.dim() != 2:
        return None
    if out.shape[0] != src.shape[0] or out.shape[1] != src.shape[1] * src.shape[2] * src.shape[3]:
        return None
    return x
