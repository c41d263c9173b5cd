"""The rule contract and the one place graph edits happen.

A rule reads a node and returns a ``Match`` (everything the rewrite needs), a ``Reject`` with
its reason (the node looked like a candidate but a precondition failed), or None (not a
candidate at all). ``rewrite`` receives only the ``Match`` and edits through ``GraphEdit``,
which copies metadata instead of aliasing it and computes ``meta["val"]`` of every new node.
A match that then cannot be rewritten is a bug and raises with the node and its shapes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind
from torch.fx import Node

from ..errors import InternalError
from ..ir import ops
from ..ir.access import copy_provenance, input_placeholders
from ..ir.propagate import fake_mode_of, replay
from ..layout.conversion import is_edge


@dataclass(frozen=True)
class Reject:
    rule: str
    node: str
    op: str
    reason: str


@dataclass(frozen=True)
class Match:
    node: Node
    parts: dict = field(default_factory=dict, hash=False, compare=False)

    def __getitem__(self, key: str) -> Any:
        return self.parts[key]


class Rule:
    """A rewrite: ``anchors`` are the op packets it looks at; the docstring states its law."""

    name: str = "rule"
    anchors: frozenset = frozenset()

    def applies(self, node: Node) -> bool:
        """Whether ``node`` is worth matching at all (its op is one of the anchors)."""
        return ops.packet_of(node) in self.anchors

    def match(self, node: Node, edit: "GraphEdit") -> Match | Reject | None:
        raise NotImplementedError

    def rewrite(self, edit: "GraphEdit", m: Match) -> None:
        raise NotImplementedError

    def reject(self, node: Node, reason: str) -> Reject:
        return Reject(self.name, node.name, ops.op_name(node.target), reason)


class GraphEdit:
    """All mutation of a program by rules goes through here."""

    def __init__(self, ep: ExportedProgram):
        self.ep = ep
        self.graph = ep.graph_module.graph
        self.edge = is_edge(ep)  # views are ``*_copy`` ops: copies unless dim orders line up
        self.mode = fake_mode_of(ep.graph_module)
        kinds = {InputKind.PARAMETER: "param", InputKind.BUFFER: "buffer",
                 InputKind.CONSTANT_TENSOR: "constant"}
        self._constants = {n.name: (kinds[s.kind], s.target) for s, n in input_placeholders(ep)
                           if s.kind in kinds}

    # -- reading ----------------------------------------------------------------------------
    def constant(self, node: Node) -> torch.Tensor | None:
        """The tensor behind a parameter, buffer or lifted constant placeholder, else None."""
        if not isinstance(node, Node) or node.op != "placeholder" or node.name not in self._constants:
            return None
        _, target = self._constants[node.name]
        value = self.ep.state_dict.get(target)
        return value if value is not None else self.ep.constants.get(target)

    # -- writing ----------------------------------------------------------------------------
    def call(self, target: Any, args: tuple, kwargs: dict | None = None, *, like: Node,
             before: Node | None = None, after: Node | None = None) -> Node:
        kwargs = kwargs or {}
        where = self.graph.inserting_after(after) if after is not None else self.graph.inserting_before(
            before if before is not None else like)
        with where:
            node = self.graph.call_function(target, args, kwargs)
        copy_provenance(like, node)
        try:
            node.meta["val"] = replay(self.mode, node)
        except Exception as exc:
            raise InternalError(f"rewrite built an invalid {ops.op_name(target)} next to '{like.name}': "
                                f"{type(exc).__name__}: {exc}") from exc
        return node

    def refresh(self, node: Node) -> None:
        """Recompute ``meta["val"]`` of ``node`` after its inputs changed shape or layout."""
        node.meta["val"] = replay(self.mode, node)

    def replace(self, old: Node, new: Node) -> None:
        old.replace_all_uses_with(new)
        if not old.users:
            self.graph.erase_node(old)

    def erase_if_dead(self, node: Node) -> None:
        if node.op == "call_function" and not node.users:
            self.graph.erase_node(node)

    def finish(self) -> None:
        """Check the graph and regenerate the program's code after the edits."""
        self.graph.lint()
        self.ep.graph_module.recompile()

    def add_constant(self, name: str, value: torch.Tensor, before: Node) -> Node:
        """A new lifted parameter holding ``value`` (made at compile time), as a placeholder
        among the program's other parameters; ``before`` is where its reader will be."""
        from torch.export.graph_signature import InputSpec, TensorArgument

        specs = self.ep.graph_signature.input_specs
        taken = {n.name for n in self.graph.nodes} | set(self.ep.state_dict) | set(self.ep.constants)
        target, i = name, 0
        while target in taken:
            i += 1
            target = f"{name}_{i}"
        pairs = input_placeholders(self.ep)
        first_user = next((i for i, (spec, _) in enumerate(pairs) if spec.kind is InputKind.USER_INPUT),
                          len(pairs))
        anchor = pairs[first_user][1] if first_user < len(pairs) else before
        with self.graph.inserting_before(anchor if first_user < len(pairs) else next(iter(self.graph.nodes))):
            node = self.graph.placeholder(target)
        node.meta["val"] = self.mode.from_tensor(value, static_shapes=True)
        specs.insert(first_user, InputSpec(kind=InputKind.PARAMETER, arg=TensorArgument(name=node.name),
                                           target=target, persistent=None))
        self.ep.state_dict[target] = torch.nn.Parameter(value.contiguous(), requires_grad=False)
        self._constants[node.name] = ("param", target)
        return node

    def relayout_constant(self, node: Node, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace the tensor behind a constant placeholder with ``fn`` of it (compile time)."""
        kind, target = self._constants[node.name]
        old = self.constant(node)
        new = fn(old.detach())
        if kind == "param":
            new = torch.nn.Parameter(new.contiguous(), requires_grad=old.requires_grad)
        if target in self.ep.state_dict:
            self.ep.state_dict[target] = new
        else:
            self.ep.constants[target] = new
        node.meta["val"] = self.mode.from_tensor(new, static_shapes=True)


@dataclass
class RewriteLog:
    applied: Counter = field(default_factory=Counter)
    rejects: list[Reject] = field(default_factory=list)


def run_rules(edit: GraphEdit, rules: list[Rule], max_rounds: int = 20) -> RewriteLog:
    """Apply ``rules`` until none matches; rejects are those standing at the fixed point."""
    log = RewriteLog()
    for _ in range(max_rounds):
        changed = False
        rejects: dict[tuple[str, str], Reject] = {}
        for rule in rules:
            for node in list(edit.graph.nodes):
                if getattr(node, "_erased", False) or node.op != "call_function":
                    continue
                if not rule.applies(node):
                    continue
                try:
                    found = rule.match(node, edit)
                except Exception as exc:  # an odd graph: decline, since nothing was changed yet
                    found = rule.reject(node, f"could not analyse the node ({type(exc).__name__}: {exc})")
                if isinstance(found, Reject):
                    rejects[(rule.name, node.name)] = found
                elif isinstance(found, Match):
                    try:
                        rule.rewrite(edit, found)
                    except InternalError:
                        raise
                    except Exception as exc:  # a rule bug: the graph may be half edited
                        raise InternalError(f"{rule.name} failed on node '{node.name}': "
                                            f"{type(exc).__name__}: {exc}") from exc
                    log.applied[rule.name] += 1
                    changed = True
        if not changed:
            log.rejects = list(rejects.values())
            break
    else:
        raise InternalError(f"rewrites did not settle in {max_rounds} rounds: {dict(log.applied)}")
    return log
