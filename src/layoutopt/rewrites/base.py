"""The rule contract and the one place graph edits happen.

A rule reads a node through a ``GraphView`` (read only) and returns a ``Match`` (a frozen
dataclass of everything its rewrite needs), a ``Reject`` with its reason (the node looked like
a candidate but a precondition failed), or None (not a candidate at all). ``rewrite`` receives
only the ``Match`` and edits through ``GraphEdit``, which copies metadata instead of aliasing it
and computes ``meta["val"]`` of every node it builds. A match that then cannot be rewritten is
a bug and raises with the node and its shapes.

``GraphEdit`` is also how the rules' edge-dialect adapter (``edge.py``) and the plan writer
(``layout/materialize.py``) change a program: no other module assigns a node's target, args,
kwargs or metadata, inserts or erases nodes (``tests/rewrites/test_contract.py`` checks).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.export import ExportedProgram
from torch.fx import Node

from ..errors import InternalError
from ..ir import ops
from ..ir.access import Role, constant_value, copy_provenance, input_placeholders, role_of
from ..ir.propagate import fake_mode_of, refresh_meta, replay, run_fake
from ..layout.conversion import is_edge
from ..targets import Target


@dataclass(frozen=True)
class Reject:
    rule: str
    node: str
    op: str
    reason: str


@dataclass(frozen=True)
class Match:
    """What a rule found at ``node``; each rule subclasses it with the fields its rewrite reads."""

    node: Node


class GraphView:
    """What ``match`` may read besides the nodes themselves: the tensors behind constant
    placeholders, the program's dialect, and what an op would give on fake values. It has no
    way to change the program."""

    def __init__(self, ep: ExportedProgram):
        self._ep = ep
        self.edge = is_edge(ep)  # views are ``*_copy`` ops: copies unless dim orders line up
        self._constants = {n.name: spec for spec, n in input_placeholders(ep) if role_of(spec) is Role.CONSTANT}
        self._mode = fake_mode_of(ep.graph_module)

    def replay(self, target: Any, args: tuple, kwargs: dict | None = None) -> Any:
        """``target`` on the fake values in ``args``: what an op a rewrite would build gives,
        its strides included, without building it."""
        return run_fake(self._mode, target, args, kwargs or {})

    def constant(self, node: Any) -> torch.Tensor | None:
        """The tensor behind a parameter, buffer or lifted constant placeholder, else None."""
        if not isinstance(node, Node) or node.op != "placeholder" or node.name not in self._constants:
            return None
        return constant_value(self._ep, self._constants[node.name])


class Rule:
    """A rewrite: ``anchors`` are the op packets it looks at; the docstring states its law."""

    name: str = "rule"
    anchors: frozenset = frozenset()

    @classmethod
    def for_target(cls, target: Target, planned: bool) -> "Rule | None":
        """The rule as it runs for ``target``, or None where it does not pay there; ``planned``:
        whether layoutopt's ATen plan follows (else the backend lays tensors out, physically)."""
        return cls()

    def anchored_at(self, target: Any) -> bool:
        """Whether a node calling ``target`` is a candidate (its op packet is an anchor)."""
        return getattr(ops.canonical(target), "overloadpacket", None) in self.anchors

    def match(self, node: Node, view: GraphView) -> Match | Reject | None:
        raise NotImplementedError

    def rewrite(self, edit: "GraphEdit", m: Match) -> None:
        raise NotImplementedError

    def reject(self, node: Node, reason: str) -> Reject:
        return Reject(self.name, node.name, ops.op_name(node.target), reason)


class GraphEdit:
    """All mutation of a program goes through here."""

    def __init__(self, ep: ExportedProgram):
        self.ep = ep
        self.graph = ep.graph_module.graph
        self.view = GraphView(ep)
        self.mode = fake_mode_of(ep.graph_module)
        self._touched: list[Node] = []  # nodes built or retargeted, for ``run_rules``' index

    # -- reading ----------------------------------------------------------------------------
    @property
    def edge(self) -> bool:
        return self.view.edge

    def constant(self, node: Any) -> torch.Tensor | None:
        return self.view.constant(node)

    # -- nodes ------------------------------------------------------------------------------
    def call(self, target: Any, args: tuple, kwargs: dict | None = None, *, like: Node,
             before: Node | None = None, after: Node | None = None) -> Node:
        """A new ``target(*args, **kwargs)`` with ``like``'s provenance, before ``before`` (else
        ``like``) or after ``after``; its ``meta["val"]`` replayed from its inputs'."""
        kwargs = kwargs or {}
        where = self.graph.inserting_after(after) if after is not None else self.graph.inserting_before(
            before if before is not None else like)
        with where:
            node = self.graph.call_function(target, args, kwargs)
        copy_provenance(like, node)
        try:
            node.meta["val"] = replay(self.mode, node)
        except Exception as exc:
            raise InternalError(f"an edit built an invalid {ops.op_name(target)} next to '{like.name}': "
                                f"{type(exc).__name__}: {exc}") from exc
        self._touched.append(node)
        return node

    def retarget(self, node: Node, target: Any = None, *, args: tuple | None = None,
                 kwargs: dict | None = None) -> None:
        """Give ``node`` another op, args or kwargs (None keeps each); ``refresh`` recomputes
        its value once its inputs are final."""
        if target is not None:
            node.target = target
            self._touched.append(node)
        if args is not None:
            node.args = tuple(args)
        if kwargs is not None:
            node.kwargs = dict(kwargs)

    def replace_input(self, node: Node, old: Node, new: Node) -> None:
        """``node`` reads ``new`` wherever it read ``old``."""
        node.replace_input_with(old, new)

    def replace(self, old: Node, new: Node) -> None:
        """Every reader of ``old`` reads ``new``; ``old`` is erased once nothing reads it."""
        old.replace_all_uses_with(new)
        if not old.users:
            self.graph.erase_node(old)

    def erase_if_dead(self, *nodes: Node) -> None:
        """Erase each of ``nodes``, in the order given, that is an op nothing reads any more
        (list a chain from consumer to producer to erase all of it)."""
        for node in nodes:
            if node.op == "call_function" and not node.users and not getattr(node, "_erased", False):
                self.graph.erase_node(node)

    # -- values -----------------------------------------------------------------------------
    def refresh(self, node: Node) -> None:
        """Recompute ``meta["val"]`` of ``node`` after its inputs changed shape or layout."""
        node.meta["val"] = replay(self.mode, node)

    def set_value(self, node: Node, value: Any) -> None:
        """State ``node``'s value (a fake tensor) where it is decided, not computed: a plan
        fixes the layout of an input."""
        node.meta["val"] = value

    def add_constant(self, name: str, value: torch.Tensor, before: Node) -> Node:
        """A new lifted parameter holding ``value`` (made at compile time), as a placeholder
        among the program's other parameters; ``before`` is where its reader will be."""
        from torch.export.graph_signature import InputKind, InputSpec, TensorArgument

        specs = self.ep.graph_signature.input_specs
        taken = {n.name for n in self.graph.nodes} | set(self.ep.state_dict) | set(self.ep.constants)
        target, i = name, 0
        while target in taken:
            i += 1
            target = f"{name}_{i}"
        pairs = input_placeholders(self.ep)
        first_user = next((i for i, (spec, _) in enumerate(pairs) if role_of(spec) is Role.USER), len(pairs))
        anchor = pairs[first_user][1] if first_user < len(pairs) else before
        with self.graph.inserting_before(anchor if first_user < len(pairs) else next(iter(self.graph.nodes))):
            node = self.graph.placeholder(target)
        node.meta["val"] = self.mode.from_tensor(value, static_shapes=True)
        spec = InputSpec(kind=InputKind.PARAMETER, arg=TensorArgument(name=node.name), target=target, persistent=None)
        specs.insert(first_user, spec)
        self.ep.state_dict[target] = torch.nn.Parameter(value.contiguous(), requires_grad=False)
        self.view._constants[node.name] = spec
        return node

    def relayout_constant(self, node: Node, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace the tensor behind a constant placeholder with ``fn`` of it (compile time)."""
        target = self.view._constants[node.name].target
        old = self.constant(node)
        new = fn(old.detach())
        if isinstance(old, torch.nn.Parameter):
            new = torch.nn.Parameter(new.contiguous(), requires_grad=old.requires_grad)
        if target in self.ep.state_dict:
            self.ep.state_dict[target] = new
        else:
            self.ep.constants[target] = new
        node.meta["val"] = self.mode.from_tensor(new, static_shapes=True)

    def finish(self, refresh: bool = False) -> None:
        """Check the graph and regenerate the program's code after the edits; with ``refresh``,
        recompute every node's ``meta["val"]`` in graph order (strides downstream of an edit
        may be stale, and eager's kernels read them)."""
        self.graph.lint()
        self.ep.graph_module.recompile()
        if refresh:
            refresh_meta(self.ep.graph_module)

    def _take_touched(self) -> list[Node]:
        touched, self._touched = self._touched, []
        return touched


@dataclass
class RewriteLog:
    applied: Counter = field(default_factory=Counter)
    rejects: list[Reject] = field(default_factory=list)


class _Candidates:
    """The call nodes of a graph by target, indexed once a round and kept up to date with the
    nodes the round's rewrites build or retarget: a rule visits only the nodes of its anchors."""

    def __init__(self, edit: GraphEdit):
        self.edit = edit
        edit._take_touched()
        self.by_target: dict[Any, list[Node]] = {}
        for node in edit.graph.nodes:
            if node.op == "call_function":
                self.by_target.setdefault(node.target, []).append(node)
        self.anchored: dict[tuple[int, Any], bool] = {}

    def is_anchor(self, rule: Rule, target: Any) -> bool:
        key = (id(rule), target)
        found = self.anchored.get(key)
        if found is None:
            found = self.anchored[key] = bool(rule.anchored_at(target))
        return found

    def of(self, rule: Rule) -> list[Node]:
        """The live nodes ``rule`` is anchored at, in graph order."""
        for node in self.edit._take_touched():
            self.by_target.setdefault(node.target, []).append(node)
        found = {node for target, nodes in self.by_target.items() if self.is_anchor(rule, target)
                 for node in nodes if node.target is target and not getattr(node, "_erased", False)}
        return sorted(found)  # nodes compare by their position in the graph


def run_rules(edit: GraphEdit, rules: list[Rule], max_rounds: int = 20) -> RewriteLog:
    """Apply ``rules`` until none matches; rejects are those standing at the fixed point.

    Each round runs the rules in order, each over the nodes of its anchors in graph order (the
    nodes earlier rules of the round built included, those it builds itself left to the next
    round)."""
    log = RewriteLog()
    for _ in range(max_rounds):
        changed = False
        rejects: dict[tuple[str, str], Reject] = {}
        candidates = _Candidates(edit)
        for rule in rules:
            for node in candidates.of(rule):
                if getattr(node, "_erased", False) or not candidates.is_anchor(rule, node.target):
                    continue  # erased or retargeted by an earlier rewrite of this pass
                try:
                    found = rule.match(node, edit.view)
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
