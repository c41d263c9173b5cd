"""Where a tensor comes from, as far as layout is concerned: rules that move work onto the
channel axis pay only where the data is already channels-last on the target."""
from __future__ import annotations

import operator

from torch.fx import Node

from ..ir import ops
from ..targets import Target


def channels_last_producer(x, target: Target, limit: int = 64) -> bool:
    """Whether ``x`` comes from an op ``target`` runs channels-last, through unary elementwise
    ops, batch norms, concatenations (any input) and channel splits or slices."""
    pending, seen = [x], set()
    while pending and len(seen) < limit:
        node = pending.pop()
        if not isinstance(node, Node) or node.op != "call_function" or node in seen:
            continue
        seen.add(node)
        if ops.family(node.target) in target.channels_last:
            return True
        packet = ops.packet_of(node)
        if node.target is operator.getitem:
            pending.append(node.args[0])
        elif packet in ops.CONCAT_PACKETS:
            pending.extend(node.args[0])
        elif packet in ops.SPLIT_PACKETS or ops.is_elementwise(node.target) or ops.is_batch_norm(node.target):
            pending.append(node.args[0])
    return False
