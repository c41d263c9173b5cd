"""From a graph to a labelling problem: which layouts each tensor can take, at what cost.

Every planned op gets a list of *modes*. A mode fixes the layout of each activation operand
and says which layout the op then produces and what it costs itself (``cost.op_charges``).
Modes are found by replaying the op on fake tensors laid out each way, so they state what
eager PyTorch really does (a channels-last conv returns channels-last, a softmax returns
contiguous, a ``view`` that cannot alias a channels-last input is not a mode at all).
An operand that is not in the layout a mode needs is converted by an explicit copy, shared
by all consumers that want that layout; the solver chooses modes and copies together.

Ops outside the op table get a single mode: their operands stay as exported.
"""
from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind
from torch.fx import Node
from torch.fx.node import map_arg

from ..ir import ops
from ..ir.access import fake_value, is_tensor, static_shape, tensor_order
from ..ir.propagate import fake_mode_of, run_fake
from ..targets import Target
from .cost import IOLayout, key_of, op_charges
from .perm import Order, channels_last_order, distinct_layouts, identity_order, layout_key, strides_for

Value = tuple[str, int]  # (producing node, output index; -1 for a single tensor)

_MAX_COMBOS = 64
_MAX_LAYOUTS_PER_VALUE = 8
_MAX_PERMUTED_RANK = 5


@dataclass(frozen=True)
class Mode:
    needs: tuple[tuple[Value, Order], ...]  # layout key required of each activation operand
    gives: tuple[tuple[int, Order], ...]  # layout key of each tensor output
    cost: int  # bytes the op itself moves in this mode
    kwargs: tuple[tuple[str, Any], ...] = ()  # keyword arguments the mode overrides
    original: bool = False  # the mode the exported graph is in
    op: Any = None  # an equivalent op the mode runs instead (``contiguous`` -> ``clone``)


@dataclass
class ValueInfo:
    value: Value
    nbytes: int
    rank: int
    reps: dict[Order, torch.Tensor] = field(default_factory=dict)  # a fake tensor per layout key
    convertible: dict[Order, Order] = field(default_factory=dict)  # key -> full dim order of a copy
    fixed: Order | None = None  # a user input's layout under the contract


@dataclass
class Declined:
    op: str
    node: str
    reason: str


@dataclass
class Problem:
    values: dict[Value, ValueInfo]
    modes: dict[str, list[Mode]]
    outputs: list[tuple[Value, Order]]  # user outputs and the layout the contract wants
    declined: list[Declined]
    node_order: list[str]


def value_of(node: Node) -> Value:
    if node.op == "call_function" and node.target is operator.getitem:
        return (node.args[0].name, int(node.args[1]))
    return (node.name, -1)


def conversion_orders(rank: int) -> list[Order]:
    """The layouts an explicit copy produces: contiguous, and channels-last for ranks 3 to 5."""
    orders = [identity_order(rank)]
    if 3 <= rank <= 5:
        orders.append(channels_last_order(rank))
    return orders


def constant_names(ep: ExportedProgram) -> set[str]:
    kinds = {InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR, InputKind.CUSTOM_OBJ}
    return {s.arg.name for s in ep.graph_signature.input_specs if s.kind in kinds}


def user_input_names(ep: ExportedProgram) -> set[str]:
    return {s.arg.name for s in ep.graph_signature.input_specs if s.kind == InputKind.USER_INPUT}


def user_output_nodes(ep: ExportedProgram) -> list[Node]:
    out = ep.graph.output_node()
    flat = list(out.args[0])
    return [flat[i] for i, s in enumerate(ep.graph_signature.output_specs)
            if s.kind == OutputKind.USER_OUTPUT and isinstance(flat[i], Node)]


class _Builder:
    def __init__(self, ep: ExportedProgram, target: Target, io_layout: IOLayout):
        self.ep = ep
        self.target = target
        self.io_layout = io_layout
        self.mode = fake_mode_of(ep.graph_module)
        self.constants = constant_names(ep)
        self.values: dict[Value, ValueInfo] = {}
        self.modes: dict[str, list[Mode]] = {}
        self.declined: list[Declined] = []

    # -- values -------------------------------------------------------------------------
    def _new_value(self, value: Value, fake: torch.Tensor, node: Node) -> ValueInfo:
        shape = static_shape(node, fake)
        info = ValueInfo(value, self.target.bytes_of(fake.numel(), fake.dtype), len(shape))
        if distinct_layouts(shape) > 1:
            for order in conversion_orders(len(shape)):
                key = tuple(d for d in order if shape[d] != 1)
                if key not in info.convertible:
                    info.convertible[key] = order
        self.values[value] = info
        return info

    def _convert_rep(self, info: ValueInfo, source: torch.Tensor, order: Order) -> torch.Tensor:
        from ..layout.materialize import conversion_call

        return conversion_call(source, order, lambda t, a, k: run_fake(self.mode, t, a, k))

    def _add_rep(self, info: ValueInfo, fake: torch.Tensor) -> None:
        key = key_of(fake)
        if key in info.reps or len(info.reps) >= _MAX_LAYOUTS_PER_VALUE:
            return
        info.reps[key] = fake
        for ckey, order in info.convertible.items():
            if ckey not in info.reps:
                info.reps[ckey] = self._convert_rep(info, fake, order)

    def relevant(self, arg: Node) -> bool:
        """An operand the planner lays out: a non-constant tensor with more than one layout."""
        if arg.op == "placeholder" and arg.name in self.constants:
            return False
        if arg.op == "get_attr":
            return False
        value = value_of(arg)
        info = self.values.get(value)
        return info is not None and len(info.reps) > 1

    # -- nodes --------------------------------------------------------------------------
    def placeholder(self, node: Node) -> None:
        fake = fake_value(node)
        if node.name in self.constants or not is_tensor(fake):
            return
        info = self._new_value((node.name, -1), fake, node)
        order = self.io_layout.order_for(info.rank)
        source = fake if key_of(fake) == tuple(d for d in order if fake.shape[d] != 1) else \
            self._convert_rep(info, fake, order)
        info.fixed = key_of(source)
        self._add_rep(info, source)

    def call(self, node: Node) -> None:
        if node.target is operator.getitem:
            return
        operands = [a for a in dict.fromkeys(node.all_input_nodes) if self.relevant(a)]
        fam = ops.family(node.target)
        if fam is ops.Family.VIEW and len(operands) == 1:
            self._offer_view_sources(node, operands[0])
        original = tuple(key_of(fake_value(a)) for a in operands)
        if fam is None:
            self.declined.append(Declined(ops.op_name(node.target), node.name,
                                          "op not in the layout table: operands kept as exported"))
            combos = [original]
        else:
            choices = [list(self.values[value_of(a)].reps) for a in operands]
            total = 1
            for c in choices:
                total *= len(c)
            if total <= _MAX_COMBOS:
                combos = list(itertools.product(*choices))
            else:
                combos = [original] + [tuple(c[i] if i < len(c) else c[0] for c in choices)
                                       for i in range(max(len(c) for c in choices))]
        found: dict[tuple, Mode] = {}
        for combo in dict.fromkeys(combos):
            for op, override in copy_variants(node):
                mode = self._probe(node, operands, combo, op, override, combo == original and op is None)
                if mode is None:
                    continue
                key = (mode.needs, mode.gives)
                best = found.get(key)
                if best is None or (mode.cost, not mode.original) < (best.cost, not best.original):
                    found[key] = mode
        if not found:
            raise RuntimeError(f"node '{node.name}' has no valid layout, not even the exported one")
        self.modes[node.name] = list(found.values())

    def _offer_view_sources(self, node: Node, operand: Node) -> None:
        """Let a copy lay out a view's source so that the view comes out contiguous or
        channels-last: this is what makes reshapes and permutes free wherever they can be."""
        info = self.values[value_of(operand)]
        source = fake_value(operand)
        shape = tuple(source.shape)
        if len(shape) > _MAX_PERMUTED_RANK:
            return
        out = fake_value(node)
        out = out if is_tensor(out) else None
        if out is None:
            return
        wanted = {layout_key(tuple(out.shape), o) for o in conversion_orders(out.dim())}
        for order in itertools.permutations(range(len(shape))):
            key = layout_key(shape, order)
            if key in info.convertible or len(info.convertible) >= _MAX_LAYOUTS_PER_VALUE:
                continue
            probe = run_fake(self.mode, torch.empty_strided, (shape, strides_for(shape, order)),
                             {"dtype": source.dtype})
            try:
                result = run_fake(self.mode, node.target, *_swap(node, operand, probe))
            except Exception:
                continue
            if is_tensor(result) and key_of(result) in wanted:
                info.convertible[key] = tuple(order)
                info.reps[key] = self._convert_rep(info, next(iter(info.reps.values())), tuple(order))

    def _probe(self, node: Node, operands: list[Node], combo: tuple, op: Any, override: tuple,
               is_original: bool) -> Mode | None:
        chosen = {a: self.values[value_of(a)].reps[k] for a, k in zip(operands, combo)}

        def val(n: Node) -> Any:
            if n in chosen:
                return chosen[n]
            return fake_value(n)

        args = map_arg(node.args, val)
        kwargs = dict(map_arg(node.kwargs, val))
        kwargs.update(dict(override))
        target = node.target if op is None else op
        if is_original:
            out = fake_value(node)
        else:
            try:
                out = run_fake(self.mode, target, args, kwargs)
            except Exception:  # eager rejects this layout (e.g. a view that cannot alias it)
                return None
        gives = []
        if is_tensor(out):
            gives.append((-1, key_of(out)))
            self._record_output((node.name, -1), out, node)
        elif isinstance(out, (list, tuple)):
            for i, item in enumerate(out):
                if is_tensor(item):
                    gives.append((i, key_of(item)))
                    self._record_output((node.name, i), item, node)
        cost = sum(c.bytes for c in op_charges(node.name, target, args, kwargs, out, self.target))
        needs = tuple((value_of(a), k) for a, k in zip(operands, combo))
        return Mode(needs, tuple(gives), cost, override, is_original, op)

    def _record_output(self, value: Value, fake: torch.Tensor, node: Node) -> None:
        info = self.values.get(value)
        if info is None:
            info = self._new_value(value, fake, node)
        self._add_rep(info, fake)


def copy_variants(node: Node) -> list[tuple[Any, tuple]]:
    """``(op, kwargs)`` alternatives of a copy that keep its values: a copy may keep its
    source's layout instead of the one the model asked for (``preserve_format``)."""
    variants: list[tuple[Any, tuple]] = [(None, ())]
    overload = ops.aten_overload(node.target)
    if overload in (ops.aten.clone.default, ops.aten._to_copy.default):
        variants.append((None, (("memory_format", torch.preserve_format),)))
    elif overload is ops.aten.contiguous.default:
        variants.append((ops.CLONE, (("memory_format", torch.preserve_format),)))
    return variants


def _swap(node: Node, operand: Node, value: torch.Tensor) -> tuple[tuple, dict]:
    def val(n: Node) -> Any:
        return value if n is operand else fake_value(n)

    return map_arg(node.args, val), dict(map_arg(node.kwargs, val))


def build_problem(ep: ExportedProgram, target: Target, io_layout: IOLayout) -> Problem:
    b = _Builder(ep, target, io_layout)
    order = []
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            b.placeholder(node)
        elif node.op == "call_function":
            b.call(node)
            if node.name in b.modes:
                order.append(node.name)
    outputs = []
    for out in user_output_nodes(ep):
        value = value_of(out)
        if value in b.values:
            info = b.values[value]
            fake = fake_value(out)
            want = io_layout.order_for(info.rank)
            outputs.append((value, tuple(d for d in want if fake.shape[d] != 1)))
    return Problem(b.values, b.modes, outputs, b.declined, order)
