"""What a layout costs: the bytes an NHWC backend really moves for one op, and for a graph.

One op is charged
* for data movement, when it is a view or copy whose output lists the elements in a different
  memory sequence than its input (a view that keeps the sequence is free, a copy that keeps
  it is a plain copy, not a transpose);
* for every activation operand, and the output, of an op whose target kernel needs a layout
  (channels-last, or the last dim innermost) it does not get: the conversion it forces;
* for every operand of an elementwise-style op (the ``FREE`` family, and an op outside the op
  table that reads one tensor and writes one of its shape) read in another layout than the
  output's.
A graph is further charged for each user input and output whose layout breaks the I/O contract.
The planner minimises exactly this sum, and the report measures it before and after.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import is_tensor, leaves, tensor_order
from ..ir.ops import Family
from ..ir.perm import Order, Perm, channels_last_order, identity_order, layout_key, order_after_permute
from ..targets import Target


class IOLayout(enum.Enum):
    """The layout user inputs and outputs keep (channels-last applies to ranks 4 and 5)."""

    CONTIGUOUS = "contiguous"
    CHANNELS_LAST = "channels_last"

    @staticmethod
    def parse(value: "str | IOLayout") -> "IOLayout":
        if isinstance(value, IOLayout):
            return value
        try:
            return IOLayout(value)
        except ValueError:
            from ..errors import InputError

            raise InputError(f"io_layout must be 'contiguous' or 'channels_last', not '{value}'") from None

    def order_for(self, rank: int) -> Order:
        if self is IOLayout.CHANNELS_LAST and rank in (4, 5):
            return channels_last_order(rank)
        return identity_order(rank)


def key_of(value: torch.Tensor) -> Order:
    return layout_key(tuple(value.shape), tensor_order(value))


def bind_args(target: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments of a call by schema name."""
    schema = getattr(ops.aten_overload(target), "_schema", None)
    if schema is None:
        return {}
    bound = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(args):
            bound[arg.name] = args[i]
        elif arg.name in kwargs:
            bound[arg.name] = kwargs[arg.name]
    return bound


def required_key(fam: Family | None, target: Target, value: torch.Tensor) -> Order | None:
    """The layout key a target kernel of family ``fam`` needs for ``value``, or None for any."""
    shape = tuple(value.shape)
    rank = len(shape)
    if fam in target.channels_last and rank >= 3:
        return layout_key(shape, channels_last_order(rank))
    if fam in target.dense_last and rank >= 2:
        # the reduced dim innermost; the other dims keep eager's row-major order
        return layout_key(shape, identity_order(rank))
    return None


def _first_tensor(values: Iterable[Any]) -> torch.Tensor | None:
    for v in values:
        if is_tensor(v):
            return v
        if isinstance(v, (list, tuple)):
            inner = _first_tensor(v)
            if inner is not None:
                return inner
    return None


def _output_tensors(out: Any) -> list[torch.Tensor]:
    if is_tensor(out):
        return [out]
    if isinstance(out, (list, tuple)):
        return [v for v in out if is_tensor(v)]
    return []


@lru_cache(maxsize=65536)
def _sequence_changed_by_replay(target: Any, in_shape: tuple, in_order: Order, out_order: Order,
                                out_index: int, frozen_args: tuple) -> bool:
    """Replay a view/copy op on the element indices and compare memory sequences."""
    numel = 1
    for s in in_shape:
        numel *= s
    dtype = torch.int32 if numel < 2**31 else torch.int64
    logical = torch.arange(numel, dtype=dtype).reshape(in_shape)
    args, kwargs = _thaw(frozen_args, logical)
    kwargs.pop("dtype", None)
    kwargs.pop("memory_format", None)
    out = target(*args, **kwargs)
    out = out[out_index] if out_index >= 0 else out
    seq_in = logical.permute(in_order).reshape(-1)
    seq_out = out.permute(out_order).reshape(-1)
    if seq_out.numel() != seq_in.numel():
        kept = torch.zeros(numel, dtype=torch.bool)
        kept[seq_out.long()] = True
        seq_in = seq_in[kept[seq_in.long()]]
        if seq_in.numel() != seq_out.numel():  # broadcasting repeats elements: not a transpose
            return False
    return not torch.equal(seq_in, seq_out)


_SELF = "__self__"


def _freeze(args: tuple, kwargs: dict, source: torch.Tensor) -> tuple:
    def f(v):
        if v is source:
            return _SELF
        if is_tensor(v):
            raise TypeError("second tensor operand")
        if isinstance(v, (list, tuple)):
            return tuple(f(x) for x in v)
        if isinstance(v, torch.SymInt):
            raise TypeError("symbolic argument")
        return v

    return (tuple(f(a) for a in args), tuple(sorted((k, f(v)) for k, v in kwargs.items())))


def _thaw(frozen: tuple, logical: torch.Tensor) -> tuple[list, dict]:
    def t(v):
        if isinstance(v, str) and v == _SELF:
            return logical
        if isinstance(v, tuple):
            return [t(x) for x in v]
        return v

    fargs, fkwargs = frozen
    return [t(a) for a in fargs], {k: t(v) for k, v in fkwargs}


def sequence_changed(target: Any, args: tuple, kwargs: dict, source: torch.Tensor,
                     out: torch.Tensor, out_index: int) -> bool:
    """Whether ``out`` lists the elements of ``source`` in another memory sequence."""
    fam = ops.family(target)
    in_shape, out_shape = tuple(source.shape), tuple(out.shape)
    in_order, out_order = tensor_order(source), tensor_order(out)
    if fam is Family.COPY and in_shape == out_shape:
        return layout_key(in_shape, in_order) != layout_key(out_shape, out_order)
    overload = ops.aten_overload(target)
    if getattr(overload, "overloadpacket", None) in (ops.aten.permute, ops.aten.permute_copy):
        dims = bind_args(target, args, kwargs)["dims"]
        perm = Perm(tuple(d % len(in_shape) for d in dims))
        return layout_key(out_shape, order_after_permute(in_order, perm)) != layout_key(out_shape, out_order)
    if getattr(overload, "overloadpacket", None) in (ops.aten.slice, ops.aten.slice_copy):
        # a slice keeps a box of the elements (every step-th along one dim): listed in any one
        # dim order, they keep the input's sequence restricted to the box
        return layout_key(out_shape, in_order) != layout_key(out_shape, out_order)
    try:
        frozen = _freeze(args, kwargs, source)
    except TypeError:
        return False
    return _sequence_changed_by_replay(overload, in_shape, in_order, out_order, out_index, frozen)


@dataclass(frozen=True)
class Charge:
    """One conversion: ``kind`` is 'movement', 'forced' or 'contract'."""

    node: str
    kind: str
    bytes: int
    detail: str


def op_charges(node_name: str, target_op: Any, args: tuple, kwargs: dict, out: Any,
               target: Target) -> list[Charge]:
    """The conversions one op costs with operands ``args``/``kwargs`` producing ``out``."""
    fam = ops.family(target_op)
    charges: list[Charge] = []
    outs = _output_tensors(out)
    if fam in ops.DATA_MOVEMENT_FAMILIES:
        source = _first_tensor(args)
        if source is not None:
            for i, o in enumerate(outs):
                index = i if isinstance(out, (list, tuple)) else -1
                if sequence_changed(target_op, args, kwargs, source, o, index):
                    charges.append(Charge(node_name, "movement", target.bytes_of(o.numel(), o.dtype),
                                          f"{ops.op_name(target_op)} reorders memory"))
        return charges
    if outs and (fam is Family.FREE or fam is None and is_unary_same_shape(args, kwargs, out)):
        charges.extend(_mixed_operand_charges(node_name, target_op, args, kwargs, outs[0], target))
    names = ops.activation_arg_names(target_op)
    if not names:
        return charges
    bound = bind_args(target_op, args, kwargs)
    for name in names:
        value = bound.get(name)
        if not is_tensor(value):
            continue
        want = required_key(fam, target, value)
        if want is not None and key_of(value) != want:
            charges.append(Charge(node_name, "forced", target.bytes_of(value.numel(), value.dtype),
                                  f"{name} of {ops.op_name(target_op)} needs another layout"))
    if outs and fam in target.channels_last:
        want = required_key(fam, target, outs[0])
        if want is not None and key_of(outs[0]) != want:
            charges.append(Charge(node_name, "forced", target.bytes_of(outs[0].numel(), outs[0].dtype),
                                  f"output of {ops.op_name(target_op)} leaves the kernel's layout"))
    return charges


def _tensor_operands(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    return [v for v in leaves((args, kwargs)) if is_tensor(v)]


def is_unary_same_shape(args: tuple, kwargs: dict, out: Any) -> bool:
    """A call that reads one tensor and writes one tensor of its shape."""
    operands = list(dict.fromkeys(_tensor_operands(args, kwargs)))
    return is_tensor(out) and len(operands) == 1 and tuple(operands[0].shape) == tuple(out.shape)


def _mixed_operand_charges(node_name: str, target_op: Any, args: tuple, kwargs: dict,
                           out: torch.Tensor, target: Target) -> list[Charge]:
    """An elementwise-style op reads every operand in its output's layout; an operand laid out
    otherwise is a transpose on an NHWC backend even though eager reads it strided.
    Dims are aligned from the right (broadcasting); only dims sized above 1 on both sides count."""
    out_shape = tuple(out.shape)
    out_order = tensor_order(out)
    charges = []
    for operand in dict.fromkeys(_tensor_operands(args, kwargs)):
        shape = tuple(operand.shape)
        if len(shape) > len(out_shape) or operand.numel() <= 1:
            continue
        offset = len(out_shape) - len(shape)
        shared = [d for d in range(len(shape)) if shape[d] != 1 and out_shape[d + offset] != 1]
        if len(shared) < 2:
            continue
        own = [d for d in tensor_order(operand) if d in shared]
        theirs = [d - offset for d in out_order if d - offset in shared]
        if own != theirs:
            charges.append(Charge(node_name, "forced", target.bytes_of(operand.numel(), operand.dtype),
                                  f"operand of {ops.op_name(target_op)} is read in another layout"))
    return charges


@dataclass
class Measurement:
    charges: list[Charge] = field(default_factory=list)

    @property
    def transposes(self) -> int:
        return len(self.charges)

    @property
    def bytes(self) -> int:
        return sum(c.bytes for c in self.charges)


def measure(graph_nodes: Iterable[Node], user_inputs: set[str], user_outputs: list[Node],
            target: Target, io_layout: IOLayout) -> Measurement:
    """Charges of a whole graph whose ``meta["val"]`` strides state its layouts."""
    from torch.fx.node import map_arg

    m = Measurement()
    folded = constant_folded(graph_nodes, user_inputs)
    for node in graph_nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            m.charges.extend(contract_charges(node.name, node.meta.get("val"), target, io_layout, "input"))
        elif node.op == "call_function" and node.name not in folded:
            args = map_arg(node.args, lambda n: n.meta.get("val"))
            kwargs = map_arg(node.kwargs, lambda n: n.meta.get("val"))
            m.charges.extend(op_charges(node.name, node.target, args, kwargs, node.meta.get("val"), target))
    for out in user_outputs:
        m.charges.extend(contract_charges(out.name, out.meta.get("val"), target, io_layout, "output"))
    return m


def constant_folded(graph_nodes: Iterable[Node], user_inputs: set[str]) -> set[str]:
    """Nodes computed from constants alone (a weight's permute, say): folded before deployment,
    so they cost nothing at run time."""
    folded: set[str] = set()
    for node in graph_nodes:
        if node.op == "placeholder" and node.name not in user_inputs:
            folded.add(node.name)
        elif node.op == "call_function" and node.all_input_nodes and all(
                a.name in folded for a in node.all_input_nodes):
            folded.add(node.name)
    return folded


def contract_charges(name: str, value: Any, target: Target, io_layout: IOLayout, role: str) -> list[Charge]:
    if not is_tensor(value):
        return []
    shape = tuple(value.shape)
    if key_of(value) == layout_key(shape, io_layout.order_for(len(shape))):
        return []
    return [Charge(name, "contract", target.bytes_of(value.numel(), value.dtype),
                   f"{role} breaks the {io_layout.value} I/O contract")]
