"""The layout problem of the graph ExecuTorch's Arm backend serializes to TOSA.

There a tensor's layout is physical: TOSA has no strides, so a tensor planned in dim order
``d`` becomes the tensor ``x.permute(d)``, and every TRANSPOSE is a ``permute_copy`` that
changes the memory sequence. The backend has by then wrapped each convolution, pooling and
matmul in its own permutes; this module takes the permutes out of the question and asks the
same integer program as the ATen planner (``layout.solve``) where to put the fewest bytes of
them back:

* a value may take any dim order it reaches from the identity through permutes, reshapes
  (proved by index replay) and layout-agnostic ops; a copy (one TRANSPOSE of the value's
  bytes) turns any order into any other;
* TOSA compute ops and ops this table does not know read and write their tensors as they
  stand (identity order), and so do the graph's inputs and outputs;
* elementwise ops (any arity; constants are re-laid out at compile time), per-tensor RESCALE
  and TABLE take one order for all same-rank operands and the output; RESCALE with channel
  scales keeps the last dim innermost; keepdim reductions, cat and slice remap their axes;
* a permute is free when it only renames its input's memory sequence, and so is a reshape.

The op table is ``ir.ops.arm_kind`` (``ir.ops.cortex_m_kind`` where Cortex-M plans with the same
program); ``arm_physical`` writes the plan back into the graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.fx import GraphModule, Node

from ..ir import ops
from ..ir.access import fake_value, is_tensor
from ..ir.perm import (Order, Perm, identity_order, layout_key, moves_bytes, order_after_permute,
                       order_before_permute, reshape_order, strides_for)
from ..layout.problem import Label, Mode, Problem, ValueInfo
from ..layout.solve import Solution, solve

#: dim orders a value may take, the identity included (keeps the problem small on long chains)
MAX_ORDERS = 6


@dataclass
class ArmPlan:
    """A solved layout problem of one graph: each planned node's output order and operand needs."""

    problem: Problem
    solution: Solution
    kinds: dict[Node, ops.ArmKind]
    values: dict[Node, ValueInfo]
    constants: set[str]
    run_orders: dict[tuple[str, Mode], Order]
    transposes_before: int
    transpose_bytes_before: int
    unknown_ops: list[str]  # ops outside the table (kept as they stand), by name

    def run_costs(self) -> int:
        """What the chosen modes of layout-agnostic ops pay for their layouts (``run_cost``)."""
        return sum(self.solution.chosen[n.name].cost for n, k in self.kinds.items()
                   if k in _SHARED_ORDER and n.name in self.solution.chosen)

    @property
    def cost_before(self) -> int:
        """The objective of the graph as it stands: its transposes' bytes and fixed costs (its
        ops run in the orders they are written in, which ``run_cost`` does not charge)."""
        return self.transpose_bytes_before + self.transposes_before * self.problem.conversion_overhead

    def transpose_bytes_after(self) -> int:
        """Bytes the plan's transposes move (its objective without run costs and fixed costs)."""
        return self.solution.objective_bytes - self.run_costs() - \
            self.solution.conversions * self.problem.conversion_overhead

    def order_of(self, node: Node, label: Label) -> Order:
        return self.values[node].convertible[label]

    def output_order(self, node: Node) -> Order:
        """The order the plan gives ``node``'s output."""
        for _, label in self.solution.chosen[node.name].gives:
            return self.order_of(node, label)
        return identity_order(len(self.values[node].shape))

    def run_order(self, node: Node) -> Order:
        """The order an elementwise or axis op runs in: its operands and output exactly
        permuted by it, size-1 dims included."""
        return self.run_orders.get((node.name, self.solution.chosen[node.name]), self.output_order(node))

    def operand_orders(self, node: Node) -> dict[Node, Order]:
        """The order the plan reads each planned operand of ``node`` in."""
        needs = dict(self.solution.chosen[node.name].needs)
        out = {}
        for arg in node.all_input_nodes:
            label = needs.get((arg.name, -1))
            if label is not None:
                out[arg] = self.order_of(arg, label)
        return out


#: kinds whose same-rank operands and output share one order
_SHARED_ORDER = (ops.ArmKind.ELEMENTWISE, ops.ArmKind.AXES, ops.ArmKind.LAST_AXIS, ops.ArmKind.PAD)


def _label(shape: tuple[int, ...], order: Order) -> Label:
    return strides_for(shape, order)


def _tensor_operands(node: Node, planned: dict[Node, ValueInfo]) -> list[Node]:
    return [a for a in dict.fromkeys(node.all_input_nodes) if a in planned]


class _Builder:
    def __init__(self, gm: GraphModule, user_inputs: set[str], element_bytes, kind_of, run_cost=None):
        self.gm = gm
        self.run_cost = run_cost or (lambda info, order: 0)
        self.values: dict[Node, ValueInfo] = {}
        self.kinds: dict[Node, ops.ArmKind] = {}
        self.orders: dict[Node, list[Order]] = {}
        self.constants: set[str] = set()
        self.run_order: dict[tuple[str, Mode], Order] = {}  # the order an elementwise mode runs in
        for node in gm.graph.nodes:
            val = fake_value(node)
            if not is_tensor(val) or node.op not in ("placeholder", "call_function"):
                continue
            if node.op == "placeholder" and node.name not in user_inputs:
                self.constants.add(node.name)
                continue
            shape = tuple(int(s) for s in val.shape)
            nbytes = val.numel() * element_bytes(val.dtype)
            self.values[node] = ValueInfo((node.name, -1), shape, nbytes)
            self.orders[node] = [identity_order(len(shape))]
            if node.op == "call_function":
                self.kinds[node] = kind_of(node)
        for node, kind in self.kinds.items():
            # a view of a constant is folded by the backend: it stays as it is
            if kind in (ops.ArmKind.PERMUTE, ops.ArmKind.RESHAPE) and not _tensor_operands(node, self.values):
                self.kinds[node] = ops.ArmKind.ANCHOR
            # INT48 storage is packed unlike its int32 metadata: permuting it would misaddress it
            if stored_as_int48(node) or any(stored_as_int48(a) for a in node.all_input_nodes):
                self.kinds[node] = ops.ArmKind.ANCHOR
        for node in gm.graph.nodes:  # a tuple-valued op reads its operands as they stand
            if node.op == "call_function" and node not in self.kinds and node.all_input_nodes:
                self.kinds[node] = ops.ArmKind.ANCHOR

    # -- which orders each value may take ------------------------------------------------
    def _offer(self, node: Node, order: Order | None) -> bool:
        if order is None or node not in self.values:
            return False
        known = self.orders[node]
        shape = self.values[node].shape
        if any(layout_key(shape, o) == layout_key(shape, order) for o in known) or len(known) >= MAX_ORDERS:
            return False
        known.append(tuple(order))
        return True

    def _related(self, node: Node) -> list[tuple[Node, Node, object]]:
        """Pairs (a, b, map) such that an order of ``a`` induces ``map(order)`` on ``b``."""
        kind = self.kinds.get(node)
        if kind is None or node not in self.values:
            return []
        rank = len(self.values[node].shape)
        if kind is ops.ArmKind.PERMUTE:
            (src,) = _tensor_operands(node, self.values) or (None,)
            if src is None:
                return []
            perm = _perm_of(node)
            return [(src, node, lambda o, p=perm: order_after_permute(o, p)),
                    (node, src, lambda o, p=perm: order_before_permute(o, p))]
        if kind is ops.ArmKind.RESHAPE:
            (src,) = _tensor_operands(node, self.values) or (None,)
            if src is None:
                return []
            a, b = self.values[src].shape, self.values[node].shape
            return [(src, node, lambda o, a=a, b=b: reshape_order(a, o, b)),
                    (node, src, lambda o, a=a, b=b: reshape_order(b, o, a))]
        if kind in _SHARED_ORDER:
            peers = [a for a in _tensor_operands(node, self.values) if len(self.values[a].shape) == rank]
            keep = (lambda o: o) if kind is not ops.ArmKind.LAST_AXIS else (
                lambda o, r=rank: o if o[-1] == r - 1 else None)
            pairs = []
            for peer in peers:
                pairs += [(peer, node, keep), (node, peer, keep)]
            return pairs
        return []

    def candidate_orders(self) -> None:
        relations = [r for node in self.kinds for r in self._related(node)]
        changed = True
        while changed:
            changed = False
            for a, b, induce in relations:
                for order in list(self.orders[a]):
                    changed |= self._offer(b, induce(order))
        for node, info in self.values.items():
            info.convertible = {_label(info.shape, o): o for o in self.orders[node]}

    # -- modes ---------------------------------------------------------------------------
    def _label_of(self, node: Node, order: Order | None) -> Label | None:
        """The label of the candidate order of ``node`` that lays out its bytes like ``order``
        (orders differing only in where size-1 dims sit are one candidate)."""
        if order is None:
            return None
        info = self.values[node]
        key = layout_key(info.shape, order)
        for label, known in info.convertible.items():
            if layout_key(info.shape, known) == key:
                return label
        return None

    def modes(self, node: Node) -> list[Mode]:
        kind = self.kinds[node]
        info = self.values.get(node)
        operands = _tensor_operands(node, self.values)

        def identity(a: Node) -> Label:
            return self._label_of(a, identity_order(len(self.values[a].shape)))

        gives_identity = () if info is None else ((-1, identity(node)),)
        moves = kind is ops.ArmKind.PERMUTE and not _renames(self.values[operands[0]].shape, _perm_of(node).dims)
        anchor = Mode(tuple((self.values[a].value, identity(a)) for a in operands), gives_identity,
                      info.nbytes if moves else 0, original=True, conversions=int(moves))
        if kind is ops.ArmKind.ANCHOR or info is None:
            return [anchor]
        rank = len(info.shape)
        out = []
        if kind in (ops.ArmKind.PERMUTE, ops.ArmKind.RESHAPE):
            (src,) = operands
            shape = self.values[src].shape
            for order in self.orders[src]:
                if kind is ops.ArmKind.PERMUTE:
                    gives = order_after_permute(order, _perm_of(node))
                else:
                    gives = reshape_order(shape, order, info.shape)
                label = self._label_of(node, gives)
                if label is not None:
                    out.append(Mode(((self.values[src].value, self._label_of(src, order)),), ((-1, label),), 0,
                                    original=order == identity_order(len(shape))))
            # the op run as it stands (a permute that moves bytes, a reshape of a planned input)
            return out + [anchor]
        # the orders the op may run in: its own and its same-rank operands' (a keepdim
        # reduction's output may have fewer distinct layouts than its input)
        run_orders = dict.fromkeys(self.orders[node])
        for a in operands:
            if len(self.values[a].shape) == rank:
                run_orders.update(dict.fromkeys(self.orders[a]))
        for order in run_orders:
            if kind is ops.ArmKind.LAST_AXIS and order[-1] != rank - 1:
                continue
            if ops.tosa_op(node.target) == "TABLE" and order != identity_order(rank) and \
                    unsafe_table_shape(Perm(order).apply(info.shape)):
                continue
            if any(len(self.values[a].shape) != rank for a in operands) and order != identity_order(rank):
                continue
            # an operand of lower rank (a broadcast bias) is read as it stands, with the identity order
            needs = [(self.values[a].value, self._label_of(a, order if len(self.values[a].shape) == rank
                                                         else identity_order(len(self.values[a].shape))))
                     for a in operands]
            if any(label is None for _, label in needs):
                continue
            gives = self._label_of(node, order)
            if gives is None:
                continue
            mode = Mode(tuple(needs), ((-1, gives),), self.run_cost(info, order), original=order == identity_order(rank))
            if (node.name, mode) not in self.run_order:
                self.run_order[(node.name, mode)] = order
                out.append(mode)
        return out


def stored_as_int48(node: Node) -> bool:
    """Whether the backend stores ``node``'s value as INT48 (``TosaSpecialDtype``)."""
    from executorch.backends.arm.tosa.mapping import TosaSpecialDtype

    return node.meta.get(TosaSpecialDtype.meta_key()) == TosaSpecialDtype.INT48


def unsafe_table_shape(shape: tuple[int, ...]) -> bool:
    """A TABLE operand shape Ethos-U85 miscompiles when a MAC op feeds it: [N, 1, 1, C] with
    N > 1 (the Arm backend keeps its own propagation off it for the same reason, MLBEDSW-11805)."""
    return len(shape) == 4 and shape[0] > 1 and shape[1] == 1 and shape[2] == 1


def _perm_of(node: Node) -> Perm:
    """The permutation a ``permute_copy`` node applies (negative dims normalised)."""
    dims = tuple(node.args[1])
    return Perm(tuple(d % len(dims) for d in dims))


def _renames(shape: tuple[int, ...], dims) -> bool:
    """Whether ``x.permute(dims)`` of a contiguous ``x`` keeps its memory sequence."""
    perm = Perm(tuple(dims))
    return not moves_bytes(perm, perm.apply(shape))


def _stock_transposes(gm: GraphModule, values: dict[Node, ValueInfo], kind_of) -> tuple[int, int]:
    """Permutes in the graph as it stands that change the memory sequence, and their bytes."""
    count = nbytes = 0
    for node in gm.graph.nodes:
        if node.op == "call_function" and node in values and kind_of(node) is ops.ArmKind.PERMUTE:
            src = node.all_input_nodes[0]
            if not _renames(tuple(fake_value(src).shape), _perm_of(node).dims):
                count += 1
                nbytes += values[node].nbytes
    return count, nbytes


def narrow_innermost_cost(info: ValueInfo, order: Order) -> int:
    """What an Ethos-U op pays for running in ``order`` with a narrow innermost dim (fewer
    than 8 elements, the NPU's brick depth) where the tensor as it stands has a wide one: as
    much as a transpose of its output. Measured with Vela 5.1.0: HF MobileNetV2's first
    padding run on the 224x224 image laid out channels-last (3 innermost) costs 770K U85 cycles
    instead of 445K with the image's width innermost."""
    def innermost(o: Order) -> int:
        wide = [info.shape[d] for d in o if info.shape[d] != 1]
        return wide[-1] if wide else 1

    narrow = innermost(order) < 8 <= innermost(identity_order(len(order)))
    return info.nbytes if narrow else 0


def plan(gm: GraphModule, user_inputs: set[str], element_bytes=None, time_limit: float = 120.0,
         kind_of=ops.arm_kind, run_cost=None, transpose_overhead: int = 0,
         no_more_transposes: bool = False) -> ArmPlan:
    """Solve the layout of ``gm`` (a graph whose layouts are physical); ``user_inputs`` names
    the placeholders that are not constants. ``kind_of`` is the op table of the graph's
    dialect (``ops.arm_kind`` for the Arm backend's, ``ops.cortex_m_kind`` for Cortex-M's);
    ``element_bytes(dtype)`` prices a conversion per element; ``run_cost(value, order)``
    what a layout-agnostic op pays for running in ``order`` beyond its conversions (none
    unless given; the Arm backend's: ``narrow_innermost_cost``); ``transpose_overhead`` what
    each transpose costs beyond its bytes, in bytes (``Target.transpose_overhead_bytes``).
    With ``no_more_transposes`` a plan has at most as many transposes as ``gm`` as it stands."""
    element_bytes = element_bytes or (lambda dtype: torch.empty((), dtype=dtype).element_size())
    b = _Builder(gm, user_inputs, element_bytes, kind_of, run_cost)
    b.candidate_orders()
    modes: dict[str, list[Mode]] = {}
    order = []
    for node in gm.graph.nodes:
        if node in b.kinds:
            modes[node.name] = b.modes(node)
            order.append(node.name)
    for node, info in b.values.items():
        if node.op == "placeholder":
            info.fixed = _label(info.shape, identity_order(len(info.shape)))
    outputs = []
    for arg in gm.graph.output_node().all_input_nodes:
        if arg in b.values:
            info = b.values[arg]
            outputs.append((info.value, _label(info.shape, identity_order(len(info.shape)))))
    count, nbytes = _stock_transposes(gm, b.values, kind_of)
    problem = Problem({info.value: info for info in b.values.values()}, modes, outputs, [], order,
                      conversion_overhead=transpose_overhead, max_conversions=count if no_more_transposes else None)
    # ops the table does not know and keeps as they stand (TOSA ops are known anchors)
    unknown = sorted({ops.op_name(n.target) for n, k in b.kinds.items()
                      if k is ops.ArmKind.ANCHOR and ops.tosa_op(n.target) is None
                      and ops.arm_kind(n) is ops.ArmKind.ANCHOR and n in b.values})
    return ArmPlan(problem, solve(problem, time_limit), b.kinds, b.values, b.constants, b.run_order, count, nbytes,
                   unknown)


__all__ = ["ArmPlan", "MAX_ORDERS", "narrow_innermost_cost", "plan"]
