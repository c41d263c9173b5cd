"""Channel order as part of a tensor's layout: a gather of channels carried as the order the
channels are stored in, and absorbed by the weights that read them.

A value ``x`` may be stored as ``x.index_select(d, s)`` (stored channel ``i`` holds channel
``s[i]``) wherever every op that reads it is told. The laws, for any stored order ``s``:

* a gather of channels (permutes and views that replay, on indices, to
  ``y = x.index_select(d, p)``: a channel shuffle in any of its forms) reads ``x`` stored in
  order ``s`` as ``y`` stored in order ``p^-1[s]``: the same memory, no op;
* a slice of channels is a set of runs of what it slices, and a concatenation may store its
  inputs' channels in any order: one copy per run;
* an op that computes channel ``c`` from channel ``c`` alone runs on the stored order with its
  per-channel constants permuted alike (depthwise weights, batch-norm statistics, requantization
  scales); pools, activations, reductions over other axes and elementwise ops whose other
  operands are broadcast along the channels have none;
* a weighted sum over the channels (a convolution, a linear) reads any stored order:
  ``conv(x[.., s], W[.., s]) == conv(x, W)``, its weight's input axis permuted;
* one whose output only reaches a concatenation (through the ops above) writes any stored
  order: its weight's output axis, its bias and the per-channel constants after it permuted.

So a gather whose channels end in weighted sums disappears. Where the stored order is the
carrier's to choose (a concatenation, a convolution that writes into one) channels are ordered
by where they go next (``_key``): the channels a later op reads as a slice stored next to each
other, so that slice stays one run (a free read), and channels passed on together kept together.

This module holds the dialect-free part: finding gathers, the closure of the values a carried
gather reaches, and the arrangement of stored orders. A dialect (``ChannelOrderCarrier``
subclass) says how its ops read another order, which of them choose their output order, how
their constants are permuted and how nodes are built: ExecuTorch's Arm backend graph
(``executorch/arm_channel_order.py``) and ATen programs (``rewrites/carry_channel_order.py``).
"""
from __future__ import annotations

import enum
import functools
import math
import operator
from dataclasses import dataclass, field

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import fake_value, is_tensor

aten = ops.aten
#: longest permute/view chain examined for a gather of channels (a shuffle's is five long)
MAX_CHAIN = 8

Source = tuple[Node, int]  # a stored channel: the node that stores it and its stored index


@dataclass(frozen=True)
class Gather:
    """``end == start.index_select(axis, pi)``, computed by ``chain`` (permutes and views)."""

    start: Node
    end: Node
    chain: tuple[Node, ...]
    axis: int
    pi: tuple[int, ...]

    @functools.cached_property
    def inverse(self) -> tuple[int, ...]:
        out = [0] * len(self.pi)
        for i, p in enumerate(self.pi):
            out[p] = i
        return tuple(out)


def shape_of(node: Node) -> tuple[int, ...]:
    return tuple(int(s) for s in fake_value(node).shape)


_REORDERS = ops.VIEW_PACKETS | {aten.permute, aten.transpose}


def is_reorder(node: Node) -> bool:
    """A permute, view or contiguous copy: an op that only moves elements."""
    return node.op == "call_function" and (ops.packet_of(node) in _REORDERS or ops.is_contiguous_copy(node))


def _replay(chain: list[Node], value: torch.Tensor) -> torch.Tensor:
    """The values ``chain`` computes from ``value``, views as reshapes (a view copy of a
    dialect without strides reads any input; a strided view would refuse some)."""
    for node in chain:
        if ops.packet_of(node) in ops.VIEW_PACKETS:
            value = value.reshape(list(node.args[1]))
        else:
            value = node.target(value, *node.args[1:], **node.kwargs)
    return value


def gather_of(chain: list[Node], shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]] | None:
    """``(axis, pi)`` when ``chain`` run on ``x`` of ``shape`` gives ``x.index_select(axis, pi)``
    with ``pi`` not the identity, else None (proved on the index tensor)."""
    numel = math.prod(shape)
    index = torch.arange(numel, dtype=torch.int32 if numel < 2**31 else torch.int64).reshape(shape)
    out = _replay(chain, index)
    if tuple(out.shape) != tuple(shape):
        return None
    for axis, size in enumerate(shape):
        if size < 2:
            continue
        inner = math.prod(shape[axis + 1:])
        pi = tuple((out.movedim(axis, 0).reshape(size, -1)[:, 0] // inner % size).tolist())
        if pi != tuple(range(size)) and sorted(pi) == list(range(size)) \
                and torch.equal(out, index.index_select(axis, torch.tensor(pi))):
            return axis, pi
    return None


def gather_ending_at(end: Node) -> Gather | None:
    """The longest chain of single-reader permutes and views ending at ``end`` that gathers
    one axis of its input, or None."""
    if not is_reorder(end) or not is_tensor(fake_value(end)):
        return None
    chain, cur = [end], end.args[0]
    while isinstance(cur, Node) and is_reorder(cur) and len(cur.users) == 1 and len(chain) < MAX_CHAIN:
        chain.insert(0, cur)
        cur = cur.args[0]
    moves = [i for i, n in enumerate(chain) if ops.packet_of(n) in (aten.permute, aten.transpose)]
    for i in range(moves[-1] + 1 if moves else 0):  # views alone keep the element order
        start = chain[i].args[0]
        if isinstance(start, Node) and is_tensor(fake_value(start)) and shape_of(start) == shape_of(end):
            proved = gather_of(chain[i:], shape_of(start))
            if proved is not None:
                return Gather(start, end, tuple(chain[i:]), *proved)
    return None


def find_gathers(nodes) -> list[Gather]:
    """Every maximal chain of permutes and views among ``nodes`` that gathers one axis."""
    found = [g for g in (gather_ending_at(n) for n in nodes) if g is not None]
    inner = {n for g in found for n in g.chain[:-1]}
    return [g for g in found if g.end not in inner]


def view_axis(in_shape: tuple[int, ...], axis: int, out_shape: tuple[int, ...]) -> int | None:
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
    SLICE = "slice"  # slices of channels (``pieces``): runs of the same memory
    CAT = "cat"  # a concatenation along the channels: stores them in an order of its choosing
    CARRY = "carry"  # channel c from channel c: runs on the stored order, constants permuted
    ABSORB = "absorb"  # a weighted sum over the channels: its weight's input axis takes the order


@dataclass(frozen=True)
class Role:
    kind: Read
    axis: int | None = None  # the channel axis of the reader's output (SLICE, CAT, CARRY)
    gather: Gather | None = None
    pieces: tuple[tuple[Node, int, int], ...] = ()  # SLICE: each output and its [start, end)


@dataclass
class ChannelOrderRecord:
    """What a carrier did to one graph."""

    carried: list[str] = field(default_factory=list)  # gathers removed, by their output's name
    declined: dict[str, str] = field(default_factory=dict)  # gather output -> why it stays
    copy_runs: int = 0  # runs copied into concatenations the carrier built

    def to_dict(self) -> dict:
        return {"carried_gathers": len(self.carried), "declined_gathers": dict(self.declined),
                "copy_runs": self.copy_runs}


@dataclass(frozen=True)
class Closure:
    """The values carrying ``gather`` changes (with their channel axes), how each reader reads
    them, and the gathers downstream that go with it; ``reason`` says why it cannot be carried."""

    gather: Gather
    axes: tuple[tuple[Node, int], ...] = ()
    roles: tuple[tuple[tuple[Node, Node], Role], ...] = ()
    gathers: tuple[Gather, ...] = ()
    reason: str | None = None


class ChannelOrderCarrier:
    """Carries gathers of channels through one graph. A dialect implements the hooks below."""

    # -- hooks ------------------------------------------------------------------------------
    def role(self, user: Node, value: Node, axis: int) -> Role | str:
        """How ``user`` reads ``value`` stored in another order along ``axis``, or why it
        cannot (``gather_role`` and ``structural_role`` cover the ops every dialect shares)."""
        raise NotImplementedError

    def chooses_order(self, node: Node, axis: int) -> bool:
        """Whether ``node`` (a weighted sum) can write its output channels in any order."""
        raise NotImplementedError

    def passes_channels(self, node: Node, axis: int) -> bool:
        """Whether ``node`` computes channel ``c`` from channel ``c`` of its first input alone,
        with per-channel constants ``permute_channels`` can permute."""
        raise NotImplementedError

    def permute_channels(self, node: Node, order: list[int], output: bool) -> None:
        """Store ``node``'s per-channel constants for channels stored in ``order``: for a
        weighted sum its input channels, or its output channels when ``output``."""
        raise NotImplementedError

    def build_slice(self, x: Node, axis: int, start: int, end: int, like: Node, before: Node) -> Node:
        raise NotImplementedError

    def build_cat(self, pieces: list[Node], axis: int, like: Node, before: Node) -> Node:
        raise NotImplementedError

    def replace_input(self, node: Node, old: Node, new: Node) -> None:
        raise NotImplementedError

    def erase(self, nodes: list[Node]) -> None:
        """Erase those of ``nodes`` (consumers first) that nothing reads any more."""
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------
    def __init__(self, nodes) -> None:
        self.index = {n: i for i, n in enumerate(nodes)}
        self.heads: dict[Node, Gather] = {}
        self.roles: dict[tuple[Node, Node], Role] = {}
        self.axis: dict[Node, int] = {}  # region value -> its channel axis
        self.src: dict[Node, list[Source]] = {}  # region value -> where each channel is stored
        self.materialized: dict[Node, tuple[Node, list[int]]] = {}
        self.keys: dict[tuple[Node, int], tuple] = {}
        self.built = 0  # nodes added
        self.record = ChannelOrderRecord()

    # -- roles every dialect shares -----------------------------------------------------------
    def head(self, node: Node) -> Gather | None:
        """The gather whose chain starts at ``node``, if any."""
        return self.heads.get(node)

    def gather_role(self, user: Node, value: Node, axis: int) -> Role | str | None:
        gather = self.head(user)
        if gather is None or gather.start is not value:
            return None
        return Role(Read.GATHER, gather.axis, gather) if gather.axis == axis else "gathered along another axis"

    def structural_role(self, user: Node, value: Node, axis: int) -> Role | str:
        """Permutes, views, slices, splits, concatenations, reductions, elementwise ops."""
        rank = len(shape_of(value))
        packet = ops.packet_of(user)
        if packet is aten.permute:
            dims = [d % rank for d in user.args[1]]
            return Role(Read.CARRY, dims.index(axis))
        if packet is aten.transpose:
            a, b = user.args[1] % rank, user.args[2] % rank
            return Role(Read.CARRY, b if axis == a else a if axis == b else axis)
        if packet in ops.FLATTEN_PACKETS:
            moved = view_axis(shape_of(value), axis, shape_of(user))
            return Role(Read.CARRY, moved) if moved is not None else "reshaped across the channel axis"
        if ops.is_contiguous_copy(user):
            return Role(Read.CARRY, axis)
        if packet is aten.slice:
            dim = (user.args[1] if len(user.args) > 1 else 0) % rank
            step = user.args[4] if len(user.args) > 4 else 1
            if dim != axis:
                return Role(Read.CARRY, axis)
            if step != 1:
                return "sliced with a step"
            start, end = _bounds(user, shape_of(value)[axis])
            return Role(Read.SLICE, axis, pieces=((user, start, end),))
        if packet in (aten.chunk, aten.split, aten.split_with_sizes):
            return self._split_role(user, value, axis, rank)
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
            out_shape = shape_of(user)
            out_axis = axis + len(out_shape) - rank
            for other in user.all_input_nodes:
                if other is value or not is_tensor(fake_value(other)):
                    continue
                shape = shape_of(other)
                at = out_axis - (len(out_shape) - len(shape))
                if at >= 0 and shape[at] != 1:
                    return f"read by {ops.op_name(user.target)} with another operand that has channels"
            return Role(Read.CARRY, out_axis)
        return f"read by {ops.op_name(user.target)}"

    def _split_role(self, user: Node, value: Node, axis: int, rank: int) -> Role | str:
        dim = user.args[2] if len(user.args) > 2 else user.kwargs.get("dim", 0)
        if dim % rank != axis:
            return "split along another axis"
        parts = fake_value(user)
        pieces, offset = [], 0
        readers = {}
        for reader in user.users:
            if reader.op != "call_function" or reader.target is not operator.getitem:
                return "split and read whole"
            readers[reader.args[1]] = reader
        for i, part in enumerate(parts):
            size = int(part.shape[axis])
            if i in readers:
                pieces.append((readers[i], offset, offset + size))
            offset += size
        return Role(Read.SLICE, axis, pieces=tuple(pieces))

    # -- analysis ---------------------------------------------------------------------------
    def closure(self, gather: Gather) -> Closure:
        """The values whose stored order carrying ``gather`` changes, or why one of their
        readers cannot read another order."""
        region: dict[Node, int] = {}
        roles: dict[tuple[Node, Node], Role] = {}
        downstream: list[Gather] = []
        pending = [(gather.end, gather.axis)]
        if ops.packet_of(gather.start) in ops.CONCAT_PACKETS and _cat_dim(gather.start) == gather.axis:
            pending.append((gather.start, gather.axis))  # a concatenation stores in the order it likes
        while pending:
            value, axis = pending.pop()
            if value in region:
                if region[value] != axis:
                    return Closure(gather, reason=f"{value.name} is reached with two channel axes")
                continue
            region[value] = axis
            for user in value.users:
                role = self.role(user, value, axis)
                if isinstance(role, str):
                    return Closure(gather, reason=f"{value.name} is {role}")
                roles[(user, value)] = role
                if role.kind is Read.GATHER:
                    downstream.append(role.gather)
                    pending.append((role.gather.end, role.gather.axis))
                elif role.kind is Read.SLICE:
                    pending += [(piece, role.axis) for piece, _, _ in role.pieces]
                elif role.kind is not Read.ABSORB:
                    pending.append((user, role.axis))
        return Closure(gather, tuple(region.items()), tuple(roles.items()), tuple(downstream))

    def accept(self, closure: Closure) -> None:
        """Take ``closure`` (carried) into the carrier's state."""
        self.axis.update(closure.axes)
        self.roles.update(closure.roles)
        self.record.carried += [g.end.name for g in (closure.gather, *closure.gathers)]

    def analyse(self, gathers: list[Gather]) -> list[Gather]:
        """The gathers whose every reader downstream reads another stored order. A gather
        downstream of an accepted one is accepted too (its closure is part of the other's);
        one downstream of a declined gather may be accepted alone, reading the declined
        gather's output as stored."""
        self.heads = {g.chain[0]: g for g in gathers}
        accepted = []
        for gather in gathers:
            closure = self.closure(gather)
            if closure.reason is not None:
                self.record.declined[gather.end.name] = closure.reason
                continue
            accepted.append(gather)
            self.accept(closure)
        self.record.carried = [g.end.name for g in accepted]  # each once: downstream ones are in the list
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
                found += [self._key(piece, j - start) for piece, start, end in role.pieces if start <= j < end]
            elif role.kind is Read.CAT:
                found.append((0, self._key(user, _offset(user, value) + j)))
            else:
                found.append((1, value.name))
        key = found[0] if found and all(k == found[0] for k in found) else ()
        self.keys[(value, j)] = key
        return key

    # -- writing the stored orders ----------------------------------------------------------
    def _placed(self, node: Node, before: Node) -> Node:
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
            whole = start == 0 and end == shape_of(node)[axis]
            pieces.append(node if whole else self._placed(self.build_slice(node, axis, start, end, like, before),
                                                          before))
        if len(pieces) == 1:
            return pieces[0]
        self.record.copy_runs += len(pieces)
        return self._placed(self.build_cat(pieces, axis, like, before), before)

    def _materialize(self, value: Node, before: Node) -> tuple[Node, list[int]]:
        """``value``'s channels stored in one tensor, and which channel each stored index holds."""
        if value in self.materialized:
            return self.materialized[value]
        sources = self.src[value]
        order = sorted(range(len(sources)), key=lambda j: (self.index[sources[j][0]], sources[j][1]))
        node = self._build([sources[j] for j in order], self.axis[value], value, before)
        self.materialized[value] = (node, order)
        return node, order

    def _producer(self, x: Node, axis: int) -> list[Node] | None:
        """The chain from a weighted sum to ``x`` (it first) through ops that keep each channel
        on its own, each read by the next alone: ``x``'s stored order is the sum's to choose."""
        chain, cur = [], x
        while isinstance(cur, Node) and cur.op == "call_function" and len(cur.users) == 1 and cur not in self.axis:
            chain.insert(0, cur)
            packet = ops.packet_of(cur)
            if self.chooses_order(cur, axis):
                return chain
            if packet is aten.permute:
                axis = [d % len(cur.args[1]) for d in cur.args[1]][axis]
            elif packet in ops.VIEW_PACKETS:
                axis = view_axis(shape_of(cur), axis, shape_of(cur.args[0]))
                if axis is None:
                    return None
            elif not self.passes_channels(cur, axis):
                return None
            cur = cur.args[0]
        return None

    def _arrange(self, cat: Node) -> Node:
        """Store ``cat``'s channels in the order ``_key`` asks for: the channels it copies that go
        on to another concatenation first (in the order they are stored now, for long runs), then
        the first produced input (what goes on, then what is read next), the copied channels read
        next, the second produced input (what is read next first), any further produced inputs."""
        axis = self.axis[cat]
        fixed: list[tuple[int, Source]] = []  # channels stored elsewhere: (channel, source)
        blocks: list[tuple[Node, list[Node], list[int]]] = []  # produced inputs: node, producer chain, channels
        offset = 0
        for x in cat.args[0]:
            size = shape_of(x)[axis]
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
                self.permute_channels(node, local, output=True)
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
        return node

    def rewrite(self, gathers: list[Gather], nodes: list[Node]) -> None:
        """Carry the accepted ``gathers`` (after ``analyse`` or ``accept``) through ``nodes``,
        the graph's nodes in order."""
        ends = {g.end: g for g in gathers}
        inner = {n for g in gathers for n in g.chain[:-1]}
        erase = set(inner) | set(ends)
        for node in nodes:
            if node.op != "call_function" or node in inner:
                continue
            if node in ends:
                g = ends[node]
                start = self.src.get(g.start) or [(g.start, i) for i in range(shape_of(g.start)[g.axis])]
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
                    for piece, start, end in role.pieces:
                        self.src[piece] = self.src[value][start:end]
                        erase.add(piece)
                    erase.add(node)
                elif role.kind in (Read.CARRY, Read.ABSORB):
                    stored, order = self._materialize(value, node)
                    self.replace_input(node, value, stored)
                    self.permute_channels(node, order, output=False)
                    if role.kind is Read.CARRY:
                        position = {j: i for i, j in enumerate(order)}
                        self.src[node] = [(node, position[j]) for j in range(len(order))]
                        self.materialized[node] = (node, order)
        self.erase([n for n in reversed(nodes) if n in erase])


def _bounds(node: Node, size: int) -> tuple[int, int]:
    start = node.args[2] if len(node.args) > 2 and node.args[2] is not None else 0
    end = node.args[3] if len(node.args) > 3 and node.args[3] is not None else size
    start, end = (start + size if start < 0 else start), (end + size if end < 0 else end)
    return max(0, min(start, size)), max(0, min(end, size))


def _cat_dim(cat: Node) -> int:
    dim = cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)
    return dim % len(shape_of(cat))


def _offset(cat: Node, value: Node) -> int:
    """Where ``value`` starts along the concatenation's dim."""
    offset = 0
    for x in cat.args[0]:
        if x is value:
            return offset
        offset += shape_of(x)[_cat_dim(cat)]
    raise ValueError(f"{value.name} is not an input of {cat.name}")


__all__ = ["ChannelOrderCarrier", "ChannelOrderRecord", "Closure", "Gather", "Read", "Role", "find_gathers",
           "gather_ending_at", "gather_of", "is_reorder", "shape_of", "view_axis"]
