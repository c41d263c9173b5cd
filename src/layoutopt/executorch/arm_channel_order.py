"""Channel shuffles carried as the order a tensor's channels are stored in, inside ExecuTorch's
Arm backend graph (``ShuffleForm.CHANNEL_ORDER``).

TOSA has no strides, and nothing in the graph before serialization fixes the order in which
a tensor's channels are stored; the laws of carrying a gather of channels as a stored order are
in ``layout/channel_order.py``. Here, how the backend's ops read another order: a slice is
free to Vela and a concatenation copies one run per MemoryCopy; RESCALE scales and
DEPTHWISE_CONV2D weights and bias (channel multiplier 1) are permuted; pools, tables,
per-tensor rescales, reductions over other axes and elementwise ops with operands broadcast
along the channels need nothing; a CONV2D takes the order into its weight's input axis (the
same int32 products, summed in another order), and one whose output only reaches a
concatenation writes any order (weight rows, bias and the RESCALE scales after it permuted).
Only data moves and integer constants are re-laid out: the graph computes the same values bit
for bit. The price: channels passed on through several units end up in more and narrower runs
(ShuffleNetV2 x1.0 at 224 px: 53 copy runs where the stock lowering copies 13 passed-on halves;
Vela 5.1.0, U55: 427K against 364K cycles, while 298K cycles of transposes go).

A shuffle is declined, and left as it stands, when anything downstream of it through those ops
reads the shuffled channels otherwise: the graph output, an op outside this table, a reshape that
splits the channel axis, a concatenation along another axis, a convolution with a weight that
is not a constant.
"""
from __future__ import annotations

from torch.fx import GraphModule, Node

from ..ir import ops
from ..ir.access import copy_provenance, fake_value
from ..layout.channel_order import (ChannelOrderCarrier, ChannelOrderRecord, Gather, Read, Role, find_gathers,
                                    gather_of, shape_of)

aten = ops.aten


class _ArmCarrier(ChannelOrderCarrier):
    def __init__(self, gm: GraphModule, ep) -> None:
        from executorch.exir.dialects._ops import ops as exir_ops

        super().__init__(gm.graph.nodes)
        self.gm, self.ep = gm, ep
        self.slice_op = exir_ops.edge.aten.slice_copy.Tensor
        self.cat_op = exir_ops.edge.aten.cat.default
        self.constants = 0  # constants added

    def _constant(self, node) -> bool:
        from executorch.backends.transforms.utils import is_param_node

        return isinstance(node, Node) and node.op == "placeholder" and is_param_node(self.ep, node)

    def role(self, user: Node, value: Node, axis: int) -> Role | str:
        if user.op != "call_function":
            return "read by the graph output"
        if _int48(user) or _int48(value):
            return "stored as int48"
        gathered = self.gather_role(user, value, axis)
        if gathered is not None:
            return gathered
        last = axis == len(shape_of(value)) - 1
        tosa = ops.tosa_op(user.target)
        if tosa in (ops.TOSA_CHANNEL_SUM, ops.TOSA_DEPTHWISE):
            if user.args[0] is not value or value in user.args[1:3] or not last:
                return f"read by {tosa} other than as its NHWC input"
            if not self._constant(user.args[1]) or not self._constant(user.args[2]):
                return f"read by {tosa} with a weight or bias that is not a constant"
            if tosa == ops.TOSA_CHANNEL_SUM:
                return Role(Read.ABSORB)
            if shape_of(user.args[1])[3] != 1:
                return f"read by a channel-multiplying {tosa}"
            return Role(Read.CARRY, axis)
        if tosa in ops.TOSA_CHANNELWISE:
            return Role(Read.CARRY, axis) if last or _along_any_axis(user) else f"read by {tosa} along another axis"
        if tosa is not None:
            return f"read by {tosa}"
        return self.structural_role(user, value, axis)

    def chooses_order(self, node: Node, axis: int) -> bool:
        return (ops.tosa_op(node.target) == ops.TOSA_CHANNEL_SUM and axis == len(shape_of(node)) - 1
                and self._constant(node.args[1]) and self._constant(node.args[2]) and not _int48(node))

    def passes_channels(self, node: Node, axis: int) -> bool:
        return ops.tosa_op(node.target) in ops.TOSA_CHANNELWISE and (axis == len(shape_of(node)) - 1
                                                                     or _along_any_axis(node))

    def _relayout(self, user: Node, position: int, fn) -> None:
        """Re-lay out the constant ``user.args[position]`` by ``fn`` (in place when only
        ``user`` reads it, else as a new constant)."""
        from torch.export.graph_signature import InputKind
        from executorch.backends.transforms.utils import (create_constant_placeholder, get_param_tensor,
                                                         set_param_tensor)

        const = user.args[position]
        data = fn(get_param_tensor(self.ep, const)).contiguous()
        if len(const.users) == 1:
            set_param_tensor(self.ep, const, data)
            return
        first = next(n for n in self.gm.graph.nodes if n.op == "placeholder")
        with self.gm.graph.inserting_before(first):
            self.constants += 1
            new = create_constant_placeholder(self.ep, self.gm.graph, f"{const.name}_channels_{self.constants}",
                                              InputKind.CONSTANT_TENSOR, data)
        args = list(user.args)
        args[position] = new
        user.args = tuple(args)

    def permute_channels(self, node: Node, order: list[int], output: bool) -> None:
        import torch

        index = torch.tensor(order)
        tosa = ops.tosa_op(node.target)
        if tosa == ops.TOSA_CHANNEL_SUM:
            self._relayout(node, 1, lambda w: w.index_select(0 if output else 3, index))  # OHWI
            if output:
                self._relayout(node, 2, lambda b: b.index_select(0, index))
        elif tosa == ops.TOSA_DEPTHWISE:
            self._relayout(node, 1, lambda w: w.index_select(2, index))  # HWCM
            self._relayout(node, 2, lambda b: b.index_select(0, index))
        elif tosa == "RESCALE" and len(node.args[2]) > 1:
            scales = list(node.args[2])
            node.args = (node.args[0], node.args[1], [scales[i] for i in order], *node.args[3:])

    def _node(self, op, args: tuple, like: Node, before: Node) -> Node:
        with self.gm.graph.inserting_before(before):
            node = self.gm.graph.call_function(op, args)
        for key, value in like.meta.items():
            if key != "val":
                node.meta[key] = dict(value) if isinstance(value, dict) else value
        copy_provenance(like, node)
        fake = [fake_value(a) for a in args[0]] if isinstance(args[0], (list, tuple)) else fake_value(args[0])
        node.meta["val"] = op(fake, *args[1:])
        return node

    def build_slice(self, x: Node, axis: int, start: int, end: int, like: Node, before: Node) -> Node:
        return self._node(self.slice_op, (x, axis, start, end), like, before)

    def build_cat(self, pieces: list[Node], axis: int, like: Node, before: Node) -> Node:
        return self._node(self.cat_op, (pieces, axis), like, before)

    def replace_input(self, node: Node, old: Node, new: Node) -> None:
        node.replace_input_with(old, new)

    def erase(self, nodes: list[Node]) -> None:
        for node in nodes:
            if not node.users:
                self.gm.graph.erase_node(node)


def _along_any_axis(node: Node) -> bool:
    """Whether a channel-wise TOSA op treats every axis alike: a table, a per-tensor rescale
    (pools and per-channel rescales run along the last axis)."""
    tosa = ops.tosa_op(node.target)
    return tosa == "TABLE" or (tosa == "RESCALE" and len(node.args[2]) <= 1)


def _int48(node: Node) -> bool:
    from executorch.backends.arm.tosa.mapping import TosaSpecialDtype

    return node.meta.get(TosaSpecialDtype.meta_key()) == TosaSpecialDtype.INT48


def carry_channel_orders(gm: GraphModule, ep) -> ChannelOrderRecord:
    """Carry every gather of channels in ``gm`` (the Arm backend's graph, ``ep`` its program)
    as a stored channel order where all its readers allow (see the module doc)."""
    carrier = _ArmCarrier(gm, ep)
    gathers = find_gathers(gm.graph.nodes)
    if not gathers:
        return carrier.record
    if ep is None:
        carrier.record.declined = {g.end.name: "no program to re-lay out constants in" for g in gathers}
        return carrier.record
    accepted = carrier.analyse(gathers)
    if accepted:
        carrier.rewrite(accepted, list(gm.graph.nodes))
        gm.graph.lint()
        gm.recompile()
    return carrier.record


__all__ = ["ChannelOrderRecord", "Gather", "carry_channel_orders", "find_gathers", "gather_of"]
