"""Proof that a plan changed nothing: run both programs on the same seeded inputs.

Every graph node is also checked against its ``meta["val"]``: the strides eager PyTorch really
produces must give the layout the plan states, or the plan's figures would not be the truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch.export import ExportedProgram
from torch.fx import Interpreter, Node

from ..errors import InputError
from ..ir.access import Role, constant_value, is_tensor, role_of, tensor_order, user_input_nodes
from ..ir.perm import layout_key


def seeded_inputs(ep: ExportedProgram, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random user inputs shaped like the program's, from a fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for node in user_input_nodes(ep):
        name = node.name
        val = node.meta.get("val")
        if not is_tensor(val):
            raise InputError(f"input '{name}' is not a tensor; pass example inputs explicitly")
        shape = tuple(int(s) for s in val.shape)
        if val.dtype.is_floating_point:
            t = torch.randn(shape, generator=gen, dtype=torch.float32).to(val.dtype)
        elif val.dtype == torch.bool:
            t = torch.randint(0, 2, shape, generator=gen).bool()
        else:
            t = torch.randint(0, 4, shape, generator=gen).to(val.dtype)
        out.append(t)
    return tuple(out)


def laid_out_like(inputs: Sequence[torch.Tensor], ep: ExportedProgram) -> tuple[torch.Tensor, ...]:
    """``inputs`` copied into the layout the program's user-input placeholders state."""
    out = []
    for node, t in zip(user_input_nodes(ep), inputs):
        val = node.meta.get("val")
        if is_tensor(t) and is_tensor(val) and tuple(t.shape) == tuple(val.shape):
            t2 = torch.empty_strided(t.shape, val.stride(), dtype=t.dtype)
            t2.copy_(t)
            t = t2
        out.append(t)
    return tuple(out)


class _StrideChecker(Interpreter):
    def __init__(self, gm: torch.fx.GraphModule):
        super().__init__(gm)
        self.mismatches: list[str] = []

    def run_node(self, n: Node) -> Any:
        result = super().run_node(n)
        planned = n.meta.get("val")
        if n.op == "call_function" and is_tensor(result) and is_tensor(planned):
            shape = tuple(result.shape)
            if layout_key(shape, tensor_order(result)) != layout_key(shape, tensor_order(planned)):
                self.mismatches.append(n.name)
        return result


def run_program(ep: ExportedProgram, inputs: Sequence[torch.Tensor]) -> tuple[list[Any], list[str]]:
    """User outputs of ``ep`` on ``inputs``, and the nodes whose real layout differs from meta."""
    flat = []
    user = iter(inputs)
    for spec in ep.graph_signature.input_specs:
        role = role_of(spec)
        if role is Role.USER:
            flat.append(next(user))
        elif role is Role.CONSTANT:
            flat.append(constant_value(ep, spec))
        else:
            raise InputError(f"input kind {spec.kind.name} is not supported")
    checker = _StrideChecker(ep.graph_module)
    with torch.no_grad():
        outs = checker.run(*flat)
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    user_outs = [o for o, s in zip(outs, ep.graph_signature.output_specs) if role_of(s) is Role.USER]
    return user_outs, checker.mismatches


@dataclass
class Verification:
    max_abs_diff: float
    bit_exact: bool
    layout_mismatches: list[str]
    inputs_seed: int


def compare(before: ExportedProgram, after: ExportedProgram, inputs: Sequence[torch.Tensor] | None,
            seed: int = 0) -> Verification:
    if inputs is None:
        inputs = seeded_inputs(before, seed)
    ref, _ = run_program(before, inputs)
    got, mismatches = run_program(after, laid_out_like(inputs, after))
    worst, exact = 0.0, True
    if len(ref) != len(got):
        raise AssertionError(f"output count changed: {len(ref)} -> {len(got)}")
    for a, b in zip(ref, got):
        if not is_tensor(a):
            exact = exact and a == b
            continue
        if a.shape != b.shape or a.dtype != b.dtype:
            raise AssertionError(f"output changed shape or dtype: {tuple(a.shape)} {a.dtype} -> "
                                 f"{tuple(b.shape)} {b.dtype}")
        if not torch.equal(a, b):
            exact = False
            if a.is_floating_point():
                worst = max(worst, float((a.double() - b.double()).abs().max()))
            else:
                worst = max(worst, float((a.long() - b.long()).abs().max()))
    return Verification(worst, exact, mismatches, seed)
