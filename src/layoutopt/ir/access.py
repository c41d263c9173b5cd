"""Reading graph nodes: arguments by schema name, tensor metadata from ``meta["val"]``, the
permutation a permute applies, and the role of each input and output of a program."""
from __future__ import annotations

import enum
from typing import Any, Iterator

import torch
from torch.export.graph_signature import InputKind, OutputKind
from torch.fx import Node

from ..errors import UnsupportedError
from . import ops
from .perm import Order, Perm, order_of


def fake_value(node: Node) -> Any:
    return node.meta.get("val")


_PROVENANCE = ("stack_trace", "nn_module_stack", "source_fn_stack", "from_node", "torch_fn")


def copy_provenance(source: Node, node: Node) -> None:
    """Give a node built in place of ``source`` its stack trace and module path (copies, never
    the same dict or list object)."""
    for key in _PROVENANCE:
        if key in source.meta:
            value = source.meta[key]
            node.meta[key] = dict(value) if isinstance(value, dict) else (
                list(value) if isinstance(value, list) else value)


def leaves(value: Any) -> list:
    """The leaves of the tuples, lists and dicts op arguments are made of: a walk over those
    few container types, in place of a general tree flatten, for calls made per replay."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in leaves(v)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    return [value]


def map_leaves(value: Any, fn) -> Any:
    """``value`` with ``fn`` applied to each leaf (``leaves``), its containers rebuilt."""
    if isinstance(value, (tuple, list)):
        return type(value)(map_leaves(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: map_leaves(v, fn) for k, v in value.items()}
    return fn(value)


def is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def static_shape(node: Node, value: torch.Tensor) -> tuple[int, ...]:
    """The shape of ``value`` as ints; symbolic sizes are refused with the node's name."""
    dims = []
    for size in value.shape:
        if not isinstance(size, int):
            raise UnsupportedError(
                f"node '{node.name}' has a dynamic size ({size}); export with static shapes "
                "(no torch.export.Dim) to plan layouts"
            )
        dims.append(size)
    return tuple(dims)


def tensor_order(value: torch.Tensor) -> Order:
    return order_of(tuple(value.shape), tuple(value.stride()))


def arg_by_name(node: Node, name: str) -> Any:
    """The argument of ``node`` called ``name`` in its schema, positional or keyword."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        raise KeyError(f"{node.name}: no schema to find argument '{name}'")
    for i, arg in enumerate(schema.arguments):
        if arg.name == name:
            if i < len(node.args):
                return node.args[i]
            return node.kwargs.get(name, arg.default_value)
    raise KeyError(f"{node.name}: no argument '{name}' in {schema.name}")


def tensor_outputs(node: Node) -> Iterator[tuple[int, torch.Tensor]]:
    """``(index, value)`` for each tensor ``node`` produces; index -1 for a single tensor."""
    value = fake_value(node)
    if is_tensor(value):
        yield -1, value
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            if is_tensor(item):
                yield i, item


def as_perm(node: Any) -> Perm | None:
    """The permutation a ``permute``/``transpose``/``t`` node (or its edge ``*_copy``) applies, or None."""
    if not isinstance(node, Node) or node.op != "call_function":
        return None
    overload = ops.canonical(node.target)
    if overload not in (ops.aten.permute.default, ops.aten.transpose.int, ops.aten.t.default):
        return None
    source = fake_value(node.args[0]) if isinstance(node.args[0], Node) else None
    if not isinstance(source, torch.Tensor):
        return None
    rank = source.dim()
    if overload is ops.aten.permute.default:
        return Perm(tuple(d % rank for d in node.args[1]))
    dims = list(range(rank))
    if rank < 2:
        return Perm(tuple(dims))
    a, b = (node.args[1] % rank, node.args[2] % rank) if len(node.args) == 3 else (0, 1)
    dims[a], dims[b] = dims[b], dims[a]
    return Perm(tuple(dims))


class Role(enum.Enum):
    """What an input or output of an exported program is to layoutopt."""

    USER = "user"  # an input the caller passes or an output the caller reads: its layout is theirs
    CONSTANT = "constant"  # a parameter, buffer or lifted tensor constant: its value is known now
    OBJECT = "object"  # a script object
    OTHER = "other"  # tokens, mutated buffers, gradients


_ROLES = {InputKind.USER_INPUT: Role.USER, OutputKind.USER_OUTPUT: Role.USER, InputKind.PARAMETER: Role.CONSTANT,
          InputKind.BUFFER: Role.CONSTANT, InputKind.CONSTANT_TENSOR: Role.CONSTANT, InputKind.CUSTOM_OBJ: Role.OBJECT}


def role_of(spec: Any) -> Role:
    """The role of an input or output spec of a graph signature: the one reading of its kind."""
    return _ROLES.get(spec.kind, Role.OTHER)


def constant_value(ep, spec: Any) -> torch.Tensor | None:
    """The tensor behind a ``Role.CONSTANT`` input spec (a parameter or buffer in the state dict,
    a lifted constant or non-persistent buffer among the constants)."""
    value = ep.state_dict.get(spec.target)
    return value if value is not None else ep.constants.get(spec.target)


def input_placeholders(ep) -> list[tuple[Any, Node]]:
    """``(input spec, placeholder node)`` pairs, by position: a copied program may rename a
    placeholder (``input`` -> ``input_1``) without renaming its spec."""
    nodes = [n for n in ep.graph.nodes if n.op == "placeholder"]
    return list(zip(ep.graph_signature.input_specs, nodes))


def user_input_nodes(ep) -> list[Node]:
    return [n for s, n in input_placeholders(ep) if role_of(s) is Role.USER]
