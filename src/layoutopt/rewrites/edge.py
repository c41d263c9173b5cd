"""Rules speak ATen; an ExecuTorch edge program is lifted into that vocabulary before the
rules run and spelled back in the edge dialect after them.

Views need no lifting: ``ops.canonical`` names ``permute_copy`` ``permute``, and so on. What
``to_edge`` decomposes, ``lift`` names again, so that rules anchored at ``linear`` see it:

    addmm(b, x, permute_copy(W, [1, 0]))  ==  linear(x, W, b)      x 2-D, b of shape [out]
    mm(x, permute_copy(W, [1, 0]))         ==  linear(x, W)         x 2-D
    view_copy(bmm(view_copy(expand_copy(x)), view_copy(expand_copy(permute_copy(W, [1, 0])))))
                                           ==  linear(x, W)         x of rank >= 3
    add(<that>, b)                         ==  linear(x, W, b)      b of shape [out]

(the last is ``matmul``'s batched form: the views only merge ``x``'s leading dims and the
expands only broadcast, which ``lift`` checks from the shapes).

``spell`` gives every ATen op a rule emitted the core-ATen edge form ``to_edge`` would have:
views become their ``*_copy`` ops, ``conv2d`` becomes ``convolution``, ``linear`` becomes
``permute_copy`` + ``addmm``/``mm`` (between ``view_copy``s for inputs of rank >= 3), any
other ATen op its edge op. A lifted linear no rule touched is put back as it was.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.fx import Node

from ..errors import InternalError
from ..ir import ops
from ..ir.access import arg_by_name, as_perm, fake_value
from .base import GraphEdit

aten = ops.aten


@dataclass
class Lifted:
    """A ``linear`` standing for the nodes it replaced, as long as its args are still ``args``:
    ``recipe`` lists them in graph order as ``(node, target, args, kwargs)``."""

    args: tuple
    recipe: list[tuple[Node, Any, tuple, dict]]


def edge_op(overload: Any) -> Any:
    """The edge-dialect op wrapping an ATen ``overload``."""
    from executorch.exir.dialects._ops import ops as exir_ops

    namespace = getattr(exir_ops.edge, overload.namespace)
    return getattr(getattr(namespace, overload._schema.name.split("::")[-1]), overload._overloadname)


def _weight_of(mat: Any) -> Node | None:
    """``W`` when ``mat`` is ``permute_copy(W, [1, 0])`` of a 2-D ``W``."""
    perm = as_perm(mat)
    if perm is None or perm.dims != (1, 0):
        return None
    return mat.args[0]


def _strip(node: Any, packet: Any) -> Any:
    """The input of ``node`` when it is a ``packet`` op, else ``node``."""
    return node.args[0] if ops.packet_of(node) is packet else node


def _batched_linear(out: Node) -> tuple[Node, Node, list[Node]] | None:
    """``(x, W, covered nodes)`` when ``out`` is the view closing ``matmul(x, W.T)``'s batched form."""
    bmm = out.args[0] if ops.packet_of(out) is aten.view else None
    if ops.packet_of(bmm) is not aten.bmm or len(bmm.users) != 1:
        return None
    left, right = bmm.args
    x = _strip(_strip(left, aten.view), aten.expand)
    w = _weight_of(_strip(_strip(right, aten.view), aten.expand))
    xv, wv, ov = fake_value(x) if isinstance(x, Node) else None, fake_value(w) if w is not None else None, \
        fake_value(out)
    if xv is None or wv is None or xv.dim() < 3 or wv.dim() != 2:
        return None
    batch, (m, k), n = math.prod(xv.shape[:-2]), xv.shape[-2:], wv.shape[0]
    if tuple(fake_value(left).shape) != (batch, m, k) or tuple(fake_value(right).shape) != (batch, k, n) \
            or tuple(ov.shape) != (*xv.shape[:-1], n) or wv.shape[1] != k:
        return None
    for side, source in ((left, x), (right, None)):  # expands only broadcast: x's own shape, W.T's last two
        expand = _strip(side, aten.view)
        if ops.packet_of(expand) is aten.expand:
            shape = tuple(fake_value(expand).shape)
            if (source is not None and shape != tuple(xv.shape)) or (source is None and shape[-2:] != (k, n)):
                return None
    covered = [out, bmm]
    for side in (left, right):
        while isinstance(side, Node) and side is not x and side is not w:
            if len(side.users) != 1:
                return None
            covered.append(side)
            side = side.args[0]
    return x, w, covered


def _linear_form(node: Node) -> tuple[tuple, list[Node]] | None:
    """``((x, W, b), covered nodes)`` when ``node`` computes ``linear(x, W, b)`` in edge spelling."""
    packet = ops.packet_of(node)
    if packet in (aten.addmm, aten.mm) and not node.kwargs and len(node.args) == (3 if packet is aten.addmm else 2):
        bias, x, mat = node.args if packet is aten.addmm else (None, *node.args)
        w = _weight_of(mat)
        wv = fake_value(w) if w is not None else None
        if wv is None or wv.dim() != 2 or fake_value(x).dim() != 2:
            return None
        if bias is not None and (not isinstance(bias, Node) or tuple(fake_value(bias).shape) != (wv.shape[0],)):
            return None
        covered = [node] + ([mat] if len(mat.users) == 1 else [])
        return (x, w, bias), covered
    if packet is aten.view:
        found = _batched_linear(node)
        if found is None or (len(node.users) == 1 and _linear_form(next(iter(node.users))) is not None):
            return None  # not a linear, or one whose bias add is lifted with it
        x, w, covered = found
        return (x, w, None), covered
    if packet is aten.add and len(node.args) == 2 and not node.kwargs:  # the batched form's bias
        out, bias = node.args
        found = _batched_linear(out) if isinstance(out, Node) and len(out.users) == 1 else None
        if found is not None and isinstance(bias, Node) \
                and tuple(fake_value(bias).shape) == (fake_value(found[1]).shape[0],):
            x, w, covered = found
            return (x, w, bias), [node, *covered]
    return None


def lift(edit: GraphEdit) -> dict[Node, Lifted]:
    """Name every decomposed linear ``linear`` again; what to put back if no rule touches it."""
    lifted: dict[Node, Lifted] = {}
    for node in list(edit.graph.nodes):
        if getattr(node, "_erased", False) or node.op != "call_function":
            continue
        form = _linear_form(node)
        if form is None:
            continue
        args, covered = form
        covered_set = set(covered)
        ordered = [n for n in edit.graph.nodes if n in covered_set]
        recipe = [(n, n.target, n.args, dict(n.kwargs)) for n in ordered]
        linear = edit.call(aten.linear.default, args if args[2] is not None else args[:2], like=node, before=node)
        edit.replace(node, linear)
        edit.erase_if_dead(*reversed(ordered))
        lifted[linear] = Lifted(tuple(linear.args), recipe)
    return lifted


def spell(edit: GraphEdit, lifted: dict[Node, Lifted]) -> None:
    """Every ATen op left in the graph in its edge form (lifted linears restored if untouched)."""
    for node in list(edit.graph.nodes):
        if node.op != "call_function" or not _is_aten(node.target):
            continue
        back = lifted.get(node)
        if back is not None and tuple(node.args) == back.args:
            new = _restore(edit, node, back)
        else:
            new = _spelled(edit, node)
        if new is not node:
            edit.replace(node, new)


def _is_aten(target: Any) -> bool:
    """A plain ATen (or other torch-library) op, not yet an edge op."""
    return isinstance(target, torch._ops.OpOverload) and ops.aten_overload(target) is target


def _restore(edit: GraphEdit, node: Node, back: Lifted) -> Node:
    """The nodes ``node`` was lifted from, rebuilt before it; the last stands for it."""
    env: dict[Node, Node] = {}
    value = node
    for old, target, args, kwargs in back.recipe:
        mapped = tuple(env.get(a, a) if isinstance(a, Node) else a for a in args)
        value = edit.call(target, mapped, kwargs, like=node, before=node)
        env[old] = value
    return value


def _pair(value: Any) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [value, value]


def _spelled(edit: GraphEdit, node: Node) -> Node:
    """The edge form of one ATen ``node`` (``node`` itself, retargeted, when it has one op)."""
    overload = ops.canonical(node.target)
    packet = overload.overloadpacket
    x = node.args[0] if node.args else None

    def emit(target: Any, args: tuple, kwargs: dict | None = None) -> Node:
        return edit.call(edge_op(target), args, kwargs, like=node, before=node)

    if packet in ops.PERMUTE_PACKETS:
        return emit(aten.permute_copy.default, (x, list(as_perm(node).dims)))
    if packet in ops.RESHAPE_PACKETS:
        return emit(aten.view_copy.default, (x, list(fake_value(node).shape)))
    if packet is aten.unsqueeze:
        return emit(aten.unsqueeze_copy.default, (x, node.args[1]))
    if packet is aten.squeeze and len(node.args) > 1:
        dims = node.args[1]
        return emit(aten.squeeze_copy.dims, (x, list(dims) if isinstance(dims, (list, tuple)) else [dims]))
    if packet is aten.conv2d:
        padding = arg_by_name(node, "padding")
        if isinstance(padding, str):
            raise InternalError(f"'{node.name}': conv2d with padding='{padding}' has no edge spelling")
        return emit(aten.convolution.default, (
            x, arg_by_name(node, "weight"), arg_by_name(node, "bias"), _pair(arg_by_name(node, "stride")),
            _pair(padding), _pair(arg_by_name(node, "dilation")), False, [0, 0], arg_by_name(node, "groups")))
    if packet is aten.linear:
        return _spelled_linear(emit, node)
    edit.retarget(node, edge_op(overload))
    return node


def _spelled_linear(emit, node: Node) -> Node:
    x, weight, bias = node.args[0], node.args[1], node.args[2] if len(node.args) > 2 else None
    xv, out = fake_value(x), fake_value(node)
    flat = x if xv.dim() == 2 else emit(aten.view_copy.default, (x, [math.prod(xv.shape[:-1]), xv.shape[-1]]))
    mat = emit(aten.permute_copy.default, (weight, [1, 0]))
    y = emit(aten.addmm.default, (bias, flat, mat)) if bias is not None else emit(aten.mm.default, (flat, mat))
    return y if xv.dim() == 2 else emit(aten.view_copy.default, (y, list(out.shape)))
