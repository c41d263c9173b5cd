"""Channel shuffles carried as the order a tensor's channels are stored in, inside ExecuTorch's
Arm backend graph (``ShuffleForm.CHANNEL_ORDER``).

TOSA has no strides, and nothing in the graph before serialization fixes the order in which
a tensor's channels are stored: ``x`` may be stored as ``x.index_select(d, s)`` (stored channel
``i`` holds channel ``s[i]``) wherever every op that reads it is told. The laws:

* a gather of channels (permute and view copies that replay, on indices, to
  ``y = x.index_select(d, p)``: a channel shuffle in any of its forms) reads ``x`` stored in
  order ``s`` as ``y`` stored in order ``p^-1[s]``: the same memory, no op;
* a slice of channels is a set of runs of what it slices, and a concatenation may store its
  inputs' channels in any order: one copy per run (Vela: a MemoryCopy each, the SLICE free);
* an op that computes channel ``c`` from channel ``c`` alone runs on the stored order, with its
  per-channel constants permuted alike: RESCALE scales, DEPTHWISE_CONV2D weights and bias
  (channel multiplier 1); pools, tables, per-tensor rescales, reductions over other axes and
  elementwise ops with operands broadcast along the channels have none;
* a CONV2D reads any stored order: ``conv(x[.., s], W[.., s]) == conv(x, W)``, its weight's
  input axis permuted (the same int32 products, summed in another order);
* a CONV2D whose output only reaches a concatenation (through the ops above) writes any stored
  order: its weight's output axis, its bias and the RESCALE scales after it permuted.

So a shuffle whose channels end in convolutions disappears, with the transposes it lowers to.
Where the stored order is the pass's to choose (a concatenation, a convolution that writes into
one) channels are ordered by where they go next (``_key``): the channels a later op reads as a
slice stored next to each other, so that slice stays one run (a free read), and channels passed
on together kept together. Only data moves and integer constants are re-laid out: the graph
computes the same values bit for bit. The price: channels passed on through several units end
up in more and narrower runs (ShuffleNetV2 x1.0 at 224 px: 53 copy runs where the stock
lowering copies 13 passed-on halves; Vela 5.1.0, U55: 427K against 364K cycles, while 298K
cycles of transposes go).

A shuffle is declined, and left as it stands, when anything downstream of it through those ops
reads the shuffled channels otherwise: the graph output, an op outside this table, a reshape that
splits the channel axis, a concatenation along another axis, a convolution with a weight that
is not a constant.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import torch
from torch.fx import GraphModule, Node

from ..ir import ops
from ..ir.access import copy_provenance, fake_value, is_tensor

aten = ops.aten
#: longest permute/view chain examined for a gather of channels (a shuffle's is five long)
MAX_CHAIN = 8

Source = tuple[Node, int]  # a stored channel: the node that stores it and its stored index


@dataclass(frozen=True)
class Gather:
    """``end == start.index_select(axis, pi)``, computed by ``chain`` (permute and view copies)."""

    start: Node
    end: Node
    chain: tuple[Node, ...]
    axis: int
    pi: tuple[int, ...]

    @property
    def inverse(self) -> tuple[int, ...]:
        out = [0] * len(self.pi)
        for i, p in enumerate(self.pi):
            out[p] = i
        return tuple(out)


def _shape(node: Node) -> tuple[int, ...]:
    return tuple(int(s) for s in fake_value(node).shape)


_REORDERS = ops.VIEW_PACKETS | {aten.permute, aten.transpose}


def _is_reorder(node: Node) -> bool:
    return node.op == "call_function" and ops.packet_of(node) in _REORDERS


def _replay(chain: list[Node], value: torch.Tensor) -> torch.Tensor:
    for node in chain:
        packet = ops.packet_of(node)
        if packet is aten.permute:
            value = value.permute(list(node.args[1]))
        elif packet is aten.transpose:
            value = value.transpose(node.args[1], node.args[2])
        else:
            value = value.reshape(list(node.args[1]))
    return value


def gather_of(chain: list[Node], shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]] | None:
    """``(axis, pi)`` when ``chain`` run on ``x`` of ``shape`` gives ``x.index_select(axis, pi)``
    with ``pi`` not the identity, else None (proved on the index tensor)."""
    index = torch.arange(math.prod(shape)).reshape(shape)
    out = _replay(chain, index)
    if tuple(out.shape) != tuple(shape):
        return None
    for axis, size in enumerate(shape):
        if size < 2:
            continue
        inner = math.prod(shape[axis + 1:])
        pi = tuple(int(out.select(axis, i).reshape(-1)[0]) // inner % size for i in range(size))
        if pi != tuple(range(size)) and sorted(pi) == list(range(size)) \
                and torch.equal(out, index.index_select(axis, torch.tensor(pi))):
            return axis, pi
    return None


def find_gathers(gm: GraphModule) -> list[Gather]:
    """Every maximal chain of permute/view copies that gathers one axis of its input."""
    found: list[Gather] = []
    for end in gm.graph.nodes:
        if not _is_reorder(end) or not is_tensor(fake_value(end)):
            continue
        chain, cur = [end], end.args[0]
        while isinstance(cur, Node) and _is_reorder(cur) and len(cur.users) == 1 and len(chain) < MAX_CHAIN:
            chain.insert(0, cur)
            cur = cur.args[0]
        for i in range(len(chain)):  # the longest chain that proves a gather
            start = chain[i].args[0]
            if isinstance(start, Node) and is_tensor(fake_value(start)) and _shape(start) == _shape(end):
                proved = gather_of(chain[i:], _shape(start))
                if proved is not None:
                    found.append(Gather(start, end, tuple(chain[i:]), *proved))
                    break
    inner = {n for g in found for n in g.chain[:-1]}
    return [g for g in found if g.end not in inner]


def _view_axis(in_shape: tuple[int, ...], axis: int, out_shape: tuple[int, ...]) -> int | None:
    """The dim of a reshape's output that is its input's ``axis`` whole (the same elements
    before it), or None where the reshape splits or merges it."""
    before = math.prod(in_shape[:axis])
    for j, size in enumerate(out_shape):
        if size == in_shape[axis] and math.prod(out_shape[:j]) == before:
            return j
    return None


class Read(enum.Enum):
    """How an op reads a value whose channels are stored in another order."""

    GATHER = "gather"  # the head of a gather: its output is the same memory, renamed
    SLICE = "slice"  # a slice of channels: runs of the same memory
    CAT = "cat"  # a concatenation along the channels: stores them in an order of its choosing
    CARRY = "carry"  # channel c from channel c: runs on the stored order, constants permuted
    ABSORB = "absorb"  # a CONV2D: its weight's input axis takes the order


@dataclass(frozen=True)
class Role:
    kind: Read
    axis: int | None = None  # the channel axis of the reader's output (SLICE, CAT, CARRY)
    gather: Gather | None = None


@dataclass
class ChannelOrderRecord:
    """What the pass did to one graph."""

    carried: list[str] = field(default_factory=list)  # gathers removed, by their output's name
    declined: dict[str, str] = field(default_factory=dict)  # gather output -> why it stays
    copy_runs: int = 0  # runs copied into concatenations the pass built

    def to_dict(self) -> dict:
        return {"carried_gathers": len(self.carried), "declined_gathers": dict(self.declined),
                "copy_runs": self.copy_runs}


class _Carrier:
    def __init__(self, gm: GraphModule, ep) -> None:
        from executorch.exir.dialects._ops import ops as exir_ops

        self.gm, self.ep = gm, ep
        self.slice_op = exir_ops.edge.aten.slice_copy.Tensor
        self.cat_op = exir_ops.edge.aten.cat.default
        self.index = {n: i for i, n in enumerate(gm.graph.nodes)}
        self.heads: dict[Node, Gather] = {}
        self.roles: dict[tuple[Node, Node], Role] = {}
        self.axis: dict[Node, int] = {}  # region value -> its channel axis
        self.src: dict[Node, list[Source]] = {}  # region value -> where each channel is stored
        self.materialized: dict[Node, tuple[Node, list[int]]] = {}
        self.keys: dict[tuple[Node, int], tuple] = {}
        self.constants = 0  # constants added
        self.built = 0  # nodes added
        self.record = ChannelOrderRecord()

    # -- analysis: which values carry a stored order, and who reads them how -------------------
    def _constant(self, node) -> bool:
        from executorch.backends.transforms.utils import is_param_node

        return isinstance(node, Node) and node.op == "placeholder" and is_param_node(self.ep, node)

    def _role(self, user: Node, value: Node, axis: int) -> Role | str:
        """How ``user`` reads ``value`` stored in another order along ``axis``, or why it cannot."""
        if user.op != "call_function":
            return "read by the graph output"
        if _int48(user) or _int48(value):
            return "stored as int48"
        gather = self.heads.get(user)
        if gather is not None and gather.start is value:
            return Role(Read.GATHER, gather.axis, gather) if gather.axis == axis else "gathered along another axis"
        rank = len(_shape(value))
        last = axis == rank - 1
        tosa, packet = ops.tosa_op(user.target), ops.packet_of(user)
        if tosa in (ops.TOSA_CHANNEL_SUM, ops.TOSA_DEPTHWISE):
            if user.args[0] is not value or value in user.args[1:3] or not last:
                return f"read by {tosa} other than as its NHWC input"
            if not self._constant(user.args[1]) or not self._constant(user.args[2]):
                return f"read by {tosa} with a weight or bias that is not a constant"
            if tosa == ops.TOSA_CHANNEL_SUM:
                return Role(Read.ABSORB)
            if _shape(user.args[1])[3] != 1:
                return f"read by a channel-multiplying {tosa}"
            return Role(Read.CARRY, axis)
        if tosa in ops.TOSA_CHANNELWISE:
            return Role(Read.CARRY, axis) if last or _along_any_axis(user) else f"read by {tosa} along another axis"
        if tosa is not None:
            return f"read by {tosa}"
        out_shape = _shape(user)
        if packet is aten.permute:
            dims = [d % rank for d in user.args[1]]
            return Role(Read.CARRY, dims.index(axis))
        if packet in ops.VIEW_PACKETS:
            moved = _view_axis(_shape(value), axis, out_shape)
            return Role(Read.CARRY, moved) if moved is not None else "reshaped across the channel axis"
        if packet is aten.slice:
            dim = (user.args[1] if len(user.args) > 1 else 0) % rank
            step = user.args[4] if len(user.args) > 4 else 1
            if dim != axis:
                return Role(Read.CARRY, axis)
            return Role(Read.SLICE, axis) if step == 1 else "sliced with a step"
        if packet in ops.CONCAT_PACKETS:
            if _cat_dim(user) != axis:
                return "concatenated along another axis"
            return Role(Read.CAT, axis) if list(user.args[0]).count(value) == 1 else "concatenated with itself"
        if packet in ops.REDUCTION_PACKETS:
            dims = user.args[1] if len(user.args) > 1 else None
            dims = [d % rank for d in ([dims] if isinstance(dims, int) else (dims or []))]
            if not dims or axis in dims:
                return "reduced over the channel axis"
            keep = user.args[2] if len(user.args) > 2 else user.kwargs.get("keepdim", False)
            return Role(Read.CARRY, axis if keep else axis - sum(d < axis for d in dims))
        if ops.is_elementwise(user.target):
            out_axis = axis + len(out_shape) - rank
            for other in user.all_input_nodes:
                if other is value or not is_tensor(fake_value(other)):
                    continue
                shape = _shape(other)
                at = out_axis - (len(out_shape) - len(shape))
                if at >= 0 and shape[at] != 1:
                    return f"read by {ops.op_name(user.target)} with another operand that has channels"
            return Role(Read.CARRY, out_axis)
        return f"read by {ops.op_name(user.target)}"

    def _closure(self, gather: Gather) -> tuple[dict[Node, int], str | None]:
        """The values whose stored order carrying ``gather`` changes, with their channel axes,
        or why one of their readers cannot read another order."""
        region: dict[Node, int] = {}
        pending = [(gather.end, gather.axis)]
        if ops.packet_of(gather.start) in ops.CONCAT_PACKETS and _cat_dim(gather.start) == gather.axis:
            pending.append((gather.start, gather.axis))  # a concatenation stores in the order it likes
        while pending:
            value, axis = pending.pop()
            if value in region:
                if region[value] != axis:
                    return region, f"{value.name} is reached with two channel axes"
                continue
            region[value] = axis
            for user in value.users:
                role = self._role(user, value, axis)
                if isinstance(role, str):
                    return region, f"{value.name} is {role}"
                self.roles[(user, value)] = role
                if role.kind is Read.GATHER:
                    pending.append((role.gather.end, role.gather.axis))
                elif role.kind is not Read.ABSORB:
                    pending.append((user, role.axis))
        return region, None

    def analyse(self, gathers: list[Gather]) -> list[Gather]:
        """The gathers whose every reader downstream reads another stored order. A gather
        downstream of an accepted one is accepted too (its closure is part of the other's);
        one downstream of a declined gather may be accepted alone, reading the declined
        gather's output as stored."""
        self.heads = {g.chain[0]: g for g in gathers}
        accepted = []
        for gather in gathers:
            region, reason = self._closure(gather)
            if reason is not None:
                self.record.declined[gather.end.name] = reason
                continue
            accepted.append(gather)
            self.axis.update(region)
        self.record.carried = [g.end.name for g in accepted]
        return accepted

    # -- where each channel goes next ------------------------------------------------------
    def _key(self, value: Node, j: int) -> tuple:
        """Where channel ``j`` of ``value`` goes next: ``(0, key)`` when a concatenation copies it
        on (``key`` there), ``(1, v)`` when value ``v`` holding it is read by an op (stored
        whole, one run where it can be), ``()`` when nothing reads it."""
        memo = self.keys.get((value, j))
        if memo is not None:
            return memo
        found = []
        for user in value.users:
            role = self.roles.get((user, value))
            if role is None:
                continue
            if role.kind is Read.GATHER:
                found.append(self._key(role.gather.end, role.gather.inverse[j]))
            elif role.kind is Read.SLICE:
                start, end = _bounds(user, _shape(value)[self.axis[value]])
                if start <= j < end:
                    found.append(self._key(user, j - start))
            elif role.kind is Read.CAT:
                found.append((0, self._key(user, _offset(user, value) + j)))
            else:
                found.append((1, value.name))
        key = found[0] if found and all(k == found[0] for k in found) else ()
        self.keys[(value, j)] = key
        return key

    # -- writing the stored orders ----------------------------------------------------------
    def _node(self, op, args: tuple, like: Node, before: Node) -> Node:
        with self.gm.graph.inserting_before(before):
            node = self.gm.graph.call_function(op, args)
        for key, value in like.meta.items():
            if key != "val":
                node.meta[key] = dict(value) if isinstance(value, dict) else value
        copy_provenance(like, node)
        fake = [fake_value(a) for a in args[0]] if isinstance(args[0], (list, tuple)) else fake_value(args[0])
        node.meta["val"] = op(fake, *args[1:])
        # between the node before ``before`` and ``before``, after the nodes built there earlier
        self.built += 1
        self.index[node] = self.index[before] - 0.5 + self.built * 1e-6
        return node

    def _build(self, sources: list[Source], axis: int, like: Node, before: Node) -> Node:
        """A tensor whose channel ``i`` (along ``axis``) is ``sources[i]``: the source itself, a
        slice of it, or a concatenation of one slice per run."""
        runs: list[list] = []
        for node, i in sources:
            if runs and runs[-1][0] is node and runs[-1][2] == i:
                runs[-1][2] += 1
            else:
                runs.append([node, i, i + 1])
        pieces = []
        for node, start, end in runs:
            whole = start == 0 and end == _shape(node)[axis]
            pieces.append(node if whole else self._node(self.slice_op, (node, axis, start, end), like, before))
        if len(pieces) == 1:
            return pieces[0]
        self.record.copy_runs += len(pieces)
        return self._node(self.cat_op, (pieces, axis), like, before)

    def _materialize(self, value: Node, before: Node) -> tuple[Node, list[int]]:
        """``value``'s channels stored in one tensor, and which channel each stored index holds."""
        if value in self.materialized:
            return self.materialized[value]
        sources = self.src[value]
        order = sorted(range(len(sources)), key=lambda j: (self.index[sources[j][0]], sources[j][1]))
        node = self._build([sources[j] for j in order], self.axis[value], value, before)
        self.materialized[value] = (node, order)
        return node, order

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

    def _permute_channels(self, node: Node, order: list[int], output: bool) -> None:
        """The per-channel constants of ``node`` for channels stored in ``order``; for a CONV2D
        its input channels, or its output channels when ``output``."""
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

    def _producer(self, x: Node, axis: int) -> list[Node] | None:
        """The chain from a CONV2D to ``x`` (conv first) through ops that keep each channel on
        its own, each read by the next alone: ``x``'s stored order is the conv's to choose."""
        chain, cur = [], x
        while isinstance(cur, Node) and cur.op == "call_function" and len(cur.users) == 1 and cur not in self.axis:
            chain.insert(0, cur)
            tosa, packet = ops.tosa_op(cur.target), ops.packet_of(cur)
            if tosa == ops.TOSA_CHANNEL_SUM:
                ok = axis == len(_shape(cur)) - 1 and self._constant(cur.args[1]) and self._constant(cur.args[2])
                return chain if ok and not _int48(cur) else None
            if tosa in ops.TOSA_CHANNELWISE:
                if axis != len(_shape(cur)) - 1 and not _along_any_axis(cur):
                    return None
            elif packet is aten.permute:
                axis = [d % len(cur.args[1]) for d in cur.args[1]][axis]
            elif packet in ops.VIEW_PACKETS:
                axis = _view_axis(_shape(cur), axis, _shape(cur.args[0]))
                if axis is None:
                    return None
            else:
                return None
            cur = cur.args[0]
        return None

    def _arrange(self, cat: Node) -> None:
        """Store ``cat``'s channels in the order ``_key`` asks for: the channels it copies that go
        on to another concatenation first (in the order they are stored now, for long runs), then
        the first produced input (what goes on, then what is read next), the copied channels read
        next, the second produced input (what is read next first), any further produced inputs."""
        axis = self.axis[cat]
        fixed: list[tuple[int, Source]] = []  # channels stored elsewhere: (channel, source)
        blocks: list[tuple[Node, list[Node], list[int]]] = []  # produced inputs: node, producer chain, channels
        offset = 0
        for x in cat.args[0]:
            size = _shape(x)[axis]
            chain = None if x in self.src else self._producer(x, axis)
            if x in self.src:
                fixed += [(offset + i, s) for i, s in enumerate(self.src[x])]
            elif chain is not None:
                blocks.append((x, chain, list(range(offset, offset + size))))
            else:
                fixed += [(offset + i, (x, i)) for i in range(size)]
            offset += size
        key = {j: self._key(cat, j) for j in range(offset)}

        def read_next(j: int) -> bool:
            return bool(key[j]) and key[j][0] == 1

        def stored_at(entry: tuple[int, Source]) -> tuple[int, int]:
            return self.index[entry[1][0]], entry[1][1]

        passed = sorted((e for e in fixed if not read_next(e[0])), key=stored_at)
        read = sorted((e for e in fixed if read_next(e[0])), key=lambda e: (key[e[0]], stored_at(e)))
        orders = [sorted(js, key=lambda j: (key[j], j)) for _, _, js in blocks]
        if orders and passed:
            # the first produced input's passed-on channels start with the kind the copied ones
            # end with: at the next concatenation they are one run
            onward = [j for j in orders[0] if not read_next(j)]
            if onward and key[onward[-1]] == key[passed[-1][0]] != key[onward[0]]:
                orders[0] = onward[::-1] + [j for j in orders[0] if read_next(j)]
        if len(orders) > 1:
            orders[1].reverse()
        layout: list[tuple[int, Source]] = list(passed)
        for n, ((x, chain, js), order) in enumerate(zip(blocks, orders)):
            local = [j - js[0] for j in order]
            for node in chain:
                self._permute_channels(node, local, output=True)
            layout += [(j, (x, i)) for i, j in enumerate(order)]
            if n == 0:
                layout += read
        if not blocks:
            layout += read
        node = self._build([s for _, s in layout], axis, cat, cat)
        logical = [j for j, _ in layout]
        src: list[Source] = [(node, 0)] * offset
        for i, j in enumerate(logical):
            src[j] = (node, i)
        self.src[cat] = src
        self.materialized[cat] = (node, logical)

    def rewrite(self, gathers: list[Gather]) -> None:
        ends = {g.end: g for g in gathers}
        inner = {n for g in gathers for n in g.chain[:-1]}
        erase = set(inner) | set(ends)
        for node in list(self.gm.graph.nodes):
            if node.op != "call_function" or node in inner:
                continue
            if node in ends:
                g = ends[node]
                start = self.src.get(g.start) or [(g.start, i) for i in range(_shape(g.start)[g.axis])]
                self.src[node] = [start[p] for p in g.pi]
                continue
            if node in self.axis and ops.packet_of(node) in ops.CONCAT_PACKETS:
                self._arrange(node)
                erase.add(node)
                continue
            for value in dict.fromkeys(node.all_input_nodes):
                role = self.roles.get((node, value))
                if role is None or value not in self.src:
                    continue
                if role.kind is Read.SLICE:
                    start, end = _bounds(node, _shape(value)[self.axis[value]])
                    self.src[node] = self.src[value][start:end]
                    erase.add(node)
                elif role.kind in (Read.CARRY, Read.ABSORB):
                    stored, order = self._materialize(value, node)
                    node.replace_input_with(value, stored)
                    self._permute_channels(node, order, output=False)
                    if role.kind is Read.CARRY:
                        position = {j: i for i, j in enumerate(order)}
                        self.src[node] = [(node, position[j]) for j in range(len(order))]
                        self.materialized[node] = (node, order)
        for node in reversed(list(self.gm.graph.nodes)):
            if node in erase and not node.users:
                self.gm.graph.erase_node(node)


def _along_any_axis(node: Node) -> bool:
    """Whether a channel-wise TOSA op treats every axis alike: a table, a per-tensor rescale
    (pools and per-channel rescales run along the last axis)."""
    tosa = ops.tosa_op(node.target)
    return tosa == "TABLE" or (tosa == "RESCALE" and len(node.args[2]) <= 1)


def _bounds(node: Node, size: int) -> tuple[int, int]:
    start = node.args[2] if len(node.args) > 2 and node.args[2] is not None else 0
    end = node.args[3] if len(node.args) > 3 and node.args[3] is not None else size
    start, end = (start + size if start < 0 else start), (end + size if end < 0 else end)
    return max(0, min(start, size)), max(0, min(end, size))


def _cat_dim(cat: Node) -> int:
    dim = cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)
    return dim % len(_shape(cat))


def _offset(cat: Node, value: Node) -> int:
    """Where ``value`` starts along the concatenation's dim."""
    offset = 0
    for x in cat.args[0]:
        if x is value:
            return offset
        offset += _shape(x)[_cat_dim(cat)]
    raise ValueError(f"{value.name} is not an input of {cat.name}")


def _int48(node: Node) -> bool:
    from executorch.backends.arm.tosa.mapping import TosaSpecialDtype

    return node.meta.get(TosaSpecialDtype.meta_key()) == TosaSpecialDtype.INT48


def carry_channel_orders(gm: GraphModule, ep) -> ChannelOrderRecord:
    """Carry every gather of channels in ``gm`` (the Arm backend's graph, ``ep`` its program)
    as a stored channel order where all its readers allow (see the module doc)."""
    carrier = _Carrier(gm, ep)
    gathers = find_gathers(gm)
    if not gathers:
        return carrier.record
    if ep is None:
        carrier.record.declined = {g.end.name: "no program to re-lay out constants in" for g in gathers}
        return carrier.record
    accepted = carrier.analyse(gathers)
    if accepted:
        carrier.rewrite(accepted)
        gm.graph.lint()
        gm.recompile()
    return carrier.record


__all__ = ["ChannelOrderRecord", "Gather", "carry_channel_orders", "find_gathers", "gather_of"]
