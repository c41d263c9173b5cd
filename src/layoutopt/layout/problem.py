"""From a graph to a labelling problem: which layouts each tensor can take, at what cost.

Every planned op gets a list of *modes*. A mode fixes the layout of each activation operand
and says which layout the op then produces and what it costs itself (``cost.op_charges``).
Modes are found by replaying the op on fake tensors laid out each way, so they state what
eager PyTorch really does (a channels-last conv returns channels-last, a softmax returns
contiguous, a ``view`` that cannot alias a channels-last input is not a mode at all); where an
eager run on uninitialised memory gives exactly what the replay would (``run_probe``: vector
products), that run answers instead.
An operand that is not in the layout a mode needs is converted by an explicit copy, shared
by all consumers that want that layout; the solver chooses modes and copies together.

A label is a tensor's exact strides: eager's views and kernels read even the strides of
size-1 dims (a convolution choosing its memory format, a view computing its own strides), so
two labels with one ``layout_key`` can behave differently downstream although they hold the
same bytes in the same order. Costs compare keys only.

An op outside the op table that reads one tensor and writes one of its shape is planned as
elementwise when replay shows its output follows its input's layout in every layout the
planner considers (eager does what the mode says, so nothing is assumed); any other op outside
the table gets a single mode, its operands as exported, and is declined with the reason.

Three caps keep the problem small: operand label combinations probed per op, labels kept per
value, and the rank up to which a view's source layouts are searched. Each place a cap cuts
something off is a ``Truncation``: the solver's bound then holds for the truncated problem only.
"""
from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.fx import Node
from torch.fx.node import map_arg

from ..ir import ops
from ..ir.access import (Role, fake_value, input_placeholders, is_tensor, role_of, static_shape, tensor_order,
                         user_input_nodes)
from ..ir.propagate import fake_mode_of, run_fake, run_probe
from ..targets import Target
from ..ir.perm import Order, channels_last_order, distinct_layouts, identity_order, layout_key, order_of, strides_for
from .conversion import conversion_call, is_edge
from .cost import IOLayout, constant_folded, is_unary_same_shape, key_of, op_charges

Value = tuple[str, int]  # (producing node, output index; -1 for a single tensor)
Label = tuple[int, ...]  # the exact strides of a tensor

_MAX_COMBOS = 64
_MAX_LABELS_PER_VALUE = 8
_MAX_PERMUTED_RANK = 5


@dataclass(frozen=True)
class Mode:
    needs: tuple[tuple[Value, Label], ...]  # label required of each activation operand
    gives: tuple[tuple[int, Label], ...]  # label of each tensor output
    cost: int  # bytes the op itself moves in this mode
    kwargs: tuple[tuple[str, Any], ...] = ()  # keyword arguments the mode overrides
    original: bool = False  # the mode the exported graph is in
    op: Any = None  # an equivalent op the mode runs instead (``contiguous`` -> ``clone``)
    conversions: int = 0  # layout conversions the op itself is in this mode (a permute that moves bytes)


@dataclass
class ValueInfo:
    value: Value
    shape: tuple[int, ...]
    nbytes: int
    reps: dict[Label, torch.Tensor] = field(default_factory=dict)  # a fake tensor per label
    convertible: dict[Label, Order] = field(default_factory=dict)  # label -> order a copy is asked for
    fixed: Label | None = None  # a user input's label under the contract

    @property
    def rank(self) -> int:
        return len(self.shape)

    def key(self, label: Label) -> Order:
        return layout_key(self.shape, order_of(self.shape, label))


@dataclass
class Declined:
    op: str
    node: str
    reason: str


@dataclass(frozen=True)
class Truncation:
    cap: str  # "max_combos", "max_labels_per_value" or "max_permuted_rank"
    node: str  # the op whose modes, or the producer of the value whose labels, were cut
    detail: str


@dataclass
class Problem:
    values: dict[Value, ValueInfo]
    modes: dict[str, list[Mode]]
    outputs: list[tuple[Value, Label]]  # user outputs and the copy that meets the contract
    declined: list[Declined]
    node_order: list[str]
    replayed: list[str] = field(default_factory=list)  # ops outside the table planned as elementwise
    truncated: list[Truncation] = field(default_factory=list)  # empty: the bound is for the whole problem
    # what a conversion costs beyond its bytes, in bytes (a target's fixed cost per copy op)
    conversion_overhead: int = 0
    # the most conversions (copies and converting modes) a plan may have; None: no limit
    max_conversions: int | None = None


def label_of(t: torch.Tensor) -> Label:
    return tuple(int(s) for s in t.stride())


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
    return {n.name for s, n in input_placeholders(ep) if role_of(s) in (Role.CONSTANT, Role.OBJECT)}


def user_input_names(ep: ExportedProgram) -> set[str]:
    return {n.name for n in user_input_nodes(ep)}


def user_output_nodes(ep: ExportedProgram) -> list[Node]:
    out = ep.graph.output_node()
    flat = list(out.args[0])
    return [flat[i] for i, s in enumerate(ep.graph_signature.output_specs)
            if role_of(s) is Role.USER and isinstance(flat[i], Node)]


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


def _substitute(node: Node, chosen: dict[Node, Any]) -> tuple[tuple, dict]:
    def val(n: Node) -> Any:
        return chosen[n] if n in chosen else fake_value(n)

    return map_arg(node.args, val), dict(map_arg(node.kwargs, val))


class _Builder:
    def __init__(self, ep: ExportedProgram, target: Target, io_layout: IOLayout):
        self.ep = ep
        self.target = target
        self.io_layout = io_layout
        self.mode = fake_mode_of(ep.graph_module)
        self.constants = constant_names(ep)
        self.folded = constant_folded(list(ep.graph.nodes), user_input_names(ep))
        self.values: dict[Value, ValueInfo] = {}
        self.modes: dict[str, list[Mode]] = {}
        self.declined: list[Declined] = []
        self.replayed: list[str] = []
        self.truncated: dict[tuple[str, str], Truncation] = {}  # the first cut per (cap, node)
        self.conversions: dict[tuple, torch.Tensor] = {}  # (source metadata but strides, order) -> copy
        self.edge = is_edge(ep)

    def _truncate(self, cap: str, node: str, detail: str) -> None:
        self.truncated.setdefault((cap, node), Truncation(cap, node, detail))

    # -- values -------------------------------------------------------------------------
    def _convert(self, source: torch.Tensor, order: Order) -> torch.Tensor:
        """``source`` copied into dim ``order``. The copy is a fresh dense tensor whose metadata
        does not depend on the source's strides or storage, so one replay serves every value
        of that shape and dtype (the replay cache, keyed on the source's strides too, would
        replay it once per source layout)."""
        key = None
        if getattr(source, "constant", None) is None:
            key = (type(source), tuple(source.shape), source.dtype, source.device, source.layout,
                   source.requires_grad, source.is_conj(), source.is_neg(), tuple(order))
            found = self.conversions.get(key)
            if found is not None:
                return found
        copy = conversion_call(source, order, lambda t, a, k: run_fake(self.mode, t, a, k), self.edge)
        if key is not None:
            self.conversions[key] = copy
        return copy

    def _offer_conversion(self, info: ValueInfo, order: Order) -> None:
        """Make a copy into ``order`` available to the consumers of ``info``."""
        if not info.reps or order in info.convertible.values():
            return
        if len(info.reps) >= _MAX_LABELS_PER_VALUE:
            self._truncate("max_labels_per_value", info.value[0],
                           f"{len(info.reps)} labels kept: no copy into order {order} offered")
            return
        try:
            rep = self._convert(next(iter(info.reps.values())), order)
        except ValueError:  # a layout this dialect cannot copy into
            return
        label = label_of(rep)
        info.convertible.setdefault(label, order)
        info.reps.setdefault(label, rep)

    def _saturated(self, info: ValueInfo) -> bool:
        """No copy can be offered to ``info`` any more: it holds as many labels as the cap
        allows and the cut is already recorded, so an offer would change nothing."""
        return len(info.reps) >= _MAX_LABELS_PER_VALUE and ("max_labels_per_value", info.value[0]) in self.truncated

    def _record(self, value: Value, fake: torch.Tensor, node: Node) -> Label:
        info = self.values.get(value)
        if info is None:
            shape = static_shape(node, fake)
            # a copy of a value computed from constants alone is folded before deployment: free
            nbytes = 0 if node.name in self.folded else self.target.bytes_of(fake.numel(), fake.dtype)
            info = ValueInfo(value, shape, nbytes)
            self.values[value] = info
        label = label_of(fake)
        if label in info.reps:
            return label
        if len(info.reps) >= _MAX_LABELS_PER_VALUE:
            self._truncate("max_labels_per_value", value[0],
                           f"{len(info.reps)} labels kept: strides {label} not offered to consumers")
            return label
        info.reps[label] = fake
        # one layout but several labels (a 1x1 feature map): a free copy sets the size-1 strides
        # that eager's next kernel reads to choose its memory format (an upsample, say)
        restridable = 3 <= info.rank <= 5 and 1 in info.shape and info.rank - info.shape.count(1) >= 1
        if len(info.reps) == 1 and (distinct_layouts(info.shape) > 1 or restridable):
            for order in conversion_orders(info.rank):
                self._offer_conversion(info, order)
        return label

    def relevant(self, arg: Node) -> bool:
        """An operand the planner lays out: a non-constant tensor with more than one layout."""
        if arg.op == "get_attr" or (arg.op == "placeholder" and arg.name in self.constants):
            return False
        info = self.values.get(value_of(arg))
        return info is not None and len(info.reps) > 1

    # -- nodes --------------------------------------------------------------------------
    def placeholder(self, node: Node) -> None:
        fake = fake_value(node)
        if node.name in self.constants or not is_tensor(fake):
            return
        value = (node.name, -1)
        self._record(value, fake, node)
        info = self.values[value]
        want = layout_key(info.shape, self.io_layout.order_for(info.rank))
        if info.key(label_of(fake)) == want:
            info.fixed = label_of(fake)
        else:
            label = next(l for l in info.reps if info.key(l) == want)
            info.fixed = label

    def call(self, node: Node) -> None:
        if node.target is operator.getitem:
            return
        fam = ops.family(node.target)
        operands = [a for a in dict.fromkeys(node.all_input_nodes) if self.relevant(a)]
        if fam is ops.Family.VIEW and len(operands) == 1:
            self._offer_view_sources(node, operands[0])
        original = tuple(label_of(fake_value(a)) for a in operands)
        if fam is None and operands:  # an op that reads no plannable tensor loses nothing by being unknown
            fam, why = self._replayed_family(node, operands)
            if fam is not None:
                self.replayed.append(node.name)
            else:
                reason = f"op not in the layout table and {why}: operands kept as exported"
                self.declined.append(Declined(ops.op_name(node.target), node.name, reason))
        if fam is None:
            combos = [original]
        else:
            choices = [list(self.values[value_of(a)].reps) for a in operands]
            total = 1
            for c in choices:
                total *= len(c)
            if total <= _MAX_COMBOS:
                combos = [original] + list(itertools.product(*choices))
            else:  # many operands (a long concat): the exported labels, or all alike
                width = max(len(c) for c in choices)
                combos = [original] + [tuple(c[min(i, len(c) - 1)] for c in choices) for i in range(width)]
                self._truncate("max_combos", node.name, f"{total} operand label combinations: probed the "
                               f"exported one and {width} alike")
        found: dict[tuple, Mode] = {}
        for combo in dict.fromkeys(combos):
            for op, override in copy_variants(node):
                mode = self._probe(node, operands, combo, op, override, combo == original and op is None
                                   and not override)
                if mode is None:
                    continue
                key = (mode.needs, mode.gives)
                best = found.get(key)
                if best is None or (mode.cost, not mode.original) < (best.cost, not best.original):
                    found[key] = mode
        self.modes[node.name] = list(found.values())

    def _replayed_family(self, node: Node, operands: list[Node]) -> tuple[ops.Family | None, str]:
        """``Family.FREE`` for an op outside the table whose output follows its input's layout,
        replayed in each layout the input can take; else None and why it is a barrier."""
        args, kwargs = _substitute(node, {})
        if len(operands) != 1 or not is_unary_same_shape(args, kwargs, fake_value(node)):
            return None, "not a shape-preserving unary op"
        operand = operands[0]
        info = self.values[value_of(operand)]
        for label, rep in list(info.reps.items()):
            try:
                out = run_fake(self.mode, node.target, *_substitute(node, {operand: rep}))
            except Exception:
                return None, f"it rejects its input with strides {label}"
            if not is_tensor(out) or key_of(out) != info.key(label):
                return None, "its output does not follow its input's layout"
        return ops.Family.FREE, ""

    def _offer_view_sources(self, node: Node, operand: Node) -> None:
        """Let a copy lay out a view's source so that the view comes out contiguous or
        channels-last: this is what makes reshapes and permutes free wherever they can be."""
        info = self.values[value_of(operand)]
        out = fake_value(node)
        if not is_tensor(out):
            return
        if info.rank > _MAX_PERMUTED_RANK:
            self._truncate("max_permuted_rank", node.name,
                           f"source of rank {info.rank}: no source layout searched for a free view")
            return
        wanted = {layout_key(tuple(out.shape), o) for o in conversion_orders(out.dim())}
        source = fake_value(operand)
        for order in itertools.permutations(range(info.rank)):
            if self._saturated(info):
                return
            if any(info.key(l) == layout_key(info.shape, order) for l in info.reps):
                continue
            if not self._may_free_view(node, operand, strides_for(info.shape, order), source.dtype, wanted):
                continue
            probe = run_fake(self.mode, torch.empty_strided, (info.shape, strides_for(info.shape, order)),
                             {"dtype": source.dtype})
            try:
                result = run_fake(self.mode, node.target, *_substitute(node, {operand: probe}))
            except Exception:
                continue
            if is_tensor(result) and layout_key(tuple(result.shape), tensor_order(result)) in wanted:
                self._offer_conversion(info, tuple(order))

    def _may_free_view(self, node: Node, operand: Node, strides: tuple[int, ...], dtype: torch.dtype,
                       wanted: set) -> bool:
        """False when the view of a source with ``strides`` cannot come out in a ``wanted``
        layout, decided by the view's kernel alone on a meta tensor (a microsecond against a
        fake replay's hundreds). A view's meta kernel gives eager's strides and so does its
        replay (``ir.meta_kernel``), so a view that comes out in an unwanted layout (or as
        several tensors) is never offered; where the kernel raises (another tensor operand,
        say), or comes out wanted, the replay decides."""
        source = fake_value(operand)
        meta = torch.empty_strided(tuple(source.shape), strides, dtype=dtype, device="meta")
        args, kwargs = _substitute(node, {operand: meta})
        try:
            viewed = node.target(*args, **kwargs)
        except Exception:
            return True
        if not isinstance(viewed, torch.Tensor):
            return False
        return layout_key(tuple(viewed.shape), tensor_order(viewed)) in wanted

    def _probe(self, node: Node, operands: list[Node], combo: tuple, op: Any, override: tuple,
               is_original: bool) -> Mode | None:
        chosen = {}
        for a, label in zip(operands, combo):
            rep = self.values[value_of(a)].reps.get(label)
            chosen[a] = rep if rep is not None else fake_value(a)
        args, kwargs = _substitute(node, chosen)
        kwargs.update(dict(override))
        target = node.target if op is None else op
        try:
            out = run_probe(self.mode, target, args, kwargs)
        except Exception:  # eager rejects this layout (e.g. a view that cannot alias it)
            if not is_original:
                return None
            out = fake_value(node)
        gives = []
        if is_tensor(out):
            gives.append((-1, self._record((node.name, -1), out, node)))
        elif isinstance(out, (list, tuple)):
            for i, item in enumerate(out):
                if is_tensor(item):
                    gives.append((i, self._record((node.name, i), item, node)))
        cost = 0 if node.name in self.folded else sum(
            c.bytes for c in op_charges(node.name, target, args, kwargs, out, self.target))
        needs = tuple((value_of(a), label) for a, label in zip(operands, combo))
        return Mode(needs, tuple(gives), cost, override, is_original, op)


@torch.no_grad()
def build_problem(ep: ExportedProgram, target: Target, io_layout: IOLayout) -> Problem:
    """The layout problem of ``ep``. Built without grad: its probes read only metadata, and
    results that record no autograd history replay views and copies by their meta kernels
    (``ir.meta_kernel``)."""
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
        info = b.values.get(value)
        if info is None:
            continue
        want = layout_key(info.shape, io_layout.order_for(info.rank))
        copy = next((l for l in info.convertible if info.key(l) == want), None)
        if copy is None:  # a single-layout tensor: every label meets the contract
            copy = next(iter(info.reps))
        outputs.append((value, copy))
    return Problem(b.values, b.modes, outputs, b.declined, order, b.replayed, list(b.truncated.values()))
