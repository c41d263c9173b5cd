"""Keeping quantize/dequantize next to the ops they belong to while rules reshape around them.

PT2E graphs read ``dq -> op -> q``: backends recognise the quantized op by that adjacency. A
rule that puts a view in front of an op therefore puts it *under* a per-tensor dequantize
(viewing the int8 tensor is the same values), and a rule that puts a view after an op first
pulls the op's fusable tail (activation, quantize) next to the op.
"""
from __future__ import annotations

from typing import Any

from torch.fx import Node

from ..ir import ops
from .base import GraphEdit


def view_before(edit: GraphEdit, x: Node, target: Any, args: tuple, like: Node) -> Node:
    """``target(x, *args)``, placed under a per-tensor dequantize that feeds only ``like``."""
    if ops.is_dequantize_per_tensor(x.target) and len(x.users) == 1 and isinstance(x.args[0], Node):
        inner = edit.call(target, (x.args[0], *args), like=x)
        return edit.call(x.target, (inner, *x.args[1:]), dict(x.kwargs), like=x)
    return edit.call(target, (x, *args), like=like)


def pull_tail(edit: GraphEdit, old: Node, new: Node) -> tuple[Node, Node]:
    """Re-apply the chain of fusable single-user ops after ``old`` to ``new``.

    Returns ``(last old node of the chain, its new counterpart)``; the old chain stays in
    place for the caller to replace and erase (``replace_chain``)."""
    last, value = old, new
    while len(last.users) == 1:
        nxt = next(iter(last.users))
        if not _is_tail(nxt, last):
            break
        value = edit.call(nxt.target, (value, *nxt.args[1:]), dict(nxt.kwargs), like=nxt)
        last = nxt
    return last, value


def replace_chain(edit: GraphEdit, first: Node, last: Node, new: Node) -> None:
    """Route the users of ``last`` to ``new`` and erase ``first .. last`` (a single-user chain)."""
    chain = [last]
    while chain[-1] is not first:
        chain.append(chain[-1].args[0])
    edit.replace(last, new)
    edit.erase_if_dead(*chain)


def _is_tail(node: Node, producer: Node) -> bool:
    """An activation or per-tensor quantize applied to ``producer`` alone, rank-agnostic."""
    if node.op != "call_function" or not node.args or node.args[0] is not producer:
        return False
    if any(isinstance(a, Node) for a in node.args[1:]) or any(isinstance(v, Node) for v in node.kwargs.values()):
        return False
    return ops.is_fusable_activation(node.target) or ops.is_quantize_per_tensor(node.target)
