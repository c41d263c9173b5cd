"""Reading graph nodes: arguments by schema name, tensor metadata from ``meta["val"]``."""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.fx import Node

from ..errors import UnsupportedError
from .perm import Order, order_of


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


def input_placeholders(ep) -> list[tuple[Any, Node]]:
    """``(input spec, placeholder node)`` pairs, by position: a copied program may rename a
    placeholder (``input`` -> ``input_1``) without renaming its spec."""
    nodes = [n for n in ep.graph.nodes if n.op == "placeholder"]
    return list(zip(ep.graph_signature.input_specs, nodes))


def user_input_nodes(ep) -> list[Node]:
    return [n for s, n in input_placeholders(ep) if s.kind.name == "USER_INPUT"]
