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
from ..layout.perm import order_of, strides_for
from . import ops
from .access import fake_value


def fake_mode_of(gm: GraphModule) -> FakeTensorMode:
    vals = [fake_value(n) for n in gm.graph.nodes if n.op == "placeholder"]
    mode = detect_fake_mode([v for v in vals if isinstance(v, torch.Tensor)])
    return mode if mode is not None else FakeTensorMode(allow_non_fake_inputs=True)


def run_fake(mode: FakeTensorMode, target: Any, args: tuple, kwargs: dict) -> Any:
    """``target`` on fake tensors; views get the strides eager gives them.

    Fake views can choose other strides than eager for size-1 dims, and eager's kernels
    (a convolution choosing its memory format, for one) read those strides, so views are
    replayed on real, uninitialised storage and their fake results restrided to match; so are
    the few ops whose fake kernel predicts other output strides than the CPU kernel gives, and
    elementwise ops reading a tensor whose size-1 dims have strides no dense layout gives them
    (eager keeps such strides, a fake kernel makes them dense).
    """
    with mode:
        out = target(*args, **kwargs)
    if ops.family(target) is ops.Family.VIEW:
        out = _with_eager_strides(mode, target, args, kwargs, out, view=True)
    elif ops.aten_overload(target) in ops.FAKE_STRIDES_DIFFER or (
            ops.is_elementwise(target) and any(_odd_strides(a) for a in args)):
        out = _with_eager_strides(mode, target, args, kwargs, out, view=False)
    return out


def _odd_strides(value: Any) -> bool:
    """A tensor whose strides are not the dense strides of its own dim order."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return False
    shape, stride = tuple(value.shape), tuple(value.stride())
    return stride != strides_for(shape, order_of(shape, stride))


def _real_like(t: torch.Tensor) -> torch.Tensor:
    extent = t.storage_offset() + sum((s - 1) * st for s, st in zip(t.shape, t.stride())) + 1
    base = torch.empty(max(extent, 1), dtype=t.dtype)
    return base.as_strided(tuple(t.shape), tuple(t.stride()), t.storage_offset())


def _with_eager_strides(mode: FakeTensorMode, target: Any, args: tuple, kwargs: dict, out: Any,
                        view: bool) -> Any:
    """Run ``target`` on real, uninitialised tensors laid out like the fake ones and give the
    fake result eager's strides (a view keeps aliasing its input)."""
    real = {}

    def to_real(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            if id(v) not in real:
                real[id(v)] = _real_like(v)
            return real[id(v)]
        return v

    rargs = torch.utils._pytree.tree_map(to_real, args)
    rkwargs = torch.utils._pytree.tree_map(to_real, kwargs)
    try:
        eager = target(*rargs, **rkwargs)
    except Exception:
        return out

    def fix(f: Any, e: Any) -> Any:
        if isinstance(f, torch.Tensor) and isinstance(e, torch.Tensor) and f.stride() != e.stride():
            with mode:
                if view:
                    return f.as_strided(tuple(f.shape), tuple(e.stride()), f.storage_offset())
                return torch.empty_strided(tuple(f.shape), tuple(e.stride()), dtype=f.dtype)
        return f

    if isinstance(out, (list, tuple)):
        return type(out)(fix(f, e) for f, e in zip(out, eager))
    return fix(out, eager)


def run_chain(chain: list[Node], value: torch.Tensor) -> torch.Tensor:
    """Run the single-input ops of ``chain`` (first to last) on a real ``value``: how rules
    prove what a chain of layout ops does, by running it on an index tensor."""
    for node in chain:
        value = node.target(value, *node.args[1:], **node.kwargs)
    return value


def replay(mode: FakeTensorMode, node: Node) -> Any:
    """``node``'s op on its inputs' ``meta["val"]``: the value it has now."""
    return run_fake(mode, node.target, map_arg(node.args, fake_value), map_arg(node.kwargs, fake_value))


def refresh_meta(gm: GraphModule) -> None:
    """Recompute ``meta["val"]`` of every call node from its inputs, in graph order."""
    mode = fake_mode_of(gm)
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            attr = getattr(gm, str(node.target))
            node.meta["val"] = mode.from_tensor(attr) if isinstance(attr, torch.Tensor) else attr
        elif node.op == "call_function":
            try:
                node.meta["val"] = replay(mode, node)
            except Exception as exc:  # the op cannot be replayed: nothing downstream is trustworthy
                raise UnsupportedError(
                    f"cannot recompute node '{node.name}' ({node.target}): {type(exc).__name__}"
                ) from exc
        elif node.op == "call_module":
            raise UnsupportedError(f"node '{node.name}' calls a submodule; export the model flat")
