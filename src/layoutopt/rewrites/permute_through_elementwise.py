"""permute(f(permute(x, p)), q) -> permute(f(x), p.then(q)) for a chain ``f`` of elementwise ops.

An elementwise op computes each element from the element at the same index alone, so it
commutes with any permutation of the indices: ``f(permute(x, p)) == permute(f(x), p)``.
Moving the inner permute past the chain lets it meet the outer one; ``compose_permutes`` then
makes the two one permute, or none when they are inverse (a round trip NCHW -> NHWC -> NCHW
around an activation, a requantize or a q/dq pair disappears). The values are unchanged,
bit for bit.

Elementwise here means unary in its tensor operand (other arguments scalars): activations,
arithmetic with a scalar, per-tensor quantize and dequantize. An op with a second tensor
operand (a bias, a per-channel weight) is not moved past, nor a copy (``clone``,
``contiguous``): a copy between permutes is a layout conversion, and moving the permutes
would undo it.

Declined: tensors in the chain that another op also reads (moving the permute would change
what that reader sees).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch.fx import Node

from ..ir import ops
from ..ir.access import as_perm
from ..ir.perm import Perm
from .base import GraphEdit, GraphView, Match, Reject, Rule

aten = ops.aten
_MAX_CHAIN = 16


def _elementwise(node) -> bool:
    """Unary elementwise, scalars besides; not a copy, whose point is the layout it makes."""
    return (isinstance(node, Node) and node.op == "call_function" and ops.is_elementwise(node.target)
            and ops.family(node.target) is not ops.Family.COPY and "memory_format" not in node.kwargs
            and not any(isinstance(a, Node) for a in node.args[1:])
            and not any(isinstance(v, Node) for v in node.kwargs.values()))


@dataclass(frozen=True)
class ElementwiseChainMatch(Match):
    inner: Node  # permute(x, p)
    x: Node
    chain: tuple[Node, ...]  # the elementwise ops, outer to inner
    perm: Perm  # p.then(q)


class PermuteThroughElementwise(Rule):
    name = "permute_through_elementwise"
    anchors = ops.PERMUTE_PACKETS

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        q = as_perm(node)
        if q is None:
            return None
        chain: list[Node] = []  # outer to inner
        cur = node.args[0]
        while _elementwise(cur) and len(chain) < _MAX_CHAIN:
            chain.append(cur)
            cur = cur.args[0]
        p = as_perm(cur)
        if not chain or p is None:
            return None
        if any(len(n.users) != 1 for n in chain + [cur]):
            return self.reject(node, "a tensor in the elementwise chain is also read by another op")
        return ElementwiseChainMatch(node, cur, cur.args[0], tuple(chain), p.then(q))

    def rewrite(self, edit: GraphEdit, m: ElementwiseChainMatch) -> None:
        chain = m.chain
        edit.replace_input(chain[-1], m.inner, m.x)
        for step in reversed(chain):  # inner to outer: shapes follow the unpermuted input
            edit.refresh(step)
        edit.erase_if_dead(m.inner)
        edit.retarget(m.node, aten.permute.default, args=(chain[0], list(m.perm.dims)))
        edit.refresh(m.node)
