"""Forms of the Arm backend's transposes and reshapes that Vela 5.1.0 runs best, written just
before the backend turns shape arguments into TOSA constants (``InsertConstShapesPass``),
after its own canonicalisation of view/permute chains, which would undo them (each form
measured on probe graphs, ``vela_probe``):

* ``permute(x, p) -> view(permute(view(x, merged), q), shape)`` for a permute of rank above 4
  whose lowest rank (size-1 dims dropped, dims that stay adjacent merged) is 4 or less: Vela
  splits a rank-5 TRANSPOSE into up to 13 transposes (an attention block's head split of a
  (1, 8, 3, 4, 8) tensor: 27,516 U85 cycles; as (8, 12, 8): 2,512). Permutes of rank 4 or
  less are left as they are: U85 writes a 4-D transpose with the op before it at no cost, and
  a reshape between them prevents that;
* ``cat([view(x_i, v_i)], d) -> view(cat([x_i], a), v)`` when every input of a concatenation
  is a reshape that keeps the blocks along ``d``: Vela copies each input it reads through a
  reshape (a MemoryCopy per input) and writes the producers of a plain one into place;
* ``sum(sum(x, [a], keepdim), [a + 1], keepdim) -> sum(view(x, merged), [a + 1], keepdim)`` on
  integer data (the backend's decomposition of a mean over H and W, one REDUCE_SUM per dim):
  Vela 5.1.0 runs a REDUCE_SUM over H of an NHWC tensor through transposes of its int32 data,
  and one over the merged H*W without them (a global average pool of a (1, 14, 14, 232)
  tensor: U85 489,513 -> 54,060 cycles, U55 115,602 -> 89,386). Integer sums are exact in any
  order, so the result is the same.

Otherwise only reshapes are added, moved or removed: the graph computes the same values bit
for bit.
"""
from __future__ import annotations

import torch
from torch.fx import GraphModule, Node

from ..ir.access import copy_provenance, fake_value
from ..ir.perm import Perm, reduced_permute
from .arm_plan import stored_as_int48

#: the highest rank of a TRANSPOSE Vela 5.1.0 runs as one op
VELA_TRANSPOSE_RANK = 4


def _edge_ops():
    from executorch.exir.dialects._ops import ops as exir_ops

    aten = exir_ops.edge.aten
    return aten.permute_copy.default, aten.view_copy.default, aten.cat.default


def _sum_op():
    from executorch.exir.dialects._ops import ops as exir_ops

    return exir_ops.edge.aten.sum.dim_IntList


def _call(gm: GraphModule, before: Node, op, base: Node, arg, value, source: Node) -> Node:
    """A new ``op(base, arg)`` just before ``before``, with ``source``'s provenance."""
    with gm.graph.inserting_before(before):
        node = gm.graph.call_function(op, (base, arg))
    node.meta["val"] = value
    copy_provenance(source, node)
    return node


def lower_transpose_rank(gm: GraphModule) -> int:
    """Write each permute of rank above ``VELA_TRANSPOSE_RANK`` at its lowest rank when that
    is no more; returns how many were rewritten."""
    permute_op, view_op, _ = _edge_ops()
    count = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target != permute_op or stored_as_int48(node):
            continue
        x = node.args[0]
        shape = tuple(int(s) for s in fake_value(x).shape)
        perm = Perm(tuple(d % len(shape) for d in node.args[1]))
        merged, low = reduced_permute(shape, perm)
        if perm.rank <= VELA_TRANSPOSE_RANK or len(merged) > VELA_TRANSPOSE_RANK:
            continue
        flat = _call(gm, node, view_op, x, list(merged), fake_value(x).reshape(merged), node)
        moved = _call(gm, node, permute_op, flat, list(low.dims), fake_value(flat).permute(low.dims).contiguous(),
                      node)
        out = _call(gm, node, view_op, moved, list(perm.apply(shape)), fake_value(node), node)
        node.replace_all_uses_with(out)
        gm.graph.erase_node(node)
        count += 1
    return count


def _concat_axis(sources: list[tuple[int, ...]], views: list[tuple[int, ...]], axis: int) -> int | None:
    """An axis ``a`` with ``cat(x_i, a).reshape(v) == cat(x_i.reshape(v_i), axis)`` (``x_i`` of
    shape ``sources[i]``): every reshape keeps the elements before, along and after the axis
    in the same blocks, and the sources agree off the axis."""
    def blocks(shape, at):
        before = after = 1
        for d, size in enumerate(shape):
            if d < at:
                before *= size
            elif d > at:
                after *= size
        return before, shape[at], after

    rank = len(sources[0])
    if any(len(t) != rank for t in sources):
        return None
    for a in range(rank):
        if len({t[:a] + t[a + 1:] for t in sources}) == 1 and \
                all(blocks(t, a) == blocks(v, axis) for t, v in zip(sources, views)):
            return a
    return None


def concatenate_before_reshapes(gm: GraphModule) -> int:
    """Concatenate the reshapes' inputs and reshape once, where every input of a
    concatenation is a reshape that allows it; returns how many concatenations moved."""
    import torch

    _, view_op, cat_op = _edge_ops()
    count = 0
    for cat in list(gm.graph.nodes):
        if cat.op != "call_function" or cat.target != cat_op:
            continue
        inputs = list(cat.args[0])
        if len(inputs) < 2 or not all(isinstance(i, Node) and i.target == view_op for i in inputs):
            continue
        rank = len(fake_value(cat).shape)
        axis = (cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)) % rank
        sources = [i.args[0] for i in inputs]
        a = _concat_axis([tuple(fake_value(x).shape) for x in sources], [tuple(fake_value(i).shape) for i in inputs],
                         axis)
        if a is None:
            continue
        shape = list(fake_value(cat).shape)
        cat.args = (sources, a)
        cat.kwargs = {}
        cat.meta["val"] = torch.cat([fake_value(x) for x in sources], a)
        view = _call(gm, cat.next, view_op, cat, shape, fake_value(cat).reshape(shape), cat)
        cat.replace_all_uses_with(view, delete_user_cb=lambda user: user is not view)
        for old in inputs:
            if not old.users:
                gm.graph.erase_node(old)
        count += 1
    return count


def _one_dim_sum(node, sum_op) -> int | None:
    """The dim of a keepdim sum over one dim of integer data, else None."""
    if not isinstance(node, Node) or node.op != "call_function" or node.target != sum_op:
        return None
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    value = fake_value(node.args[0])
    if not keep or node.kwargs.get("dtype") not in (None, value.dtype) or not isinstance(dims, (list, tuple)) \
            or len(dims) != 1:
        return None
    if value.dtype not in (torch.int32, torch.int64) or stored_as_int48(node) or stored_as_int48(node.args[0]):
        return None
    return dims[0] % value.dim()


def merge_adjacent_sums(gm: GraphModule) -> int:
    """One sum over a merged dim where keepdim sums over two adjacent dims follow each other
    (the first read by the second alone); returns how many pairs merged."""
    sum_op = _sum_op()
    _, view_op, _ = _edge_ops()
    count = 0
    for second in list(gm.graph.nodes):
        b = _one_dim_sum(second, sum_op)
        first = second.args[0] if b is not None else None
        a = _one_dim_sum(first, sum_op)
        if a is None or abs(a - b) != 1 or len(first.users) != 1:
            continue
        x, (lo, hi) = first.args[0], sorted((a, b))
        shape = list(fake_value(x).shape)
        merged = shape[:lo] + [1] + [shape[lo] * shape[hi]] + shape[hi + 1:]
        view = _call(gm, second, view_op, x, merged, fake_value(x).reshape(merged), first)
        second.args = (view, [hi], True)
        second.meta["val"] = fake_value(view).sum([hi], keepdim=True)
        gm.graph.erase_node(first)
        count += 1
    return count


def write_vela_forms(gm: GraphModule) -> dict[str, int]:
    """The three rewrites; how many times each applied."""
    done = {"lower_transpose_rank": lower_transpose_rank(gm),
            "concatenate_before_reshapes": concatenate_before_reshapes(gm),
            "merge_adjacent_sums": merge_adjacent_sums(gm)}
    if any(done.values()):
        gm.graph.lint()
        gm.recompile()
    return done


def make_pass(records: list[dict] | None = None):
    """A fresh instance of the pass; it adds how often each rewrite applied (``vela_forms``)
    to the last record in ``records`` (the partition the layout pass planned last)."""
    from torch.fx.passes.infra.pass_base import PassBase, PassResult

    class WriteVelaForms(PassBase):
        """Write transposes, reshapes and sums in the forms Vela runs best."""

        def __init__(self) -> None:
            super().__init__()
            self.__name__ = type(self).__name__  # how the pass manager names passes

        def call(self, graph_module):
            done = write_vela_forms(graph_module)
            if records:
                records[-1]["vela_forms"] = done
            return PassResult(graph_module, any(done.values()))

    return WriteVelaForms()
