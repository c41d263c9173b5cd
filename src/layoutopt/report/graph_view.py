"""A drawable summary of a program: its ops, the layout of each op's output, where the
conversions are and what they cost, grouped by the module that produced each op."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.fx import Node

from ..ir import ops
from ..ir.access import Role, fake_value, is_tensor, role_of, tensor_order
from ..ir.perm import channels_last_order, identity_order, layout_key


@dataclass(frozen=True)
class OpView:
    name: str
    op: str  # short op name, e.g. "convolution"
    shape: tuple[int, ...]
    layout: str  # "channels_last", "contiguous", "other" or "none" (no tensor, or rank-agnostic)
    module: tuple[str, ...]  # module path, outermost first ("" entries dropped)
    inputs: tuple[str, ...]
    conversion_bytes: int = 0  # bytes this op moves to convert layout (0 when it does not)
    conversion: str = ""


@dataclass
class GraphView:
    ops: list[OpView] = field(default_factory=list)

    def by_name(self) -> dict[str, OpView]:
        return {o.name: o for o in self.ops}


def layout_class(value) -> str:
    if not is_tensor(value) or value.dim() < 3:
        return "none"
    shape = tuple(int(s) for s in value.shape)
    key = layout_key(shape, tensor_order(value))
    if key == layout_key(shape, identity_order(value.dim())):
        return "contiguous"
    if key == layout_key(shape, channels_last_order(value.dim())):
        return "channels_last"
    return "other"


def _module_path(node: Node) -> tuple[str, ...]:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ()
    path, _ = list(stack.values())[-1]
    return tuple(part for part in str(path).replace("L['self'].", "").split(".") if part)


def view_of(program: torch.export.ExportedProgram, charges) -> GraphView:
    """The ops of ``program`` (placeholders that are weights are left out) with ``charges``
    (``Charge`` objects or dicts with node, bytes, detail) attached to the ops they name."""
    cost: dict[str, list] = {}
    for c in charges:
        name, nbytes, detail = (c["node"], c["bytes"], c["detail"]) if isinstance(c, dict) else (
            c.node, c.bytes, c.detail)
        cost.setdefault(name, []).append((nbytes, detail))
    user_inputs = {spec.arg.name for spec in program.graph_signature.input_specs if role_of(spec) is Role.USER}
    view = GraphView()
    kept: set[str] = set()
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name not in user_inputs:
            continue
        if node.op not in ("placeholder", "call_function", "output"):
            continue
        value = fake_value(node) if node.op != "output" else None
        shape = tuple(int(s) for s in value.shape) if is_tensor(value) else ()
        label = {"placeholder": "input", "output": "output"}.get(node.op) or _short(node.target)
        inputs = tuple(a.name for a in node.all_input_nodes if a.name in kept)
        paid = cost.get(node.name, [])
        view.ops.append(OpView(node.name, label, shape, layout_class(value), _module_path(node), inputs,
                               sum(b for b, _ in paid), "; ".join(d for _, d in paid)))
        kept.add(node.name)
    return view


def _short(target) -> str:
    name = ops.op_name(target)
    parts = name.split(".")
    return parts[1] if len(parts) >= 2 and parts[0] in ("aten", "dim_order_ops", "quantized_decomposed") else name
