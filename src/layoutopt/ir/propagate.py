"""Recomputing ``meta["val"]`` after a graph edit, with the program's own fake mode.

The strides this produces are the ones eager PyTorch gives the same ops, which is what makes
``meta["val"]`` a faithful statement of each tensor's physical layout.
"""
from __future__ import annotations

from typing import Any

import torch
from torch._guards import detect_fake_mode
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx import GraphModule, Node
from torch.fx.node import map_arg

from ..errors import UnsupportedError
from .access import fake_value


def fake_mode_of(gm: GraphModule) -> FakeTensorMode:
    vals = [fake_value(n) for n in gm.graph.nodes if n.op == "placeholder"]
    mode = detect_fake_mode([v for v in vals if isinstance(v, torch.Tensor)])
    return mode if mode is not None else FakeTensorMode(allow_non_fake_inputs=True)


def run_fake(mode: FakeTensorMode, target: Any, args: tuple, kwargs: dict) -> Any:
    with mode:
        return target(*args, **kwargs)


def refresh_meta(gm: GraphModule) -> None:
    """Recompute ``meta["val"]`` of every call node from its inputs, in graph order."""
    mode = fake_mode_of(gm)
    env: dict[Node, Any] = {}
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            env[node] = fake_value(node)
        elif node.op == "get_attr":
            attr = getattr(gm, str(node.target))
            env[node] = mode.from_tensor(attr) if isinstance(attr, torch.Tensor) else attr
        elif node.op == "call_function":
            args = map_arg(node.args, lambda n: env[n])
            kwargs = map_arg(node.kwargs, lambda n: env[n])
            try:
                value = run_fake(mode, node.target, args, kwargs)
            except Exception as exc:  # the op cannot be replayed: nothing downstream is trustworthy
                raise UnsupportedError(
                    f"cannot recompute node '{node.name}' ({node.target}): {type(exc).__name__}"
                ) from exc
            node.meta["val"] = value
            env[node] = value
        elif node.op == "call_module":
            raise UnsupportedError(f"node '{node.name}' calls a submodule; export the model flat")
